"""A video (or a folder of photos) of one person to a one-camera capture: frames, landmarks and masks,
camera, body fit, capture, check. The stages are functions of their own modules; this one orders them,
decides which frames are usable and tells the user what happened.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional

import numpy as np
import torch

from hfavatar_ns.errors import InputError
from hfavatar_ns.video.body_fit import BodyFitConfig, FitObservations, fit_body
from hfavatar_ns.video.capture_writer import ProcessedVideo, write_capture
from hfavatar_ns.video.frames import choose_frames, focal_length_px, open_source, output_size, read_frames
from hfavatar_ns.video.landmarks import observed_joints
from hfavatar_ns.video.masks import clean_person_masks

WHOLE_BODY_LANDMARKS = (0, 11, 12, 23, 24, 25, 26, 27, 28)
"""Nose, shoulders, hips, knees, ankles: a frame is usable only when all of them lie inside the image."""


@dataclass
class ProcessVideoConfig:
    input: Path
    output: Path
    num_frames: Optional[int] = 120
    stride: Optional[int] = None
    long_side: Optional[int] = 540
    focal_px: Optional[float] = None
    fov_deg: Optional[float] = None
    body_model: Literal["free", "smpl"] = "free"
    body_model_dir: Optional[Path] = None
    gender: Literal["neutral", "male", "female"] = "neutral"
    min_frames: int = 8
    overwrite: bool = False
    check: bool = True
    progress: bool = True
    fit: BodyFitConfig = field(default_factory=BodyFitConfig)


def usable_frames(found: np.ndarray, landmarks: np.ndarray, width: int, height: int) -> np.ndarray:
    """Frames where a person was found with the whole body inside the image."""
    points = landmarks[:, list(WHOLE_BODY_LANDMARKS), :2]
    inside = (points[..., 0] >= 0) & (points[..., 0] < width) & (points[..., 1] >= 0) & (points[..., 1] < height)
    return found & inside.all(axis=1)


def frame_gaps(source_indices: List[int]) -> np.ndarray:
    """Distance between consecutive kept frames, in units of the usual step between them."""
    steps = np.diff(np.asarray(source_indices, np.float64))
    if len(steps) == 0:
        return steps
    return steps / max(1.0, float(np.min(steps)))


def process_video(config: ProcessVideoConfig) -> Dict:
    """Run every stage and write the capture to ``config.output``; returns the report it writes beside it."""
    from hfavatar_ns.body.factory import make_body_model
    from hfavatar_ns.video.mediapipe_env import run_landmarker

    start = time.time()
    output = Path(config.output)
    if output.exists() and any(output.iterdir()) and not config.overwrite:
        raise InputError(f"{output} already exists and is not empty; pass --overwrite to replace it, or choose another folder.")
    source = open_source(Path(config.input))
    indices = choose_frames(source.num_frames, config.num_frames, config.stride)
    width, height = output_size(source.width, source.height, config.long_side)
    # The focal length is the source frames' (what a user knows of the camera), scaled with the resize.
    focal, focal_source = focal_length_px(source.width, source.height, config.focal_px, config.fov_deg, source.focal_35mm)
    focal *= width / source.width
    body_model = make_body_model(config.body_model, config.body_model_dir, config.gender)
    say = print if config.progress else (lambda *_args, **_kwargs: None)
    say(f"{source.path.name}: {source.num_frames} frames of {source.width}x{source.height}; "
        f"using {len(indices)} at {width}x{height}. Focal length {focal:.0f} px from {focal_source}.")

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{output.name}-", dir=output.parent) as work:
        work = Path(work)
        frames_dir = work / "frames"
        frames_dir.mkdir()
        decoded: List[int] = []
        images: Dict[int, np.ndarray] = {}
        from tqdm import tqdm

        for index, image in tqdm(read_frames(source, indices, (width, height)), total=len(indices), desc="frames",
                                 unit="frame", disable=not config.progress):
            import cv2

            cv2.imwrite(str(frames_dir / f"{index:06d}.png"), np.ascontiguousarray(image[..., ::-1]))
            images[index] = image
            decoded.append(index)
        if not decoded:
            raise InputError(f"No frame of {source.path} could be decoded; re-encode it (e.g. to H.264 MP4) and try again.")
        undecoded = len(indices) - len(decoded)

        detected = run_landmarker([frames_dir / f"{i:06d}.png" for i in decoded], video=source.is_video,
                                  progress=config.progress)
        if not detected.found.any():
            raise InputError(
                f"No person was found in any of the {len(decoded)} frames of {source.path}. The video must show one "
                "person, whole body in view, large enough (at least a third of the image's height)."
            )
        keep = usable_frames(detected.found, detected.landmarks, width, height)
        kept = [decoded[i] for i in np.nonzero(keep)[0]]
        dropped_no_person = int((~detected.found).sum())
        dropped_partial = int((detected.found & ~keep).sum())
        if len(kept) < config.min_frames:
            raise InputError(
                f"Only {len(kept)} of {len(decoded)} frames show a whole person (no person in {dropped_no_person}, "
                f"body partly out of the image in {dropped_partial}); at least {config.min_frames} are needed. "
                "Film the whole body, head to feet, with some room around it."
            )
        rows = np.nonzero(keep)[0]
        landmarks, visibility = detected.landmarks[rows], detected.visibility[rows]
        cleaning = clean_person_masks(detected.segmentation[rows], landmarks[..., :2], visibility > 0.5)
        joints_2d, confidence = observed_joints(landmarks[..., :2], visibility)
        joints_3d, _ = observed_joints(detected.world[rows], visibility)
        intrinsics = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float32)
        observations = FitObservations(
            joints_2d=torch.from_numpy(joints_2d).float(),
            joint_confidence=torch.from_numpy(confidence).float(),
            bones_3d=torch.from_numpy(joints_3d).float(),
            masks=torch.from_numpy(cleaning.masks),
            intrinsics=torch.from_numpy(intrinsics),
            frame_gaps=torch.from_numpy(frame_gaps(kept)).float(),
        )
        fit = fit_body(body_model, observations, config.fit, fit_shape=config.body_model == "smpl", progress=config.progress)
        with torch.no_grad():
            posed = body_model.pose(fit.poses, fit.shapes[None].expand(len(kept), -1), fit.Rh, fit.Th)

        report = {
            "input": str(source.path),
            "source_frames": source.num_frames,
            "frames_chosen": len(indices),
            "frames_undecodable": undecoded,
            "frames_without_person": dropped_no_person,
            "frames_person_partly_outside": dropped_partial,
            "frames_kept": len(kept),
            "source_frame_of_capture_frame": kept,
            "image_size": [width, height],
            "focal_length_px": focal,
            "focal_length_source": focal_source,
            "mask_regions_dropped": cleaning.dropped_regions,
            "mask_hole_pixels_filled": cleaning.filled_pixels,
            "body_model": config.body_model,
            "fit_joint_error_px_mean": float(fit.joint_error_px.mean()),
            "fit_joint_error_px_per_frame": [round(float(e), 2) for e in fit.joint_error_px],
        }
        capture_dir = work / "capture"
        capture_dir.mkdir()
        processed = ProcessedVideo(
            images=[images[i] for i in kept],
            masks=cleaning.masks,
            intrinsics=intrinsics,
            poses=fit.poses.numpy(),
            Rh=fit.Rh.numpy(),
            Th=fit.Th.numpy(),
            shapes=fit.shapes.numpy(),
            vertices=posed.vertices.numpy(),
            body_model=config.body_model,
            gender=config.gender,
        )
        extra = {"landmarks": landmarks, "visibility": visibility, "world": detected.world[rows], "source_frames": np.asarray(kept)}
        report["seconds"] = round(time.time() - start, 1)
        write_capture(capture_dir, processed, report, extra)
        if output.exists():
            shutil.rmtree(output)
        os.replace(capture_dir, output)

    if config.check:
        report["check"] = _check(output, config.body_model_dir, config.progress)
    report["seconds"] = round(time.time() - start, 1)
    (output / "process_video.json").write_text(__import__("json").dumps(report, indent=2) + "\n")
    return report


def _check(capture: Path, body_model_dir: Optional[Path], progress: bool) -> Dict:
    """hfavatar-check on the new capture; its overlay sheet lands in ``capture/check``."""
    from hfavatar_ns.scripts.check_capture import CheckCaptureConfig, check_capture

    figures = check_capture(
        CheckCaptureConfig(data=capture, body_model_dir=body_model_dir, frames_per_camera=6, output_dir=capture / "check")
    )
    return {key: value for key, value in figures.items() if isinstance(value, (int, float, str, list))}
