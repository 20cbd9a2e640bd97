"""Writing a processed video as a one-camera capture in the raw ZJU-MoCap layout.

The layout is the one ``hfavatar-synth`` writes and the ``zju-mocap`` dataparser reads (see
shared/reference/data-formats.md): ``annots.npy`` with one camera at the world origin (R = I, T = 0: the
camera frame is the world), ``Camera_B1/{i:06d}.jpg``, ``mask_cihp/Camera_B1/{i:06d}.png``,
``new_params/{i}.npy`` in EasyMocap's convention, ``new_vertices/{i}.npy``, ``split.json`` and
``body_model.json`` (``exact_fits: false`` and ``exact_masks: false``, so training refines the poses and leaves
background-labelled rays to the mask loss).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
from jaxtyping import Bool, Float, UInt8

CAMERA_FOLDER = "Camera_B1"


@dataclass
class ProcessedVideo:
    """Everything a capture holds, for the kept frames in order."""

    images: List[UInt8[np.ndarray, "H W 3"]]
    masks: Bool[np.ndarray, "N H W"]
    intrinsics: Float[np.ndarray, "3 3"]
    poses: Float[np.ndarray, "N 72"]
    Rh: Float[np.ndarray, "N 3"]
    Th: Float[np.ndarray, "N 3"]
    shapes: Float[np.ndarray, "10"]
    vertices: Float[np.ndarray, "N V 3"]
    body_model: str
    gender: str


def held_out_frames(num_frames: int, share: float = 0.1, at_least: int = 1) -> int:
    """How many of the last frames the capture holds out for novel-pose checks (none below 10 frames)."""
    if num_frames < 10:
        return 0
    return max(at_least, int(round(num_frames * share)))


def capture_split(num_frames: int) -> Dict:
    """Training on the first frames, novel-pose checks on the last ones (same camera)."""
    held_out = held_out_frames(num_frames)
    train_end = num_frames - held_out
    return {
        "train_cameras": [0],
        "train_frames": [0, train_end],
        "novel_pose_frames": [train_end, num_frames] if held_out else None,
        "test_frame_stride": max(1, held_out // 5),
    }


def write_capture(folder: Path, video: ProcessedVideo, report: Dict, extra: Dict[str, np.ndarray]) -> None:
    """Write the capture into ``folder`` (which must exist and be empty)."""
    import cv2

    (folder / CAMERA_FOLDER).mkdir()
    (folder / "mask_cihp" / CAMERA_FOLDER).mkdir(parents=True)
    (folder / "new_params").mkdir()
    (folder / "new_vertices").mkdir()
    names = []
    for i, (image, mask) in enumerate(zip(video.images, video.masks)):
        name = f"{CAMERA_FOLDER}/{i:06d}.jpg"
        names.append(name)
        cv2.imwrite(str(folder / name), np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        cv2.imwrite(str(folder / "mask_cihp" / CAMERA_FOLDER / f"{i:06d}.png"), mask.astype(np.uint8) * 255)
        params = {
            "poses": video.poses[i : i + 1].astype(np.float32),
            "Rh": video.Rh[i : i + 1].astype(np.float32),
            "Th": video.Th[i : i + 1].astype(np.float32),
            "shapes": video.shapes[None].astype(np.float32),
        }
        np.save(folder / "new_params" / f"{i}.npy", params)
        np.save(folder / "new_vertices" / f"{i}.npy", video.vertices[i].astype(np.float32))
    cameras = {
        "K": [video.intrinsics.astype(np.float64)],
        "R": [np.eye(3)],
        "T": [np.zeros((3, 1))],
        "D": [np.zeros((5, 1))],
    }
    np.save(folder / "annots.npy", {"cams": cameras, "ims": [{"ims": [name]} for name in names]})
    body = {
        "kind": video.body_model, "gender": video.gender, "generator": "hfavatar-process-video",
        "exact_fits": False, "exact_masks": False,
    }  # fmt: skip
    (folder / "body_model.json").write_text(json.dumps(body, indent=2) + "\n")
    (folder / "split.json").write_text(json.dumps(capture_split(len(names)), indent=2) + "\n")
    np.savez_compressed(folder / "landmarks.npz", **extra)
    (folder / "process_video.json").write_text(json.dumps(report, indent=2) + "\n")
