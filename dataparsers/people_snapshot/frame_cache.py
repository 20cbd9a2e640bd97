"""The video's frames and the masks as image files, decoded once and reused while fresh.

nerfstudio's ``InputDataset`` reads ``image_filenames`` / ``mask_filenames`` from disk, but the release
holds one mp4 and one HDF5 array. :func:`cache_frames` decodes both in a single pass (PyAV, with a
progress bar) into ``images/{i:06d}.png`` (or ``.jpg``) and ``masks/{i:06d}.png`` (0/255, single channel)
under a cache folder, and writes ``frames.json`` last. That manifest records what the files were made
from (the video's and the masks' size and modification time, the image format, the frame limit); a
later parse whose sources still match reuses the files instead of decoding again, which matters
because nerfstudio parses the train and the eval split separately.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Literal, Tuple

from dataparsers.people_snapshot.release import (
    PeopleSnapshotRelease,
    iter_masks,
    iter_video_frames,
    video_header,
)
from dataparsers.zju_mocap.image_cache import write_image, write_mask
from hfavatar_ns.errors import InputError

ImageFormat = Literal["png", "jpg"]
MANIFEST = "frames.json"
CACHE_VERSION = 1


@dataclass(frozen=True)
class FrameCache:
    """Decoded frames ``0 .. num_frames - 1`` of one subject, as files."""

    folder: Path
    num_frames: int
    """Frames written: the video's frames up to the number of masks and poses, whichever ends first."""
    video_frames: int
    """Frames the video holds (at least ``num_frames``; the container's count when decoding stopped at the limit)."""
    image_format: str
    empty_masks: Tuple[int, ...]
    """Frames whose mask has no foreground pixel."""

    def image_path(self, frame: int) -> Path:
        return image_path(self.folder, frame, self.image_format)

    def mask_path(self, frame: int) -> Path:
        return mask_path(self.folder, frame)


def image_path(folder: Path, frame: int, image_format: str) -> Path:
    return folder / "images" / f"{frame:06d}.{image_format}"


def mask_path(folder: Path, frame: int) -> Path:
    return folder / "masks" / f"{frame:06d}.png"


def _source_stamp(path: Path) -> Dict[str, object]:
    stat = path.stat()
    return {"name": path.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _reusable(folder: Path, signature: Dict[str, object]) -> FrameCache | None:
    """The cache in ``folder`` when its manifest matches ``signature`` and every file it lists exists."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("signature") != signature:
        return None
    try:
        cache = FrameCache(
            folder=folder,
            num_frames=int(manifest["num_frames"]),
            video_frames=int(manifest["video_frames"]),
            image_format=str(signature["image_format"]),
            empty_masks=tuple(int(f) for f in manifest["empty_masks"]),
        )
    except (KeyError, TypeError, ValueError):
        return None  # a manifest we did not write: decode again
    for frame in range(cache.num_frames):
        if not (cache.image_path(frame).is_file() and cache.mask_path(frame).is_file()):
            return None
    return cache


def cache_frames(
    release: PeopleSnapshotRelease, folder: Path, image_format: ImageFormat = "png", progress: bool = True
) -> FrameCache:
    """Decode the subject's video and masks into ``folder`` (or reuse an earlier decode that is still fresh).

    Only frames that can pair with a mask and a pose row are written (the video may run longer).
    Images are written at full resolution: PNG keeps the video's pixels exactly as decoded, JPEG
    (quality 95) takes a tenth of the disk at a small loss.
    """
    from tqdm import tqdm

    folder = Path(folder)
    limit = min(release.num_masks, len(release.fits.poses))
    declared, size = video_header(release.video_path)
    if size != (release.camera.height, release.camera.width):
        raise InputError(
            f"The video {release.video_path} is {size[1]}x{size[0]} but {release.root / 'camera.pkl'} describes "
            f"{release.camera.width}x{release.camera.height} frames. Use the release's original video."
        )
    signature: Dict[str, object] = {
        "version": CACHE_VERSION,
        "video": _source_stamp(release.video_path),
        "masks": _source_stamp(release.masks_path),
        "image_format": image_format,
        "limit": limit,
    }
    reused = _reusable(folder, signature)
    if reused is not None:
        return reused

    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / MANIFEST).unlink(missing_ok=True)  # a half-written cache must never look fresh
    except OSError as error:
        raise _unwritable(folder, error) from error
    empty = []
    decoded = 0
    frames = zip(iter_video_frames(release.video_path, limit), iter_masks(release.masks_path, limit))
    total = min(declared, limit) if declared else limit
    bar = tqdm(frames, total=total, desc=f"Decoding {release.video_path.name}", unit="frame", disable=not progress)
    for index, (image, mask) in enumerate(bar):
        write_image(image, image_path(folder, index, image_format))
        write_mask(mask, mask_path(folder, index), mask.shape)
        if not mask.any():
            empty.append(index)
        decoded += 1
    if decoded == 0:
        raise InputError(f"The video {release.video_path} holds no frames. Re-download the subject's video.")
    video_frames = decoded if decoded < limit else max(declared, decoded)
    manifest = {"signature": signature, "num_frames": decoded, "video_frames": video_frames, "empty_masks": empty}
    partial = folder / (MANIFEST + ".partial")
    try:
        partial.write_text(json.dumps(manifest, indent=1))
        os.replace(partial, folder / MANIFEST)
    except OSError as error:
        raise _unwritable(folder, error) from error
    return FrameCache(folder, decoded, video_frames, image_format, tuple(empty))


def _unwritable(folder: Path, error: OSError) -> InputError:
    return InputError(
        f"Cannot write the decoded frames to {folder} ({error}). Pass --cache-dir with a writable folder."
    )
