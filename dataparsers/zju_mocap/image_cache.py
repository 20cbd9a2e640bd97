"""Copies of images and masks in the form nerfstudio's dataset reads: resized, single-channel masks
(and, for video captures, the decoded frames themselves).

nerfstudio's ``InputDataset`` loads ``image_filenames`` / ``mask_filenames`` as they are, so when the
dataparser hands out a downscaled resolution, a union of two mask folders, or a multi-channel mask,
it writes those files once under a cache folder (mirroring the capture's relative paths) and hands
out the copies. Existing copies newer than their sources are reused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Tuple

import numpy as np

from hfavatar_ns.errors import InputError


def resized_size(height: int, width: int, downscale: float) -> Tuple[int, int]:
    """(height, width) of an image downscaled by ``downscale`` (rounded to whole pixels)."""
    return max(1, int(round(height / downscale))), max(1, int(round(width / downscale)))


def is_fresh(copy: Path, sources: Sequence[Path]) -> bool:
    return copy.is_file() and all(copy.stat().st_mtime >= source.stat().st_mtime for source in sources)


def write_resized_image(source: Path, target: Path, size: Tuple[int, int]) -> Path:
    """``source`` resized to ``size`` = (height, width) with area averaging, saved losslessly at ``target``."""
    import cv2

    if is_fresh(target, [source]):
        return target
    image = cv2.imread(str(source), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"Cannot read the image {source}. Replace the file or drop its camera/frame.")
    resized = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    _write(target, resized)
    return target


def write_mask(mask: np.ndarray, target: Path, size: Tuple[int, int]) -> Path:
    """A boolean mask resized (nearest) to ``size`` = (height, width), saved as a single-channel 0/255 PNG."""
    import cv2

    values = mask.astype(np.uint8) * 255
    if values.shape != tuple(size):
        values = cv2.resize(values, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    _write(target, values)
    return target


def write_image(image: np.ndarray, target: Path, jpeg_quality: int = 95) -> Path:
    """An 8-bit image (BGR, as OpenCV holds it) saved at ``target``; the suffix picks PNG (lossless) or JPEG."""
    import cv2

    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if target.suffix.lower() in (".jpg", ".jpeg") else []
    _write(target, image, params)
    return target


def _write(target: Path, array: np.ndarray, params: Sequence[int] = ()) -> None:
    import cv2

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        ok = cv2.imwrite(str(target), array, list(params))
    except OSError as error:
        ok, reason = False, str(error)
    else:
        reason = "cv2.imwrite failed"
    if not ok:
        raise InputError(
            f"Cannot write {target} ({reason}). The dataparser caches resized images and merged masks there; "
            "pass --cache-dir to a writable folder."
        )
