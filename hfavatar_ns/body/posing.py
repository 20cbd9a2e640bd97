"""Posing many frames with a body model: the one batched loop everything that poses a body calls.

The dataparser (a capture's frames), ``hfavatar-check`` (the fits against the images), the renderer
(novel motions) and the evaluation tools all pose bodies through :func:`pose_in_batches`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.body.base import BodyModel, PosedBody

POSE_BATCH = 64


@dataclass(frozen=True)
class BodyModelSpec:
    """Which body model a capture's parameters belong to, enough to make it again (e.g. for a new motion)."""

    kind: str
    """``"free"`` or ``"smpl"``."""
    gender: str = "neutral"
    model_dir: Optional[Path] = None
    """Folder holding the SMPL files (SMPL only)."""

    def make(self) -> BodyModel:
        from hfavatar_ns.body.factory import make_body_model

        return make_body_model(self.kind, self.model_dir, self.gender)


@torch.no_grad()
def pose_in_batches(
    body_model: BodyModel,
    poses: Float[Tensor, "F 72"],
    shapes: Optional[Float[Tensor, "F B"]] = None,
    global_rotation: Optional[Float[Tensor, "F 3"]] = None,
    global_translation: Optional[Float[Tensor, "F 3"]] = None,
    batch_size: int = POSE_BATCH,
) -> PosedBody:
    """``body_model.pose`` over many frames, ``batch_size`` at a time (bounded memory, no gradients).

    Args:
        body_model: the body model.
        poses: SMPL-convention axis-angle poses, one row per frame.
        shapes: shape coefficients per frame (``None``: the mean shape).
        global_rotation: ``Rh`` per frame (``None``: identity).
        global_translation: ``Th`` per frame in metres (``None``: zero).
        batch_size: frames posed at once.

    Returns:
        The posed bodies of every frame, in float32.
    """
    count = int(poses.shape[0])
    poses = poses.float().reshape(count, -1)

    def rows(values: Optional[Tensor], part: slice) -> Optional[Tensor]:
        return None if values is None else values.float()[part]

    parts = []
    for start in range(0, count, batch_size):
        part = slice(start, start + batch_size)
        parts.append(
            body_model.pose(
                poses[part], rows(shapes, part), rows(global_rotation, part), rows(global_translation, part)
            )
        )
    return PosedBody(
        vertices=torch.cat([p.vertices for p in parts]).float(),
        joints=torch.cat([p.joints for p in parts]).float(),
        bone_transforms=torch.cat([p.bone_transforms for p in parts]).float(),
    )
