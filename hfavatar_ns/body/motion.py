"""Motion files (SMPL-convention poses) and posing them with an avatar's body for rendering."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from hfavatar_ns.body.body_frames import BodyFrames
from hfavatar_ns.body.posing import pose_in_batches
from hfavatar_ns.errors import InputError


@dataclass
class Motion:
    """A body motion in the EasyMocap convention: ``x = R(Rh) LBS(x; poses) + Th``."""

    poses: Float[Tensor, "N 72"]
    global_rotation: Optional[Float[Tensor, "N 3"]]
    global_translation: Optional[Float[Tensor, "N 3"]]
    fps: Optional[float]


def load_motion(path: Path) -> Motion:
    """Read ``poses`` (N,72 or N,24,3), optional ``trans``/``Th`` (N,3), ``Rh`` (N,3), ``fps``/``mocap_framerate``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No motion file at {path}.")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            values = {key: data[key] for key in data.files}
    elif path.suffix in (".pkl", ".pickle"):
        with open(path, "rb") as handle:
            values = pickle.load(handle, encoding="latin1")
        if not isinstance(values, dict):
            raise InputError(f"{path} must hold a dict with 'poses' (and optionally 'trans'/'Th', 'Rh').")
    else:
        raise InputError(f"{path}: motion files are .npz or .pkl (with 'poses', optional 'trans'/'Th', 'Rh').")
    if "poses" not in values:
        raise InputError(f"{path} has no 'poses' (keys: {', '.join(sorted(values))}); it needs (N,72) or (N,24,3).")
    poses = torch.as_tensor(np.asarray(values["poses"]), dtype=torch.float32)
    if poses.ndim == 3 and poses.shape[1:] == (24, 3):
        poses = poses.reshape(-1, 72)
    if poses.ndim != 2 or poses.shape[1] != 72 or poses.shape[0] == 0:
        raise InputError(
            f"{path}: 'poses' is {tuple(poses.shape)}; expected (N,72) or (N,24,3) SMPL axis-angles. "
            "(SMPL-H/SMPL-X files: keep the first 72 values, body joints only.)"
        )

    def optional(*keys: str) -> Optional[Tensor]:
        for key in keys:
            if key in values and values[key] is not None:
                value = torch.as_tensor(np.asarray(values[key]), dtype=torch.float32).reshape(-1, 3)
                if value.shape[0] == 1:
                    value = value.expand(poses.shape[0], 3)
                if value.shape[0] != poses.shape[0]:
                    raise InputError(f"{path}: '{key}' has {value.shape[0]} rows but 'poses' has {poses.shape[0]}.")
                return value
        return None

    fps = None
    for key in ("fps", "mocap_framerate", "frame_rate"):
        if key in values:
            fps = float(np.asarray(values[key]).reshape(-1)[0])
    return Motion(poses, optional("Rh"), optional("Th", "trans"), fps)


def resample_motion(motion: Motion, fps_in: float, fps_out: float) -> Motion:
    """The motion at ``fps_out``: rotations slerped per joint, translations interpolated linearly."""
    import roma

    count = motion.poses.shape[0]
    if count == 1 or fps_in == fps_out:
        return motion
    duration = (count - 1) / fps_in
    times = torch.arange(0, int(math.floor(duration * fps_out + 1e-6)) + 1, dtype=torch.float64) / fps_out
    position = (times * fps_in).clamp(max=count - 1)
    lower = position.floor().long().clamp(max=count - 2)
    weight = (position - lower).float()

    def rotations(values: Tensor) -> Tensor:
        joints = values.reshape(count, -1, 3)
        out = [roma.rotvec_slerp(joints[i], joints[i + 1], w.reshape(1))[0] for i, w in zip(lower.tolist(), weight)]
        return torch.stack(out).reshape(len(out), -1)

    def linear(values: Optional[Tensor]) -> Optional[Tensor]:
        if values is None:
            return None
        return values[lower] * (1 - weight[:, None]) + values[lower + 1] * weight[:, None]

    rh = None if motion.global_rotation is None else rotations(motion.global_rotation)
    return Motion(rotations(motion.poses), rh, linear(motion.global_translation), fps_out)


def truncate_motion(motion: Motion, max_frames: Optional[int]) -> Motion:
    """The first ``max_frames`` frames of ``motion`` (all of it for ``None``)."""
    if max_frames is None:
        return motion

    def first(values: Optional[Tensor]) -> Optional[Tensor]:
        return None if values is None else values[:max_frames]

    return Motion(motion.poses[:max_frames], first(motion.global_rotation), first(motion.global_translation), motion.fps)


def append_motion(body: BodyFrames, motion: Motion) -> Int[Tensor, "N"]:
    """Pose ``motion`` with the body model and shape of ``body`` and append it; returns the new rows.

    A missing ``Rh``/``Th`` is taken from the capture's first frame, so the body stands where the actor
    stood, the capture's way up.
    """
    count = motion.poses.shape[0]
    first = body.capture_rows()[0]
    rh = motion.global_rotation
    th = motion.global_translation
    rh = body.global_rotation[first : first + 1].cpu().expand(count, 3) if rh is None else rh.float()
    th = body.global_translation[first : first + 1].cpu().expand(count, 3) if th is None else th.float()
    shapes = body.shape.cpu()[None].expand(count, -1)
    posed = pose_in_batches(body.body_model.make(), motion.poses, shapes, rh, th)
    return body.append(posed, motion.poses, rh, th)
