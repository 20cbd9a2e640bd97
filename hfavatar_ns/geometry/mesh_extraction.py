"""Watertight meshes from signed distance functions: chunked grid evaluation + marching cubes."""

from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.errors import InputError


def grid_points(
    bounds_min: Float[Tensor, "3"], bounds_max: Float[Tensor, "3"], resolution: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """The node coordinates along x, y and z of a ``resolution``^3 grid spanning the box (corners included)."""
    return tuple(torch.linspace(float(bounds_min[i]), float(bounds_max[i]), resolution) for i in range(3))  # type: ignore[return-value]


@torch.no_grad()
def evaluate_sdf_grid(
    sdf_fn: Callable[[Float[Tensor, "N 3"]], Float[Tensor, "N"]],
    bounds_min: Float[Tensor, "3"],
    bounds_max: Float[Tensor, "3"],
    resolution: int,
    chunk_size: int = 65536,
    device: Optional[torch.device] = None,
    progress: bool = False,
) -> np.ndarray:
    """``sdf_fn`` on every node of a grid over the box, one z-slab at a time so memory stays bounded.

    Returns a float32 array ``[X, Y, Z]`` (index ``[i, j, k]`` is the node at ``(x_i, y_j, z_k)``).
    """
    xs, ys, zs = grid_points(bounds_min, bounds_max, resolution)
    values = np.empty((resolution, resolution, resolution), dtype=np.float32)
    plane = torch.stack(torch.meshgrid(xs, ys, indexing="ij"), dim=-1).reshape(-1, 2)
    slabs = range(resolution)
    if progress:
        from tqdm import tqdm

        slabs = tqdm(slabs, desc="evaluating SDF", unit="slice")
    for k in slabs:
        points = torch.cat([plane, torch.full((plane.shape[0], 1), float(zs[k]))], dim=-1)
        if device is not None:
            points = points.to(device)
        out = [sdf_fn(chunk).reshape(-1).float().cpu() for chunk in points.split(chunk_size)]
        values[:, :, k] = torch.cat(out).reshape(resolution, resolution).numpy()
    return values


def marching_cubes_mesh(
    values: np.ndarray, bounds_min: Float[Tensor, "3"], bounds_max: Float[Tensor, "3"], level: float = 0.0
) -> Tuple[np.ndarray, np.ndarray]:
    """The ``level`` set of a grid of signed distances (negative inside) as a closed triangle mesh.

    The grid is padded with an outside value first, so a surface cut by the box still closes, and
    faces are oriented with normals pointing outwards (increasing SDF).

    Returns ``vertices`` [V,3] (world units of the box) and ``faces`` [F,3].
    """
    import mcubes

    if not (values.min() < level < values.max()):
        raise InputError(
            f"The SDF has no surface in the box (values from {values.min():.3g} to {values.max():.3g}, level {level}). "
            "The avatar is empty or the box misses it: train longer, check the frame, or enlarge the bounds."
        )
    padded = np.pad(values, 1, mode="constant", constant_values=max(float(values.max()), level + 1.0))
    # mcubes treats larger values as inside; negate so the SDF's negative inside becomes positive.
    vertices, faces = mcubes.marching_cubes(-padded, -level)
    resolution = np.array(values.shape, dtype=np.float64)
    low, high = np.asarray(bounds_min, np.float64), np.asarray(bounds_max, np.float64)
    vertices = (vertices - 1.0) / (resolution - 1.0) * (high - low) + low
    faces = faces.astype(np.int64)
    if _signed_volume(vertices, faces) < 0:
        faces = faces[:, ::-1].copy()
    return vertices, faces


def _signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (vertices[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def sdf_mesh(
    sdf_fn: Callable[[Tensor], Tensor],
    bounds: Float[Tensor, "2 3"],
    resolution: int,
    chunk_size: int = 65536,
    device: Optional[torch.device] = None,
    progress: bool = False,
    keep_largest_component: bool = False,
):
    """The zero level set of ``sdf_fn`` inside ``bounds`` as a closed ``trimesh.Trimesh``.

    ``keep_largest_component`` drops floating bits and keeps the piece with the most faces (as the ARAH
    evaluation does).
    """
    import trimesh

    bounds = bounds.detach().cpu()
    values = evaluate_sdf_grid(sdf_fn, bounds[0], bounds[1], resolution, chunk_size, device=device, progress=progress)
    vertices, faces = marching_cubes_mesh(values, bounds[0], bounds[1])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if keep_largest_component:
        pieces = mesh.split(only_watertight=False)
        if len(pieces) > 1:
            mesh = max(pieces, key=lambda piece: len(piece.faces))
    return mesh
