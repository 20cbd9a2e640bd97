"""A contact sheet of a capture in the raw ZJU-MoCap layout: images and part masks, cameras x frames."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

LABEL_COLOURS = np.array(
    [[0, 0, 0], [230, 180, 150], [60, 90, 200], [200, 60, 60], [240, 240, 240], [120, 70, 30]] + [[255, 0, 255]] * 250,
    dtype=np.uint8,
)
"""RGB per part label (0 background, 1 skin, 2 top, 3 bottom, 4 shoes, 5 hair; others magenta)."""


def contact_sheet(
    capture_dir: Path,
    output_png: Path,
    cameras: Optional[Sequence[int]] = None,
    frames: Optional[Sequence[int]] = None,
) -> Path:
    """Tile images (and, below each row, their part masks) of some cameras (rows) and frames (columns).

    Args:
        capture_dir: a capture folder with ``annots.npy``.
        output_png: where to write the sheet.
        cameras: camera indices (0-based); ``None``: up to four spread over the ring.
        frames: frame indices; ``None``: up to four spread over the sequence.
    """
    capture_dir = Path(capture_dir)
    annots = np.load(capture_dir / "annots.npy", allow_pickle=True).item()
    num_frames, num_cameras = len(annots["ims"]), len(annots["ims"][0]["ims"])
    if cameras is None:
        cameras = sorted(set(np.linspace(0, num_cameras, min(4, num_cameras), endpoint=False).astype(int).tolist()))
    if frames is None:
        frames = sorted(set(np.linspace(0, num_frames - 1, min(4, num_frames)).astype(int).tolist()))
    rows = []
    for c in cameras:
        images, masks = [], []
        for i in frames:
            relative = annots["ims"][i]["ims"][c]
            image = cv2.imread(str(capture_dir / relative))[..., ::-1]
            labels = cv2.imread(str(capture_dir / "mask_cihp" / relative.replace(".jpg", ".png")), cv2.IMREAD_UNCHANGED)
            images.append(image)
            masks.append(LABEL_COLOURS[labels])
        rows.append(np.concatenate(images, axis=1))
        rows.append(np.concatenate(masks, axis=1))
    sheet = np.concatenate(rows, axis=0)
    output_png = Path(output_png)
    output_png.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(output_png), sheet[..., ::-1])
    return output_png
