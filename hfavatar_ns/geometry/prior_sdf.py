"""The body-prior SDF: signed distance to the canonical body mesh, precomputed on a grid.

HF-Avatar's canonical SDF is ``base + residual``: the *base* is the signed distance to the canonical
(rest-pose) body mesh, so the learned residual only has to model clothing and detail. Computing an
exact mesh distance per sample is far too slow for training, so the base SDF is tabulated once on a
regular grid over the canonical bounding box (:func:`build_sdf_grid`) and read back between nodes
(:func:`query_sdf_grid`), differentiably with respect to the query points (twice: the eikonal loss
back-propagates through the gradient). Trilinear reads are only C0, so their normals are faceted; the
cubic B-spline through the same values is C2, for 64 taps a read instead of 8.

Conventions:

* Negative inside the body, positive outside, metres (the mesh's units).
* Grid values are stored ``values[i, j, k]`` = SDF at ``bounds_min + (i, j, k) * spacing``: the first
  index is x, the second y, the third z, and the grid's corner nodes lie exactly on the bounds
  (``align_corners=True`` semantics).

The exact distances come from libigl (``pip install libigl``): the unsigned distance is exact to the
triangles (AABB tree) and the sign is the fast generalised winding number, which stays right for
meshes that are not watertight or that overlap themselves (inside where the winding number > 0.5).
"""

from __future__ import annotations

from typing import Literal, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hfavatar_ns.geometry.tricubic import bspline_coefficients, tricubic_sample
from hfavatar_ns.geometry.trilinear import grid_index_extent, trilinear_sample

Interpolation = Literal["trilinear", "tricubic"]

__all__ = ["EllipsoidSDF", "SDFGrid", "build_sdf_grid", "isotropic_resolution", "query_sdf_grid", "signed_distance_to_mesh"]


def _import_igl():
    try:
        import igl  # libigl's Python bindings, imported only where needed
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The body-prior SDF needs libigl's Python bindings. Install them with `pip install libigl` "
            "(the package is `libigl`, the module `igl`)."
        ) from error
    return igl


def _as_numpy(array, dtype) -> np.ndarray:
    if isinstance(array, Tensor):
        array = array.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(array, dtype=dtype))


def signed_distance_to_mesh(
    vertices: Float[Tensor, "V 3"],
    faces: Int[Tensor, "F 3"],
    points: Float[Tensor, "N 3"],
) -> Float[Tensor, "N"]:
    """Exact signed distance from points to a triangle mesh (negative inside).

    Not differentiable (computed with libigl on the CPU, in float64); use it to build a grid, not
    per training sample.

    Args:
        vertices: mesh vertex positions ``[V, 3]``.
        faces: triangle vertex indices ``[F, 3]``; orientation only matters for inside/outside
            (outward-facing, counter-clockwise seen from outside, as trimesh and SMPL use).
        points: query positions ``[N, 3]``, in the mesh's frame.

    Returns:
        ``[N]`` signed distances, in the dtype and on the device of ``points``. The magnitude is the
        exact Euclidean distance to the nearest triangle; the sign is negative where the generalised
        winding number exceeds 0.5, so small holes and self-overlapping parts (e.g. a body merged
        from primitives) are handled.
    """
    igl = _import_igl()
    vertices_np = _as_numpy(vertices, np.float64)
    faces_np = _as_numpy(faces, np.int64)
    points_np = _as_numpy(points, np.float64).reshape(-1, 3)
    if points_np.shape[0] == 0:
        return torch.zeros(0, dtype=points.dtype, device=points.device)
    distances, _, _, _ = igl.signed_distance(
        points_np, vertices_np, faces_np, igl.SIGNED_DISTANCE_TYPE_FAST_WINDING_NUMBER
    )
    return torch.from_numpy(distances).to(dtype=points.dtype, device=points.device)


