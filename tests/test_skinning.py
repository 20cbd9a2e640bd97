import math

import torch

from hfavatar_ns.body.skinning import (
    SMPL_PARENTS,
    axis_angle_to_matrix,
    forward_kinematics,
    global_transform,
    inverse_linear_blend_skinning,
    linear_blend_skinning,
    pose_to_local_rotations,
    transform_points,
)


def test_axis_angle_quarter_turn_about_z():
    rotation = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    assert torch.allclose(rotation @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)


def test_forward_kinematics_identity_pose_is_identity():
    joints = torch.randn(24, 3)
    transforms, posed = forward_kinematics(torch.eye(3).expand(24, 3, 3), joints, SMPL_PARENTS)
    assert torch.allclose(transforms, torch.eye(4).expand(24, 4, 4), atol=1e-6)
    assert torch.allclose(posed, joints, atol=1e-6)


def test_forward_kinematics_rotates_children_about_the_parent_joint():
    # A 3-joint chain along x; bend joint 1 by 90 degrees about z: joint 2 swings up about joint 1.
    joints = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [2.0, 0, 0]])
    rotations = torch.eye(3).repeat(3, 1, 1)
    rotations[1] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    transforms, posed = forward_kinematics(rotations, joints, (-1, 0, 1))
    assert torch.allclose(posed[2], torch.tensor([1.0, 1.0, 0.0]), atol=1e-6)
    # A point rigidly on bone 1, halfway to joint 2, follows.
    assert torch.allclose(transform_points(transforms[1], torch.tensor([1.5, 0, 0])), torch.tensor([1.0, 0.5, 0]), atol=1e-6)


def test_lbs_round_trip_with_true_weights():
    torch.manual_seed(0)
    joints = torch.randn(24, 3) * 0.3
    local = pose_to_local_rotations(torch.randn(72) * 0.4)
    transforms, _ = forward_kinematics(local, joints, SMPL_PARENTS)
    transforms = global_transform(torch.tensor([0.1, 1.0, -0.2]), torch.tensor([0.5, 0.0, 2.0])) @ transforms
    points = torch.randn(500, 3)
    weights = torch.softmax(torch.randn(500, 24) * 3, dim=-1)
    posed = linear_blend_skinning(points, weights, transforms)
    back = inverse_linear_blend_skinning(posed, weights, transforms)
    assert torch.allclose(back, points, atol=1e-4)


def test_lbs_gradients_reach_weights_and_transforms():
    transforms = torch.eye(4).repeat(24, 1, 1).requires_grad_(True)
    weights = torch.full((10, 24), 1 / 24, requires_grad=True)
    linear_blend_skinning(torch.randn(10, 3), weights, transforms).sum().backward()
    assert weights.grad is not None and transforms.grad is not None
