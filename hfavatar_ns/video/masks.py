"""Person masks from mediapipe's segmentation: one person, no specks, no pinholes.

mediapipe's pose segmentation is soft and belongs to the person whose landmarks it tracked, but it can
leak onto a second person or onto person-like clutter; those pieces do not contain the tracked person's
landmarks, which is how they are told apart and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Bool, Float, UInt8


@dataclass
class MaskCleaning:
    masks: Bool[np.ndarray, "N H W"]
    dropped_regions: int
    """Pieces of segmentation that did not hold the tracked person's landmarks (other people, clutter)."""
    filled_pixels: int
    """Pixels of holes filled inside the person."""


def clean_person_masks(
    segmentation: UInt8[np.ndarray, "N H W"],
    landmarks_px: Float[np.ndarray, "N K 2"],
    landmark_visible: Bool[np.ndarray, "N K"],
    threshold: float = 0.5,
    max_hole_fraction: float = 0.002,
) -> MaskCleaning:
    """Threshold, keep the connected pieces that hold a visible landmark, fill small holes.

    A piece holding no landmark survives only when no piece does (the landmarks then missed the mask
    entirely, and the largest piece is the best guess). Only pinholes are filled (smaller than
    ``max_hole_fraction`` of the person's area, away from the image border): an enclosed gap between an arm
    and the torso is a real hole, and filling holes of 2% of the area lowered the IoU against true masks.
    """
    import cv2

    masks = segmentation >= int(round(threshold * 255))
    cleaned = np.zeros_like(masks)
    dropped = filled = 0
    height, width = masks.shape[1:]
    for i, mask in enumerate(masks):
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        if count <= 1:
            continue
        points = np.round(landmarks_px[i][landmark_visible[i]]).astype(int)
        inside = (points[:, 0] >= 0) & (points[:, 0] < width) & (points[:, 1] >= 0) & (points[:, 1] < height)
        touched = set(np.unique(labels[points[inside, 1], points[inside, 0]]).tolist()) - {0}
        if not touched:
            touched = {int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) + 1}
        keep = np.isin(labels, sorted(touched))
        dropped += count - 1 - len(touched)
        holes_count, hole_labels, hole_stats, _ = cv2.connectedComponentsWithStats((~keep).astype(np.uint8), connectivity=4)
        limit = max_hole_fraction * keep.sum()
        for label in range(1, holes_count):
            x, y, w, h, area = hole_stats[label]
            touches_border = x == 0 or y == 0 or x + w == width or y + h == height
            if not touches_border and area <= limit:
                keep[hole_labels == label] = True
                filled += int(area)
        cleaned[i] = keep
    return MaskCleaning(masks=cleaned, dropped_regions=dropped, filled_pixels=filled)


def mask_iou(a: Bool[np.ndarray, "*b H W"], b: Bool[np.ndarray, "*b H W"]) -> Float[np.ndarray, "*b"]:
    union = (a | b).sum(axis=(-1, -2))
    return np.where(union > 0, (a & b).sum(axis=(-1, -2)) / np.maximum(union, 1), 1.0)


def body_silhouette(
    pixels: Float[np.ndarray, "V 2"], faces: np.ndarray, width: int, height: int
) -> Bool[np.ndarray, "H W"]:
    """The mask a triangle mesh covers, from its vertices' image positions."""
    import cv2

    silhouette = np.zeros((height, width), np.uint8)
    triangles = np.round(pixels[faces] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    # One triangle at a time: fillPoly given them all at once fills by parity, so overlaps would cancel.
    for triangle in triangles:
        cv2.fillConvexPoly(silhouette, triangle, 1, lineType=cv2.LINE_8, shift=2)
    return silhouette.astype(bool)
