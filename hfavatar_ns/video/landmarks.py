"""mediapipe's 33 BlazePose landmarks as observations of the body model's 24 SMPL-tree joints."""

from __future__ import annotations

from typing import Tuple

import numpy as np
from jaxtyping import Float

BLAZEPOSE_NAMES: Tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)  # fmt: skip

# (landmarks averaged, SMPL joint, weight). Both skeletons name sides from the person's view. BlazePose's
# hips sit a little outside and above SMPL's hip joints and its foot index at the toe tips (SMPL's foot
# joint is at the toes' base), so those count less; the ears' midpoint stands for SMPL's head joint.
JOINT_OBSERVATIONS: Tuple[Tuple[Tuple[int, ...], int, float], ...] = (
    ((11,), 16, 1.0),  # shoulders
    ((12,), 17, 1.0),
    ((13,), 18, 1.0),  # elbows
    ((14,), 19, 1.0),
    ((15,), 20, 1.0),  # wrists
    ((16,), 21, 1.0),
    ((23,), 1, 0.7),  # hips
    ((24,), 2, 0.7),
    ((25,), 4, 1.0),  # knees
    ((26,), 5, 1.0),
    ((27,), 7, 1.0),  # ankles
    ((28,), 8, 1.0),
    ((31,), 10, 0.4),  # feet
    ((32,), 11, 0.4),
    ((7, 8), 15, 0.5),  # head
)
OBSERVED_JOINTS: Tuple[int, ...] = tuple(joint for _, joint, _ in JOINT_OBSERVATIONS)
JOINT_WEIGHTS = np.array([weight for _, _, weight in JOINT_OBSERVATIONS], np.float32)

# Bones whose 3D direction mediapipe's metric "world" landmarks give (indices into JOINT_OBSERVATIONS):
# they settle what one camera cannot see, whether a limb points towards it or away.
BONES: Tuple[Tuple[int, int], ...] = (
    (0, 2), (2, 4), (1, 3), (3, 5),  # arms
    (6, 8), (8, 10), (7, 9), (9, 11),  # legs
    (0, 1), (6, 7), (0, 6), (1, 7),  # torso
)  # fmt: skip

TORSO = (0, 1, 6, 7)
"""Shoulders and hips (indices into JOINT_OBSERVATIONS): what the first, rigid, stage of a fit aligns."""


def observed_joints(
    landmarks: Float[np.ndarray, "*batch 33 C"], visibility: Float[np.ndarray, "*batch 33"]
) -> Tuple[Float[np.ndarray, "*batch K C"], Float[np.ndarray, "*batch K"]]:
    """BlazePose landmarks as the observed SMPL joints (K = len(JOINT_OBSERVATIONS)) and their visibility."""
    points = np.stack([landmarks[..., list(ids), :].mean(axis=-2) for ids, _, _ in JOINT_OBSERVATIONS], axis=-2)
    seen = np.stack([visibility[..., list(ids)].min(axis=-1) for ids, _, _ in JOINT_OBSERVATIONS], axis=-1)
    return points, seen
