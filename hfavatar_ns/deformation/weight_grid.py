"""Skinning weights of arbitrary points from a body's vertices, precomputed on voxel grids.

A body model gives skinning weights only at its vertices. A point off the surface gets the
inverse-distance blend of its K nearest vertices' weights (:func:`nearest_vertex_skinning_weights`).
That query is far too slow to run on every training sample, so it runs once per node of a voxel grid
(:func:`build_weight_grid`) and samples are looked up trilinearly (:func:`query_weight_grid`).

Grid layout, used by every function here: ``values[c, i, j, k]`` is channel ``c`` at the node
``bounds_min + (i, j, k) * (bounds_max - bounds_min) / (resolution - 1)``, i.e. the first spatial axis
of ``values`` is x, the second y, the third z; the outermost nodes lie on the bounds
(``align_corners=True`` in :func:`torch.nn.functional.grid_sample`'s terms).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Tuple, Union

import numpy as np
import torch
from jaxtyping import Float, Int
from scipy.spatial import cKDTree
from torch import Tensor, nn

from hfavatar_ns.body.body_frames import PosedBodies, StaticPosedBodies
from hfavatar_ns.geometry.trilinear import grid_index_extent, trilinear_rows, trilinear_sample

Resolution = Union[int, Tuple[int, int, int]]


def _resolution3(resolution: Resolution) -> Tuple[int, int, int]:
    res = (resolution,) * 3 if isinstance(resolution, int) else tuple(int(r) for r in resolution)
    if len(res) != 3 or min(res) < 2:
        raise ValueError(f"A grid needs at least 2 nodes along each of x, y, z; got resolution {resolution!r}.")
    return res  # type: ignore[return-value]


def nearest_vertices(
    points: Float[Tensor, "N 3"],
    vertices: Float[Tensor, "V 3"],
    k: int,
    method: Literal["auto", "kdtree", "dense"] = "auto",
    chunk_size: int = 4096,
) -> Tuple[Float[Tensor, "N k"], Int[Tensor, "N k"]]:
    """Distances to, and indices of, the ``k`` vertices nearest each point (nearest first), on ``points``' device.

    ``"kdtree"`` queries :class:`scipy.spatial.cKDTree` on the CPU (in float64); ``"dense"`` measures every
    point-vertex distance in chunks of ``chunk_size`` points and keeps the ``k`` smallest, on the points'
    own device. ``"auto"`` takes the KD-tree for CPU tensors (on 2 cores a dense query of 16k points
    against a 13.7k-vertex body takes ~1 s) and the dense query elsewhere, so a GPU run does not stall on
    a round trip to the CPU's tree for every frame's grid. Precompute-time only (no gradients).
    """
    k = max(1, min(int(k), vertices.shape[0]))
    if method == "auto":
        method = "kdtree" if points.device.type == "cpu" else "dense"
    if method == "kdtree":
        tree = cKDTree(vertices.detach().cpu().double().numpy())
        distances, indices = tree.query(points.detach().cpu().double().numpy(), k=k)
        distances = torch.from_numpy(np.asarray(distances).reshape(points.shape[0], k))
        indices = torch.from_numpy(np.asarray(indices).reshape(points.shape[0], k))
        return distances.to(device=points.device, dtype=points.dtype), indices.to(points.device)
    vertices = vertices.detach().to(points.device)
    parts = []
    for chunk in points.detach().split(chunk_size):
        # the direct difference, not the matrix-product expansion: exact for near-zero distances
        pairwise = torch.cdist(chunk, vertices, compute_mode="donot_use_mm_for_euclid_dist")
        parts.append(pairwise.topk(k, dim=1, largest=False, sorted=True))
    return torch.cat([part.values for part in parts]), torch.cat([part.indices for part in parts])


def blend_neighbour_weights(
    distances: Float[Tensor, "N k"], indices: Int[Tensor, "N k"], vertex_weights: Float[Tensor, "V J"], eps: float = 1e-8
) -> Float[Tensor, "N J"]:
    """``sum_i (1 / d_i) w_i / sum_i (1 / d_i)`` over each point's neighbours (float64; ``d_i`` clamped below
    by ``eps``, so a point on a vertex gets that vertex's weights)."""
    inverse = 1.0 / distances.double().clamp(min=eps)
    inverse = inverse / inverse.sum(dim=1, keepdim=True)
    neighbour_weights = vertex_weights.detach().to(inverse.device).double()[indices]  # [N, k, J]
    return (inverse[..., None] * neighbour_weights).sum(dim=1)


