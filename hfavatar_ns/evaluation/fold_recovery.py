"""Fold recovery: how much of the clothing's folds a reconstructed surface reproduces.

Chamfer distance and normal consistency barely move when a surface loses folds a few millimetres deep, so
they cannot say whether a method learned "fine geometric details". A capture that knows its fold-free
clothed surface and the folds' true displacement from it (``hfavatar-synth`` writes both, per frame, in
``ground_truth/folds/``) can: at each point of the fold-free surface, the reconstruction's offset from
it along the surface's normal, and fold recovery is the
correlation of that offset with the true displacement. It needs neither a closed reconstruction nor a
closed truth (ground-truth meshes hold only the faces cameras see). 1: the folds are reproduced (up to a uniform
scale and shift); 0: a smooth surface, or one whose bumps are unrelated to the folds (noise).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import trimesh

__all__ = ["fold_recovery", "offsets_along_normals", "read_folds"]


def read_folds(capture_root: Path, frame_id: int) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The fold-free torso's points ``[N, 3]``, outward unit normals ``[N, 3]`` and the folds' true displacements
    ``[N]`` along them, for one frame; None when the capture has none (captures made before fold ground
    truth existed, real captures)."""
    path = Path(capture_root) / "ground_truth" / "folds" / f"{frame_id:06d}.npz"
    if not path.exists():
        return None
    with np.load(path) as data:
        return tuple(data[key].astype(np.float64) for key in ("points", "normals", "displacement"))  # type: ignore


def offsets_along_normals(
    mesh: trimesh.Trimesh, points: np.ndarray, normals: np.ndarray, max_distance: float
) -> np.ndarray:
    """Signed distance from each point to ``mesh`` along its normal line (outwards positive: the nearer of
    the first hits along ``+normal`` and ``-normal``); NaN where neither hits within ``max_distance``.

    Measured along the normal rather than to the nearest point: folds are steep (a 2 cm fold a few
    millimetres deep slopes at up to ~45 degrees), and the nearest point of a steep fold lies beside the
    point, not above it."""
    best = np.full(len(points), np.nan)
    best_length = np.full(len(points), np.inf)
    for sign in (1.0, -1.0):
        directions = sign * normals
        locations, index_ray, _ = mesh.ray.intersects_location(points, directions, multiple_hits=False)
        length = np.einsum("ij,ij->i", locations - points[index_ray], directions[index_ray])
        closer = (length <= max_distance) & (length < best_length[index_ray])
        best_length[index_ray[closer]] = length[closer]
        best[index_ray[closer]] = sign * length[closer]
    return best


def fold_recovery(
    predicted: trimesh.Trimesh,
    points: np.ndarray,
    normals: np.ndarray,
    displacement: np.ndarray,
    max_distance: float = 0.03,
) -> float:
    """Correlation between the true fold ``displacement`` at fold-free surface ``points`` (unit ``normals``) and
    the offset of ``predicted`` from them along the normals. Points where ``predicted`` is farther than
    ``max_distance`` along the normal line are left out; NaN when over half are, or either side is constant."""
    offset = offsets_along_normals(predicted, points, normals, max_distance)
    found = np.isfinite(offset)
    if found.mean() < 0.5:
        return float("nan")
    offset, displacement = offset[found], displacement[found]
    if offset.std() == 0 or displacement.std() == 0:
        return float("nan")
    return float(np.corrcoef(offset, displacement)[0, 1])
