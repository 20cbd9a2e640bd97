import pytest
import trimesh

from hfavatar_ns.evaluation.mesh_metrics import (
    chamfer_arah,
    chamfer_mm,
    chamfer_mm_where_right,
    f_score,
    mesh_metrics,
    normal_consistency,
)


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


def test_chamfer_where_the_reference_is_right_ignores_what_the_reference_lacks():
    """Truth: a ball with a box glued on; reference: the ball alone. A prediction equal to the reference
    scores 0 where the reference is right (its overall Chamfer pays for the box); one that is 1 cm off the
    ball pays 1 cm there, box or no box."""
    ball = trimesh.creation.icosphere(subdivisions=5, radius=0.3)
    box = trimesh.creation.box(extents=(0.2, 0.2, 0.2))
    box.apply_translation((0.0, 0.0, 0.41))
    truth = trimesh.util.concatenate([ball, box])
    assert chamfer_mm(ball, truth, 20_000) > 10.0
    assert chamfer_mm_where_right(ball, truth, ball, samples=20_000) < 0.5
    bigger = trimesh.creation.icosphere(subdivisions=5, radius=0.31)
    assert chamfer_mm_where_right(bigger, truth, ball, samples=20_000) == pytest.approx(10.0, rel=0.1)
    far = trimesh.creation.icosphere(subdivisions=2, radius=0.3)
    far.apply_translation((5.0, 0.0, 0.0))
    assert chamfer_mm_where_right(truth, truth, far, samples=2_000) != chamfer_mm_where_right(truth, truth, far, samples=2_000)  # NaN