def nearest_vertex_skinning_weights(
    points: Float[Tensor, "N 3"],
    vertices: Float[Tensor, "V 3"],
    vertex_weights: Float[Tensor, "V J"],
    k: int = 10,
    eps: float = 1e-8,
) -> Float[Tensor, "N J"]:
    """Skinning weights of points: the inverse-distance blend of their ``k`` nearest vertices' weights.

    ``w(x) = sum_i (1 / d_i) w_i / sum_i (1 / d_i)`` over the ``k`` vertices nearest to ``x``, with
    ``d_i`` clamped below by ``eps`` (a point on a vertex gets that vertex's weights).

    Precompute-time only (:func:`nearest_vertices`; no gradients). Per-sample lookups belong to
    :func:`query_weight_grid`.

    Args:
        points: query points.
        vertices: body vertices, in the same space as ``points``.
        vertex_weights: skinning weights of the vertices (rows sum to 1).
        k: number of nearest vertices blended (clamped to the number of vertices).
        eps: smallest distance used in the inverse-distance weights.

    Returns:
        Skinning weights of the points (rows sum to 1).
    """
    distances, indices = nearest_vertices(points, vertices, k)
    return blend_neighbour_weights(distances, indices, vertex_weights, eps).to(points.dtype)


def grid_node_positions(
    bounds_min: Float[Tensor, "3"], bounds_max: Float[Tensor, "3"], resolution: Resolution
) -> Float[Tensor, "X Y Z 3"]:
    """Positions of the nodes of a grid (see the module docstring for the layout)."""
    axes = [
        torch.linspace(float(lo), float(hi), n, dtype=bounds_min.dtype, device=bounds_min.device)
        for lo, hi, n in zip(bounds_min.tolist(), bounds_max.tolist(), _resolution3(resolution))
    ]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)


@dataclass
class WeightGrid:
    """Per-channel values on a regular grid over an axis-aligned box."""

    values: Float[Tensor, "J X Y Z"]
    """``values[:, i, j, k]`` is the value at node (x_i, y_j, z_k)."""
    bounds_min: Float[Tensor, "3"]
    bounds_max: Float[Tensor, "3"]


def build_weight_grid(
    vertices: Float[Tensor, "V 3"],
    vertex_weights: Float[Tensor, "V J"],
    bounds_min: Float[Tensor, "3"],
    bounds_max: Float[Tensor, "3"],
    resolution: Resolution = 32,
    k: int = 10,
) -> WeightGrid:
    """Nearest-vertex skinning weights (:func:`nearest_vertex_skinning_weights`) at every node of a grid.

    Args:
        vertices: body vertices.
        vertex_weights: their skinning weights.
        bounds_min: lower corner of the box the grid spans (its outermost nodes lie on the box).
        bounds_max: upper corner.
        resolution: nodes along each axis, one number or ``(x, y, z)``.
        k: nearest vertices blended per node.
    """
    bounds_min = bounds_min.to(vertices)
    bounds_max = bounds_max.to(vertices)
    nodes = grid_node_positions(bounds_min, bounds_max, resolution)
    weights = nearest_vertex_skinning_weights(nodes.reshape(-1, 3), vertices, vertex_weights, k=k)
    values = weights.reshape(*nodes.shape[:3], -1).permute(3, 0, 1, 2).contiguous()
    return WeightGrid(values=values, bounds_min=bounds_min, bounds_max=bounds_max)


def _normalised_coordinates(
    points: Float[Tensor, "*bs 3"], bounds_min: Float[Tensor, "*bs 3"], bounds_max: Float[Tensor, "*bs 3"]
) -> Float[Tensor, "*bs 3"]:
    """Points mapped to ``[-1, 1]^3`` over the box, clamped (points outside read the box's faces)."""
    return (2.0 * (points - bounds_min) / (bounds_max - bounds_min) - 1.0).clamp(-1.0, 1.0)


def sample_grid(
    values: Float[Tensor, "C X Y Z"],
    bounds_min: Float[Tensor, "3"],
    bounds_max: Float[Tensor, "3"],
    points: Float[Tensor, "*bs 3"],
) -> Float[Tensor, "*bs C"]:
    """Trilinear interpolation of a grid at points (clamped to the box), differentiable (twice) in both."""
    batch_shape = points.shape[:-1]
    lower, upper = bounds_min.to(points), bounds_max.to(points)
    extent = grid_index_extent(values.shape[1:], points.device, points.dtype)
    coords = (points.reshape(-1, 3) - lower) / (upper - lower) * extent
    sampled = trilinear_sample(values.to(points.dtype), coords)
    return sampled.reshape(*batch_shape, values.shape[0])


