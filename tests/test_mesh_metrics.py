import pytest
import trimesh

from hfavatar_ns.evaluation.mesh_metrics import chamfer_arah, chamfer_mm, f_score, mesh_metrics, normal_consistency


def test_identical_meshes_score_perfectly():
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    metrics = mesh_metrics(sphere, sphere, samples=20_000)
    assert metrics.chamfer_arah_cm2 == pytest.approx(0.0, abs=1e-9)
    assert metrics.chamfer_mm < 0.01
    assert metrics.normal_consistency == pytest.approx(1.0)
    assert metrics.f_score_1cm == pytest.approx(1.0)


def test_known_offset_sphere():
    """Concentric spheres 1 cm apart: every distance is 1 cm."""
    inner = trimesh.creation.icosphere(subdivisions=5, radius=0.5)
    outer = trimesh.creation.icosphere(subdivisions=5, radius=0.51)
    # vertices x100 -> 1 cm = 1 unit; 0.5 * (1 + 1) = 1 cm^2
    assert chamfer_arah(inner, outer) == pytest.approx(1.0, rel=0.02)
    assert chamfer_mm(inner, outer, 20_000) == pytest.approx(10.0, rel=0.05)
    assert normal_consistency(inner, outer) == pytest.approx(1.0, abs=1e-6)
    assert f_score(inner, outer, threshold=0.005, samples=20_000) < 0.05
    assert f_score(inner, outer, threshold=0.015, samples=20_000) > 0.95


def test_flipped_normals_are_penalised():
    sphere = trimesh.creation.icosphere(subdivisions=3)
    flipped = trimesh.Trimesh(sphere.vertices, sphere.faces[:, ::-1], process=False)
    assert normal_consistency(flipped, sphere) == pytest.approx(-1.0, abs=1e-6)
