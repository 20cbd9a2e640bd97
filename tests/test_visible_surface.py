"""Ground-truth surface restricted to what the capture's cameras see."""

import numpy as np
import trimesh

from hfavatar_ns.synth.visible_surface import visible_faces, visible_surface


def _scene():
    outer = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    hidden = trimesh.creation.icosphere(subdivisions=2, radius=0.2)  # inside the outer sphere
    beside = trimesh.creation.icosphere(subdivisions=2, radius=0.2)
    beside.apply_translation([2.0, 0.0, 0.0])
    meshes = [outer, hidden, beside]
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes])
    vertices = np.concatenate([m.vertices for m in meshes])
    faces = np.concatenate([m.faces + o for m, o in zip(meshes, offsets)])
    part = np.concatenate([np.full(len(m.faces), i) for i, m in enumerate(meshes)])
    return vertices, faces, part


def _ring(count: int, radius: float = 5.0, height: float = 0.5) -> np.ndarray:
    angles = np.linspace(0, 2 * np.pi, count, endpoint=False)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles), np.full(count, height)], axis=1)


def test_enclosed_faces_are_dropped_and_visible_ones_kept():
    vertices, faces, part = _scene()
    visible = visible_faces(vertices, faces, _ring(8))
    assert not visible[part == 1].any()
    assert visible[part == 0].mean() > 0.9
    assert visible[part == 2].mean() > 0.9


def test_one_camera_sees_about_half_a_sphere():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    visible = visible_faces(np.asarray(sphere.vertices), np.asarray(sphere.faces), np.array([[100.0, 0.0, 0.0]]))
    assert 0.45 < visible.mean() < 0.55
    assert (sphere.triangles_center[visible][:, 0] > -0.05).all()


def test_visible_surface_reindexes_vertices():
    vertices, faces, part = _scene()
    kept_vertices, kept_faces = visible_surface(vertices, faces, _ring(8))
    assert kept_faces.max() == len(kept_vertices) - 1
    assert len(kept_vertices) < len(vertices)
    inner = np.linalg.norm(kept_vertices, axis=1) < 0.3
    assert not inner.any()
