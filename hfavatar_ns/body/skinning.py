"""Pure tensor functions for articulated bodies: rotations, forward kinematics, linear blend skinning.

Conventions used everywhere in hfavatar:

* A body has the 24 joints of SMPL's kinematic tree (:data:`SMPL_PARENTS`).
* *Canonical* space is the body's rest pose (zero pose vector) in the body model's local frame.
* *Observation* space is the world frame of the capture.
* A *bone transform* ``G_j`` (4x4) maps a canonical point rigidly attached to bone ``j`` to observation
  space; linear blend skinning maps ``x_o = (sum_j w_j G_j) x_c``.
* Pose vectors follow SMPL / EasyMocap: 72 axis-angle values (24 joints x 3, the first three the root
  orientation), with an extra global rotation ``Rh`` (axis-angle, about the model origin) and
  translation ``Th`` (metres): ``x_world = R(Rh) x_local + Th``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import roma
import torch
from jaxtyping import Float
from torch import Tensor

SMPL_PARENTS: Tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
SMPL_JOINT_NAMES: Tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hand", "right_hand",
)  # fmt: skip
NUM_JOINTS = 24


def axis_angle_to_matrix(rotvec: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3 3"]:
    """Rotation matrices from axis-angle vectors (Rodrigues), differentiable and safe at zero."""
    return roma.rotvec_to_rotmat(rotvec)


def rigid_transform(
    rotation: Float[Tensor, "*batch 3 3"], translation: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 4 4"]:
    """Homogeneous 4x4 matrices ``[R | t; 0 0 0 1]``."""
    bottom = torch.zeros(*rotation.shape[:-2], 1, 4, dtype=rotation.dtype, device=rotation.device)
    bottom[..., 0, 3] = 1.0
    top = torch.cat([rotation, translation[..., :, None]], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def transform_points(transform: Float[Tensor, "*batch 4 4"], points: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 3"]:
    """Apply homogeneous transforms to points (broadcasting over the batch dimensions)."""
    return (transform[..., :3, :3] @ points[..., :, None])[..., 0] + transform[..., :3, 3]


def forward_kinematics(
    local_rotations: Float[Tensor, "*batch J 3 3"],
    rest_joints: Float[Tensor, "*batch J 3"],
    parents: Sequence[int],
) -> Tuple[Float[Tensor, "*batch J 4 4"], Float[Tensor, "*batch J 3"]]:
    """Bone transforms of a kinematic tree posed by per-joint rotations about the rest joints.

    Args:
        local_rotations: rotation of each joint relative to its parent (joint 0: the root's orientation).
        rest_joints: joint positions in the rest (canonical) pose.
        parents: parent index of each joint, ``-1`` for the root; parents must precede children.

    Returns:
        bone_transforms: 4x4 maps from the rest pose to the posed body, one per joint (the ``A_j``
            of linear blend skinning: a rest point on bone ``j`` goes to ``A_j x``).
        posed_joints: joint positions in the posed body.
    """
    num_joints = len(parents)
    world = []
    for joint, parent in enumerate(parents):
        if parent < 0:
            offset = rest_joints[..., joint, :]
            local = rigid_transform(local_rotations[..., joint, :, :], offset)
            world.append(local)
        else:
            offset = rest_joints[..., joint, :] - rest_joints[..., parent, :]
            local = rigid_transform(local_rotations[..., joint, :, :], offset)
            world.append(world[parent] @ local)
    joint_frames = torch.stack(world, dim=-3)
    posed_joints = joint_frames[..., :3, 3]
    # Move the pivot from the origin to the rest joint: A_j = W_j @ T(-rest_j).
    rotation = joint_frames[..., :3, :3]
    translation = posed_joints - (rotation @ rest_joints[..., None])[..., 0]
    assert joint_frames.shape[-3] == num_joints
    return rigid_transform(rotation, translation), posed_joints


def blend_transforms(
    skinning_weights: Float[Tensor, "*batch N J"], bone_transforms: Float[Tensor, "*batch J 4 4"]
) -> Float[Tensor, "*batch N 4 4"]:
    """Per-point blended transform ``sum_j w_j G_j``."""
    return torch.einsum("...nj,...jab->...nab", skinning_weights, bone_transforms)


def linear_blend_skinning(
    points: Float[Tensor, "*batch N 3"],
    skinning_weights: Float[Tensor, "*batch N J"],
    bone_transforms: Float[Tensor, "*batch J 4 4"],
) -> Float[Tensor, "*batch N 3"]:
    """Forward LBS: canonical points to observation space."""
    return transform_points(blend_transforms(skinning_weights, bone_transforms), points)


def inverse_linear_blend_skinning(
    points: Float[Tensor, "*batch N 3"],
    skinning_weights: Float[Tensor, "*batch N J"],
    bone_transforms: Float[Tensor, "*batch J 4 4"],
) -> Float[Tensor, "*batch N 3"]:
    """Inverse LBS with weights given at the observation points: ``x_c = (sum_j w_j G_j)^-1 x_o``."""
    blended = blend_transforms(skinning_weights, bone_transforms)
    return transform_points(torch.linalg.inv(blended), points)


def global_transform(
    global_rotation: Float[Tensor, "*batch 3"], global_translation: Float[Tensor, "*batch 3"]
) -> Float[Tensor, "*batch 4 4"]:
    """The EasyMocap world transform ``x_world = R(Rh) x + Th`` as a 4x4 matrix."""
    return rigid_transform(axis_angle_to_matrix(global_rotation), global_translation)


def pose_to_local_rotations(poses: Float[Tensor, "*batch 72"]) -> Float[Tensor, "*batch 24 3 3"]:
    """Per-joint rotation matrices from an SMPL 72-d axis-angle pose vector (or ``(..., 24, 3)``)."""
    rotvecs = poses.reshape(*poses.shape[:-1], NUM_JOINTS, 3) if poses.shape[-1] == 72 else poses
    return axis_angle_to_matrix(rotvecs)
