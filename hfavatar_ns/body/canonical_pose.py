"""The canonical pose the avatar is learned in: a "star" pose with the legs apart.

The body model's zero pose (a T-pose) keeps the thighs touching, so a canonical field there would
have to separate them; spreading the legs makes every limb its own region of canonical space.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import torch
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.body.skinning import NUM_JOINTS, axis_angle_to_matrix, forward_kinematics, linear_blend_skinning

LEFT_HIP, RIGHT_HIP = 1, 2


def star_pose(leg_angle: float) -> Float[Tensor, "72"]:
    """SMPL pose vector with the hips abducted by ``leg_angle`` radians each (left leg towards +x)."""
    pose = torch.zeros(NUM_JOINTS, 3)
    pose[LEFT_HIP, 2] = leg_angle
    pose[RIGHT_HIP, 2] = -leg_angle
    return pose.reshape(-1)


def canonical_pose_transforms(
    rest_joints: Float[Tensor, "24 3"], parents: Sequence[int], pose: Float[Tensor, "72"]
) -> Float[Tensor, "24 4 4"]:
    """Bone transforms from the body model's rest pose to the canonical pose."""
    rotations = axis_angle_to_matrix(pose.reshape(NUM_JOINTS, 3).to(rest_joints))
    transforms, _ = forward_kinematics(rotations, rest_joints, parents)
    return transforms


def rebase_to_canonical(
    rest_vertices: Float[Tensor, "V 3"],
    skinning_weights: Float[Tensor, "V 24"],
    rest_to_canonical: Float[Tensor, "24 4 4"],
    rest_to_observation: Float[Tensor, "F 24 4 4"],
) -> Tuple[Float[Tensor, "V 3"], Float[Tensor, "F 24 4 4"]]:
    """Canonical-pose vertices, and per-frame bone transforms that start from the canonical pose.

    ``G_obs<-canonical = G_obs<-rest @ inverse(G_canonical<-rest)`` per bone, so skinning canonical
    points reproduces the same posed body (up to LBS's blending of the two rigid maps).
    """
    canonical_vertices = linear_blend_skinning(rest_vertices, skinning_weights, rest_to_canonical)
    return canonical_vertices, rest_to_observation @ torch.linalg.inv(rest_to_canonical)[None]