def _renormalise(weights: Tensor, eps: float = 1e-8) -> Tensor:
    return weights / weights.sum(dim=-1, keepdim=True).clamp_min(eps)


def query_weight_grid(grid: WeightGrid, points: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs J"]:
    """Skinning weights at points: trilinear lookup in a weight grid, renormalised to sum to 1.

    Points outside the grid's box read the value at the nearest point of the box.
    """
    return _renormalise(sample_grid(grid.values, grid.bounds_min, grid.bounds_max, points))


def sample_stacked_grids(
    table: Float[Tensor, "G X Y Z C"],
    bounds_min: Float[Tensor, "G 3"],
    bounds_max: Float[Tensor, "G 3"],
    points: Float[Tensor, "N 3"],
    grid_indices: Int[Tensor, "N"],
) -> Float[Tensor, "N C"]:
    """Trilinear lookup of each point in its own grid out of a stack, in one vectorised gather.

    Same interpolation as :func:`sample_grid` (clamped, nodes on the bounds), but the grids are stored
    channels-last (``table[g, i, j, k, :]`` is grid ``g`` at node (x_i, y_j, z_k)) so that a batch
    mixing many grids costs one gather of eight rows per point. The table may be float16; the result has
    ``points``' dtype.
    """
    num_grids, res_x, res_y, res_z, channels = table.shape
    extent = grid_index_extent((res_x, res_y, res_z), points.device, points.dtype)
    lo, hi = bounds_min[grid_indices].to(points), bounds_max[grid_indices].to(points)
    continuous = (_normalised_coordinates(points, lo, hi) + 1.0) * 0.5 * extent
    first_row = grid_indices.long() * (res_x * res_y * res_z)
    return trilinear_rows(table.reshape(-1, channels), first_row, (res_x, res_y, res_z), continuous)


class PerFrameWeightGrids(nn.Module):
    """Observation-space skinning-weight grids of every frame, built on first use and kept.

    Each frame's grid spans that frame's posed-body bounding box grown by ``margin`` and holds the
    nearest-vertex weights of the posed vertices (as :func:`build_weight_grid`) and the distance to the
    nearest vertex, from one neighbour query per node (:func:`nearest_vertices`: a KD-tree on the CPU, a
    dense query on a GPU); a lookup is a trilinear gather.

    The posed bodies are read from a :class:`~hfavatar_ns.body.body_frames.PosedBodies` (the model's
    ``BodyFrames``, not a copy); a frame's grid is rebuilt when its body's revision goes up (pose
    refinement moved it), and the table grows when frames are appended.

    Caching choice: all frames are kept (no eviction) because training draws frames at random, so any
    bounded cache would keep rebuilding. The grids live in one channels-last table of ``dtype``
    (float16 by default: ``24 * 32^3 * 2`` bytes = 1.5 MiB a frame, about 470 MiB for 300 frames),
    allocated on the first query; it is a non-persistent buffer (derived data, rebuilt after loading
    a checkpoint, never saved into one).

    Args:
        bodies: the posed body of every frame (a ``PosedBodies``, or fixed vertices ``[F, V, 3]``).
        vertex_weights: the body's skinning weights.
        resolution: grid nodes along each axis.
        margin: metres added around each frame's bounding box.
        k: nearest vertices blended per node.
        dtype: storage type of the grids.
    """

    def __init__(
        self,
        bodies: PosedBodies | Float[Tensor, "F V 3"],
        vertex_weights: Float[Tensor, "V J"],
        resolution: int = 32,
        margin: float = 0.1,
        k: int = 10,
        dtype: torch.dtype = torch.float16,
    ) -> None:
        super().__init__()
        if isinstance(bodies, Tensor):
            bodies = StaticPosedBodies(bodies, torch.zeros(0, 3, dtype=torch.long))
        object.__setattr__(self, "bodies", bodies)  # read, not owned: never a submodule
        self.resolution = _resolution3(resolution)
        self.margin = float(margin)
        self.k = k
        self.storage_dtype = dtype
        self.num_channels = vertex_weights.shape[-1] + 1  # the skinning weights, then the distance to the body
        self.register_buffer("vertex_weights", vertex_weights.detach().float(), persistent=False)
        self.register_buffer("bounds_min", torch.zeros(0, 3), persistent=False)
        self.register_buffer("bounds_max", torch.zeros(0, 3), persistent=False)
        self.register_buffer("table", None, persistent=False)
        self._built_revision = np.zeros(0, dtype=np.int64)

    @property
    def num_frames(self) -> int:
        return self.bodies.num_frames

    @property
    def num_built(self) -> int:
        """How many frames' grids exist and are current."""
        return len(self._current(range(len(self._built_revision))))

    def _current(self, frames) -> list:
        return [f for f in frames if f < len(self._built_revision) and self._built_revision[f] == self.bodies.revision(f)]

    def _apply(self, fn, recurse=True):  # device / dtype moves must not cast the float16 table
        table, self.table = self.table, None
        out = super()._apply(fn, recurse)
        if table is not None:
            moved = fn(table)
            self.table = moved.to(self.storage_dtype) if moved.is_floating_point() else moved
        return out

    def _grow(self) -> None:
        """Room for every frame the bodies have (frames may have been appended)."""
        count, have = self.num_frames, len(self._built_revision)
        if self.table is not None and have >= count:
            return
        device = self.vertex_weights.device
        shape = (count - have, *self.resolution, self.num_channels)
        extra = torch.zeros(shape, dtype=self.storage_dtype, device=device)
        self.table = extra if self.table is None else torch.cat([self.table, extra])
        self.bounds_min = torch.cat([self.bounds_min, torch.zeros(count - have, 3, device=device)])
        self.bounds_max = torch.cat([self.bounds_max, torch.zeros(count - have, 3, device=device)])
        self._built_revision = np.concatenate([self._built_revision, np.full(count - have, -1, dtype=np.int64)])

    def build(self, frames: Int[Tensor, "M"] | list | None = None) -> None:
        """Build (if missing or out of date) the grids of the given frames, all frames when ``None``."""
        frame_list = range(self.num_frames) if frames is None else torch.as_tensor(frames).reshape(-1).tolist()
        self._grow()
        current = set(self._current(frame_list))
        missing = [f for f in frame_list if f not in current]
        device = self.vertex_weights.device
        for frame in missing:
            vertices = self.bodies.posed_vertices(frame).detach().float().to(device)
            self.bounds_min[frame] = vertices.amin(dim=0) - self.margin
            self.bounds_max[frame] = vertices.amax(dim=0) + self.margin
            nodes = grid_node_positions(self.bounds_min[frame], self.bounds_max[frame], self.resolution)
            # one neighbour query gives both the weights and the distance to the body (its nearest vertex)
            distances, indices = nearest_vertices(nodes.reshape(-1, 3), vertices, self.k)
            weights = blend_neighbour_weights(distances, indices, self.vertex_weights)
            values = torch.cat([weights, distances[:, :1].double()], dim=-1).reshape(*nodes.shape[:3], -1)
            self.table[frame] = values.to(self.storage_dtype)
            self._built_revision[frame] = self.bodies.revision(frame)

    def grid(self, frame: int) -> WeightGrid:
        """One frame's grid in the :class:`WeightGrid` layout (built if missing)."""
        self.build([frame])
        values = self.table[frame][..., :-1].permute(3, 0, 1, 2).float()
        return WeightGrid(values=values, bounds_min=self.bounds_min[frame], bounds_max=self.bounds_max[frame])

    def query(self, points: Float[Tensor, "N 3"], frame_indices: Int[Tensor, "N"]) -> Float[Tensor, "N J"]:
        """Observation-space skinning weights of points, each in its own frame's grid (rows sum to 1)."""
        return self.query_with_distance(points, frame_indices)[0]

    def query_with_distance(
        self, points: Float[Tensor, "N 3"], frame_indices: Int[Tensor, "N"]
    ) -> Tuple[Float[Tensor, "N J"], Float[Tensor, "N"]]:
        """Skinning weights and the distance to the frame's posed body (nearest vertex, metres; outside
        the grid's box: the value at the box plus the distance to the box)."""
        if self.num_built != self.num_frames:  # reads the frames back from the device only then
            self.build(torch.unique(frame_indices).cpu())
        values = sample_stacked_grids(self.table, self.bounds_min, self.bounds_max, points, frame_indices)
        low, high = self.bounds_min[frame_indices], self.bounds_max[frame_indices]
        outside = (points - points.clamp(min=low, max=high)).norm(dim=-1)
        return _renormalise(values[:, :-1]), values[:, -1] + outside
