"""The articulated-body interface every body model implements.

Nothing outside ``hfavatar_ns.body`` knows which body model it holds: code asks a :class:`BodyModel`
for its canonical body and for the posed body of a frame's parameters.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Tuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hfavatar_ns.body.skinning import (
    NUM_JOINTS,
    SMPL_PARENTS,
    forward_kinematics,
    global_transform,
    linear_blend_skinning,
    pose_to_local_rotations,
)


@dataclass
class CanonicalBody:
    """The body in its rest pose (zero pose vector), in the body model's local frame."""

    vertices: Float[Tensor, "V 3"]
    faces: Int[Tensor, "F 3"]
    joints: Float[Tensor, "24 3"]
    skinning_weights: Float[Tensor, "V 24"]


@dataclass
class PosedBody:
    """A batch of posed bodies in observation (world) space."""

    vertices: Float[Tensor, "B V 3"]
    """Posed vertices, including any pose-dependent correctives the model has."""
    joints: Float[Tensor, "B 24 3"]
    bone_transforms: Float[Tensor, "B 24 4 4"]
    """Canonical -> observation transform of each bone, the global ``Rh``/``Th`` included."""


class BodyModel(abc.ABC):
    """An SMPL-compatible articulated body: 24 joints in SMPL's tree, driven by 72-d pose vectors.

    Subclasses provide the shaped rest body and, optionally, pose-dependent vertex offsets; posing
    (forward kinematics, skinning, the EasyMocap global ``Rh``/``Th``) is shared.
    """

    name: str = "body"
    parents: Tuple[int, ...] = SMPL_PARENTS
    num_betas: int = 10

    @abc.abstractmethod
    def canonical(self, shapes: Float[Tensor, "10"] | None = None) -> CanonicalBody:
        """The rest body for the given shape coefficients (``None``: the mean shape)."""

    def pose_correctives(
        self, local_rotations: Float[Tensor, "B 24 3 3"], shapes: Float[Tensor, "B 10"]
    ) -> Float[Tensor, "B V 3"] | None:
        """Pose-dependent offsets added to the rest vertices before skinning (SMPL's pose blend shapes)."""
        return None

    def pose(
        self,
        poses: Float[Tensor, "B 72"],
        shapes: Float[Tensor, "B 10"] | None = None,
        global_rotation: Float[Tensor, "B 3"] | None = None,
        global_translation: Float[Tensor, "B 3"] | None = None,
    ) -> PosedBody:
        """Pose a batch of bodies: EasyMocap convention ``x_world = R(Rh) LBS(x) + Th``.

        Args:
            poses: SMPL axis-angle pose vectors (72 values each).
            shapes: shape coefficients (betas); one row per pose or ``None`` for the mean shape.
            global_rotation: ``Rh`` (axis-angle about the model origin), ``None`` for identity.
            global_translation: ``Th`` in metres, ``None`` for zero.
        """
        batch = poses.shape[0]
        poses = poses.reshape(batch, -1)
        dtype, device = poses.dtype, poses.device
        if shapes is None:
            shapes = torch.zeros(batch, self.num_betas, dtype=dtype, device=device)
        if global_rotation is None:
            global_rotation = torch.zeros(batch, 3, dtype=dtype, device=device)
        if global_translation is None:
            global_translation = torch.zeros(batch, 3, dtype=dtype, device=device)
        unique_shapes, rows = torch.unique(shapes, dim=0, return_inverse=True)
        rest = [self.canonical(shape) for shape in unique_shapes]  # one rest body per distinct shape
        rest_vertices = torch.stack([rest[i].vertices for i in rows.tolist()]).to(dtype)
        rest_joints = torch.stack([rest[i].joints for i in rows.tolist()]).to(dtype)
        weights = rest[0].skinning_weights.to(dtype)
        local_rotations = pose_to_local_rotations(poses)
        bone_transforms, _ = forward_kinematics(local_rotations, rest_joints, self.parents)
        bone_transforms = global_transform(global_rotation, global_translation)[:, None] @ bone_transforms
        correctives = self.pose_correctives(local_rotations, shapes)
        if correctives is not None:
            rest_vertices = rest_vertices + correctives
        vertices = linear_blend_skinning(rest_vertices, weights.expand(batch, -1, -1), bone_transforms)
        joints = bone_transforms[..., :3, :3] @ rest_joints[..., None]
        joints = joints[..., 0] + bone_transforms[..., :3, 3]
        return PosedBody(vertices=vertices, joints=joints, bone_transforms=bone_transforms)


assert len(SMPL_PARENTS) == NUM_JOINTS
