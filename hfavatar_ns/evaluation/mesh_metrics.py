"""Mesh metrics against ground truth, with the protocols the field reports.

* :func:`chamfer_arah`: ARAH's Chamfer distance (posed meshes in world coordinates, no alignment,
  vertices x100, ``0.5 * (mean d^2 pred->gt + mean d^2 gt->pred)`` over mesh *vertices*; cm^2).
* :func:`chamfer_mm`: the symmetric mean distance from points sampled uniformly on each surface to
  the other *surface* (exact point-to-triangle distance), in millimetres: independent of how finely
  either mesh is triangulated.
* :func:`normal_consistency`: ARAH's one-directional ``1 - mean |n_pred - n_gt|`` over GT vertices
  and their nearest predicted vertices.
* :func:`f_score`: harmonic mean of precision and recall of surface samples at a distance threshold.
* :func:`chamfer_mm_where_right`: :func:`chamfer_mm` over the part of the truth a reference surface (the
  posed body model) already gets right, so that a method that only adds what the body lacks scores there
  what the body scores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict

import numpy as np
import trimesh
from scipy.spatial import cKDTree


def nearest_distances(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Distance from each source point to its nearest target point."""
    distances, _ = cKDTree(target).query(source, k=1)
    return distances


def chamfer_arah(predicted: trimesh.Trimesh, ground_truth: trimesh.Trimesh) -> float:
    """ARAH's Chamfer distance in cm^2 on mesh vertices (see the module docstring)."""
    pred, gt = np.asarray(predicted.vertices) * 100.0, np.asarray(ground_truth.vertices) * 100.0
    return 0.5 * float((nearest_distances(pred, gt) ** 2).mean() + (nearest_distances(gt, pred) ** 2).mean())


def surface_samples(mesh: trimesh.Trimesh, count: int, seed: int = 0) -> np.ndarray:
    points, _ = trimesh.sample.sample_surface(mesh, count, seed=seed)
    return np.asarray(points)


def distances_to_surface(points: np.ndarray, mesh: trimesh.Trimesh) -> np.ndarray:
    """Exact distance from each point to the mesh's triangles (libigl's AABB tree)."""
    import igl

    squared, _, _ = igl.point_mesh_squared_distance(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(mesh.vertices, dtype=np.float64),
        np.ascontiguousarray(mesh.faces, dtype=np.int64),
    )
    return np.sqrt(squared)


def chamfer_mm(predicted: trimesh.Trimesh, ground_truth: trimesh.Trimesh, samples: int = 100_000) -> float:
    """Symmetric mean surface-to-surface distance in millimetres (uniform samples on each, exact distances)."""
    pred, gt = surface_samples(predicted, samples, 1), surface_samples(ground_truth, samples, 2)
    return 500.0 * float(distances_to_surface(pred, ground_truth).mean() + distances_to_surface(gt, predicted).mean())


def normal_consistency(predicted: trimesh.Trimesh, ground_truth: trimesh.Trimesh) -> float:
    """ARAH's normal consistency: for every GT vertex, its nearest predicted vertex; ``1 - mean |n_p - n_g|``."""
    _, nearest = cKDTree(np.asarray(predicted.vertices)).query(np.asarray(ground_truth.vertices), k=1)
    difference = np.asarray(predicted.vertex_normals)[nearest] - np.asarray(ground_truth.vertex_normals)
    return 1.0 - float(np.linalg.norm(difference, axis=1).mean())


def f_score(
    predicted: trimesh.Trimesh, ground_truth: trimesh.Trimesh, threshold: float = 0.01, samples: int = 100_000
) -> float:
    """F-score of surface samples at ``threshold`` metres (default 1 cm)."""
    pred, gt = surface_samples(predicted, samples, 1), surface_samples(ground_truth, samples, 2)
    precision = float((distances_to_surface(pred, ground_truth) < threshold).mean())
    recall = float((distances_to_surface(gt, predicted) < threshold).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def chamfer_mm_where_right(
    predicted: trimesh.Trimesh,
    ground_truth: trimesh.Trimesh,
    reference: trimesh.Trimesh,
    tolerance: float = 0.005,
    samples: int = 100_000,
) -> float:
    """:func:`chamfer_mm` restricted to the truth's samples within ``tolerance`` metres of ``reference``'s
    surface and the predicted samples whose nearest truth sample is one of those; NaN when there are none."""
    pred, gt = surface_samples(predicted, samples, 1), surface_samples(ground_truth, samples, 2)
    agreed = distances_to_surface(gt, reference) < tolerance
    _, nearest = cKDTree(gt).query(pred, k=1)
    kept = agreed[nearest]
    if not agreed.any() or not kept.any():
        return float("nan")
    to_truth = distances_to_surface(pred[kept], ground_truth).mean()
    return 500.0 * float(to_truth + distances_to_surface(gt[agreed], predicted).mean())


@dataclass
class MeshMetrics:
    chamfer_arah_cm2: float
    chamfer_mm: float
    normal_consistency: float
    f_score_1cm: float

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def mesh_metrics(predicted: trimesh.Trimesh, ground_truth: trimesh.Trimesh, samples: int = 100_000) -> MeshMetrics:
    """Every metric above for one predicted mesh against its ground truth."""
    return MeshMetrics(
        chamfer_arah_cm2=chamfer_arah(predicted, ground_truth),
        chamfer_mm=chamfer_mm(predicted, ground_truth, samples),
        normal_consistency=normal_consistency(predicted, ground_truth),
        f_score_1cm=f_score(predicted, ground_truth, 0.01, samples),
    )
