"""Fold recovery against a known answer: a ball with folds, the smooth ball, and unrelated bumps."""

import numpy as np
import trimesh

from hfavatar_ns.evaluation.fold_recovery import fold_recovery

RADIUS = 0.3


def _folds(points: np.ndarray, phase: float = 0.0) -> np.ndarray:
    return 0.004 * np.sin(points[:, 1] / RADIUS * 12.0 + phase)


def _ball(displacement_fn=None) -> trimesh.Trimesh:
    ball = trimesh.creation.icosphere(subdivisions=6, radius=RADIUS)
    if displacement_fn is not None:
        directions = ball.vertices / np.linalg.norm(ball.vertices, axis=1, keepdims=True)
        ball = trimesh.Trimesh(ball.vertices + displacement_fn(ball.vertices)[:, None] * directions, ball.faces)
    return ball


def _fold_free_points():
    points = trimesh.creation.icosphere(subdivisions=4, radius=RADIUS).vertices
    return points, points / RADIUS, _folds(points)


def test_the_folded_surface_scores_one_and_inverted_folds_minus_one():
    points, normals, displacement = _fold_free_points()
    assert fold_recovery(_ball(_folds), points, normals, displacement) > 0.97
    assert fold_recovery(_ball(lambda p: -_folds(p)), points, normals, displacement) < -0.97


def test_smooth_and_unrelated_surfaces_score_near_zero():
    points, normals, displacement = _fold_free_points()
    assert abs(fold_recovery(_ball(), points, normals, displacement)) < 0.2
    unrelated = lambda p: 0.004 * np.sin(p[:, 0] / RADIUS * 17.0) * np.cos(p[:, 2] / RADIUS * 11.0)  # noqa: E731
    assert abs(fold_recovery(_ball(unrelated), points, normals, displacement)) < 0.2
