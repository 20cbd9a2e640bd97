"""A procedural walk: SMPL pose vectors, and a circular path with turning (EasyMocap ``Rh`` / ``Th``).

Joint axes are SMPL's canonical frame (y up, the subject facing +z, +x the subject's left): a leg or
arm swings forward by a negative rotation about x, a knee bends by a positive one, the arms hang
down from the T-pose by rotations about z. The world is z-up: ``Rh`` first turns the y-up body
upright (+90 degrees about x, after which it faces -y) and then yaws it about the world z axis.
``Th`` is chosen later (:func:`ground_translation`) so the pelvis follows the path and the lowest
point of the subject touches the ground.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from jaxtyping import Float
from scipy.spatial.transform import Rotation

from hfavatar_ns.body.skinning import SMPL_JOINT_NAMES

Array = np.ndarray
JOINT = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}


@dataclass
class Motion:
    """A pose sequence before it is put on the ground."""

    poses: Float[Array, "F 72"]
    """SMPL axis-angle pose vectors; the first three (root) are zero, as EasyMocap writes them."""
    Rh: Float[Array, "F 3"]
    """Global rotation (axis-angle) about the body model origin."""
    path: Float[Array, "F 2"]
    """Where the pelvis should be on the ground plane (world x, y), metres."""


def _rotvec(matrix: Float[Array, "F 3 3"]) -> Float[Array, "F 3"]:
    return Rotation.from_matrix(matrix).as_rotvec()


def _axis_rotation(axis: str, angle: Float[Array, "F"]) -> Float[Array, "F 3 3"]:
    return Rotation.from_euler(axis, np.asarray(angle, dtype=np.float64)[:, None]).as_matrix()


def walking_motion(
    num_frames: int,
    frame_step: int,
    seed: int,
    gait_period: float = 30.0,
    turn_period: float = 240.0,
    path_radius: float = 0.3,
) -> Motion:
    """A deterministic walk along a circle, with swinging legs and arms and small random variation.

    Args:
        num_frames: frames to produce.
        frame_step: motion steps between frames (30 steps per second).
        seed: random seed for amplitudes, phases, starting point and posture.
        gait_period: steps per walking cycle (a left and a right step).
        turn_period: steps per full turn along the circle.
        path_radius: radius of the circle walked, metres.
    """
    rng = np.random.default_rng([seed, 1])
    steps = np.arange(num_frames, dtype=np.float64) * frame_step
    phase = 2 * np.pi * steps / gait_period + rng.uniform(0, 2 * np.pi)

    hip_amp = 0.38 * rng.uniform(0.9, 1.1)
    knee_amp = 0.75 * rng.uniform(0.9, 1.1)
    arm_amp = 0.35 * rng.uniform(0.85, 1.15)
    arm_down = 1.2 + rng.uniform(-0.08, 0.08)
    elbow_rest = 0.25 + rng.uniform(-0.05, 0.05)
    head_turn = rng.uniform(-0.2, 0.2)

    rotations = np.tile(np.eye(3), (num_frames, 24, 1, 1))
    forward_left = hip_amp * np.sin(phase)  # how far the left thigh is forward (radians)
    forward_right = -forward_left
    for side, forward, leg_phase in (("left", forward_left, phase), ("right", forward_right, phase + np.pi)):
        rotations[:, JOINT[f"{side}_hip"]] = _axis_rotation("x", -forward)
        # The knee bends most in mid-swing, when the thigh passes from back to front.
        knee = 0.08 + knee_amp * np.clip(np.cos(leg_phase + 0.35), 0, None) ** 2
        rotations[:, JOINT[f"{side}_knee"]] = _axis_rotation("x", knee)
        rotations[:, JOINT[f"{side}_ankle"]] = _axis_rotation("x", 0.1 * forward - 0.2 * knee)
    for side, sign, arm_forward in (("left", -1.0, forward_right), ("right", 1.0, forward_left)):
        swing = arm_amp * arm_forward / hip_amp
        lower = _axis_rotation("z", np.full(num_frames, sign * arm_down))
        rotations[:, JOINT[f"{side}_shoulder"]] = _axis_rotation("x", -swing) @ lower
        elbow = elbow_rest + 0.3 * np.clip(swing, 0, None)
        rotations[:, JOINT[f"{side}_elbow"]] = _axis_rotation("y", sign * elbow)
    twist = 0.06 * np.sin(phase)
    for name in ("spine1", "spine2", "spine3"):
        rotations[:, JOINT[name]] = _axis_rotation("y", twist)
    rotations[:, JOINT["head"]] = Rotation.from_euler(
        "xy", np.stack([0.05 + 0.03 * np.sin(2 * phase), np.full(num_frames, head_turn) - 3 * twist], -1)
    ).as_matrix()

    poses = _rotvec(rotations.reshape(-1, 3, 3)).reshape(num_frames, 72)
    poses[:, :3] = 0.0

    # Walk counter-clockwise along the circle, facing the direction of travel, with a slight sway.
    angle = rng.uniform(0, 2 * np.pi) + 2 * np.pi * steps / turn_period
    path = path_radius * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
    # After +90 deg about x the body faces -y; a yaw psi about z makes it face (sin psi, -cos psi).
    # The tangent of the circle is (-sin a, cos a), so psi = a + pi.
    yaw = angle + np.pi + 0.05 * np.sin(phase)
    upright = Rotation.from_euler("x", np.pi / 2)
    Rh = (Rotation.from_euler("z", yaw[:, None]) * upright).as_rotvec()
    return Motion(poses=poses, Rh=Rh, path=path)


def ground_translation(
    lowest_z: Float[Array, "F"], pelvis_xy: Float[Array, "F 2"], path: Float[Array, "F 2"]
) -> Float[Array, "F 3"]:
    """``Th`` that moves the pelvis onto the path and the lowest point of the subject onto ``z = 0``.

    Args:
        lowest_z: lowest world z of the posed subject with ``Th = 0``.
        pelvis_xy: pelvis position on the ground plane with ``Th = 0``.
        path: target pelvis position on the ground plane.
    """
    return np.concatenate([path - pelvis_xy, -lowest_z[:, None]], axis=-1)