class SDFGrid(nn.Module):
    """A signed distance field tabulated on a regular grid (nodes on the box's corners).

    The tensors are buffers, so ``.to(device)`` moves them and they are saved in a checkpoint.
    Calling the module is :func:`query_sdf_grid`.

    Args:
        values: ``[X, Y, Z]`` SDF at the grid nodes; ``values[i, j, k]`` is the SDF at
            ``bounds_min + (i, j, k) * (bounds_max - bounds_min) / (shape - 1)``.
        bounds_min: ``[3]`` position of node ``(0, 0, 0)``.
        bounds_max: ``[3]`` position of node ``(X-1, Y-1, Z-1)``.
        interpolation: how values between nodes are read: ``trilinear`` (C0) or ``tricubic`` (a C2 cubic
            B-spline through the nodes' values, whose coefficients are derived from ``values`` and not saved).
    """

    values: Tensor
    bounds_min: Tensor
    bounds_max: Tensor

    def __init__(
        self,
        values: Float[Tensor, "X Y Z"],
        bounds_min: Float[Tensor, "3"],
        bounds_max: Float[Tensor, "3"],
        interpolation: Interpolation = "trilinear",
    ) -> None:
        super().__init__()
        if interpolation not in ("trilinear", "tricubic"):
            raise ValueError(f"SDF grid interpolation must be 'trilinear' or 'tricubic', got {interpolation!r}")
        if values.ndim != 3 or min(values.shape) < 2:
            raise ValueError(
                f"SDF grid values must be [X, Y, Z] with at least 2 nodes per axis, got {tuple(values.shape)}"
            )
        bounds_min = torch.as_tensor(bounds_min, dtype=values.dtype, device=values.device).reshape(3)
        bounds_max = torch.as_tensor(bounds_max, dtype=values.dtype, device=values.device).reshape(3)
        if not bool((bounds_max > bounds_min).all()):
            raise ValueError(f"SDF grid bounds are empty: min {bounds_min.tolist()}, max {bounds_max.tolist()}")
        self.register_buffer("values", values)
        self.register_buffer("bounds_min", bounds_min)
        self.register_buffer("bounds_max", bounds_max)
        self.interpolation = interpolation
        if interpolation == "tricubic":
            self.register_buffer("coefficients", bspline_coefficients(values), persistent=False)
            self.register_load_state_dict_post_hook(SDFGrid._refilter_after_loading)

    @staticmethod
    def _refilter_after_loading(module: "SDFGrid", incompatible_keys) -> None:
        # The coefficients follow the loaded values (they are derived, so checkpoints do not carry them).
        module.coefficients = bspline_coefficients(module.values)

    @property
    def resolution(self) -> Tuple[int, int, int]:
        """Number of nodes along x, y and z."""
        return tuple(self.values.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> Float[Tensor, "3"]:
        """Distance between neighbouring nodes along x, y and z."""
        return (self.bounds_max - self.bounds_min) / (torch.tensor(self.values.shape, device=self.values.device) - 1)

    def node_positions(self) -> Float[Tensor, "X Y Z 3"]:
        """Positions of all grid nodes (``[..., 0]`` is x)."""
        return _grid_nodes(self.bounds_min, self.bounds_max, self.resolution)

    def forward(self, points: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch"]:
        return query_sdf_grid(self, points)


def _grid_nodes(
    bounds_min: Float[Tensor, "3"], bounds_max: Float[Tensor, "3"], resolution: Sequence[int]
) -> Float[Tensor, "X Y Z 3"]:
    axes = [
        torch.linspace(float(bounds_min[d]), float(bounds_max[d]), int(resolution[d]), dtype=bounds_min.dtype)
        for d in range(3)
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).to(bounds_min.device)


def isotropic_resolution(
    bounds_min: Float[Tensor, "3"], bounds_max: Float[Tensor, "3"], longest: int
) -> Tuple[int, int, int]:
    """Nodes per axis for ``longest`` nodes along the box's longest side and (at most) the same spacing on
    the others: a body's box is flat (about 1.9 x 1.8 x 0.6 m in the star pose), so a cube of nodes would
    spend a third of its budget on one thin axis and leave 3 cm cells across the other two."""
    low, high = (torch.as_tensor(corner, dtype=torch.float64).reshape(3).cpu() for corner in (bounds_min, bounds_max))
    extent = high - low
    if longest < 2 or not bool((extent > 0).all()):
        raise ValueError(f"Need at least 2 nodes and a non-empty box, got {longest} nodes and extent {extent.tolist()}")
    intervals = torch.ceil(extent / extent.max() * (longest - 1) - 1e-9).clamp(min=1).long()
    return tuple(int(n) + 1 for n in intervals)  # type: ignore[return-value]


def build_sdf_grid(
    vertices: Float[Tensor, "V 3"],
    faces: Int[Tensor, "F 3"],
    bounds_min: Float[Tensor, "3"],
    bounds_max: Float[Tensor, "3"],
    resolution: int | Sequence[int],
    interpolation: Interpolation = "trilinear",
) -> SDFGrid:
    """Tabulate the signed distance to a mesh on a regular grid (done once per subject).

    Args:
        vertices: ``[V, 3]`` mesh vertices (for HF-Avatar: the canonical body).
        faces: ``[F, 3]`` triangle indices.
        bounds_min: ``[3]`` lower corner of the grid (pad the mesh's bounding box by a few cm so
            clothing far from the body still falls inside).
        bounds_max: ``[3]`` upper corner.
        resolution: nodes per axis, one int for all three or ``(X, Y, Z)``.
        interpolation: how the grid is read between nodes (see :class:`SDFGrid`).

    Returns:
        An :class:`SDFGrid` in float32 on the device of ``vertices``. Cost: one exact
        signed-distance query per node (``resolution**3`` queries; see :func:`signed_distance_to_mesh`).
    """
    if isinstance(resolution, int):
        resolution = (resolution, resolution, resolution)
    resolution = tuple(int(r) for r in resolution)
    device = vertices.device if isinstance(vertices, Tensor) else torch.device("cpu")
    bounds_min = torch.as_tensor(bounds_min, dtype=torch.float64).reshape(3).cpu()
    bounds_max = torch.as_tensor(bounds_max, dtype=torch.float64).reshape(3).cpu()
    nodes = _grid_nodes(bounds_min, bounds_max, resolution)
    values = signed_distance_to_mesh(vertices, faces, nodes.reshape(-1, 3)).reshape(resolution)
    return SDFGrid(values.float(), bounds_min.float(), bounds_max.float(), interpolation).to(device)


def query_sdf_grid(grid: SDFGrid, points: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch"]:
    """The grid's SDF at ``points``, read as the grid's ``interpolation`` says; differentiable (also twice)
    with respect to ``points``.

    Outside the grid's box the value is the SDF at the nearest point of the box plus the distance
    to the box, so it keeps growing away from the body and never underestimates the distance to a
    surface inside the box by more than the interpolation error (a safe, upper-bound-like value).

    Args:
        grid: the tabulated SDF.
        points: ``[*batch, 3]`` query positions in the grid's frame.

    Returns:
        ``[*batch]`` SDF values in the dtype of the grid.
    """
    batch_shape = points.shape[:-1]
    flat = points.reshape(-1, 3).to(grid.values.dtype)
    lower, upper = grid.bounds_min, grid.bounds_max
    clamped = torch.minimum(torch.maximum(flat, lower), upper)
    extent = grid_index_extent(grid.values.shape, flat.device, flat.dtype)
    coords = (clamped - lower) / (upper - lower) * extent
    if grid.interpolation == "tricubic":
        inside_value = tricubic_sample(grid.coefficients, coords)
    else:
        inside_value = trilinear_sample(grid.values[None], coords).reshape(-1)
    # Distance to the box, zero inside. The norm's gradient at 0 is NaN, so it is only evaluated
    # (and differentiated) for points that are really outside.
    is_outside = (flat < lower).any(dim=-1) | (flat > upper).any(dim=-1)
    offset = torch.where(is_outside[:, None], flat - clamped, torch.ones_like(flat))
    outside_distance = torch.where(is_outside, offset.norm(dim=-1), torch.zeros_like(inside_value))
    return (inside_value + outside_distance).reshape(batch_shape)


class PriorSDF(nn.Module):
    """The canonical body's signed distance, tabulated once on a grid and read between nodes by ``interpolation``."""

    def __init__(
        self,
        vertices: Float[Tensor, "V 3"],
        faces: Int[Tensor, "F 3"],
        bounds: Float[Tensor, "2 3"],
        resolution: int,
        isotropic: bool = False,
        interpolation: Interpolation = "trilinear",
    ) -> None:
        super().__init__()
        nodes = isotropic_resolution(bounds[0], bounds[1], resolution) if isotropic else resolution
        self.grid = build_sdf_grid(vertices, faces, bounds[0], bounds[1], nodes, interpolation)

    def forward(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]:
        return query_sdf_grid(self.grid, points)


class EllipsoidSDF(nn.Module):
    """An axis-aligned ellipsoid's approximate signed distance: the shape a field starts from when it has no
    body prior (the ablation of the prior; methods without one start from a sphere). The value is the
    ellipsoid's normalised radius minus one, scaled by its shortest semi-axis, so it is exact on the
    surface and along that axis and within the eikonal loss's reach elsewhere.

    Args:
        centre: ``[3]`` the ellipsoid's centre.
        radii: ``[3]`` its semi-axes along x, y and z.
    """

    def __init__(self, centre: Float[Tensor, "3"], radii: Float[Tensor, "3"]) -> None:
        super().__init__()
        radii = torch.as_tensor(radii, dtype=torch.float32).reshape(3)
        if not bool((radii > 0).all()):
            raise ValueError(f"Ellipsoid semi-axes must be positive, got {radii.tolist()}")
        self.register_buffer("centre", torch.as_tensor(centre, dtype=torch.float32).reshape(3))
        self.register_buffer("radii", radii)

    @classmethod
    def around(cls, vertices: Float[Tensor, "V 3"]) -> "EllipsoidSDF":
        """The ellipsoid through the faces' midpoints of the vertices' bounding box."""
        low, high = vertices.detach().amin(dim=0), vertices.detach().amax(dim=0)
        return cls((low + high) / 2, (high - low) / 2)

    def forward(self, points: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch"]:
        scaled = (points - self.centre) / self.radii
        # The small constant keeps the gradient finite at the centre.
        return (torch.sqrt((scaled * scaled).sum(dim=-1) + 1e-12) - 1.0) * self.radii.min()
