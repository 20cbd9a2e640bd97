"""Trilinear interpolation of dense grids, written with gathers so that it is twice differentiable.

``torch.nn.functional.grid_sample`` would do the same lookup, but its 3-D backward has no derivative
of its own on some builds (torch 2.11 with CUDA: "derivative for aten::grid_sampler_3d_backward is
not implemented"), and the eikonal loss differentiates the SDF's gradient.

The eight corners are gathered in one indexing op rather than a loop: a training step makes over a
dozen lookups, and on a GPU each op is a kernel launch, so the step's time follows its op count.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import torch
from jaxtyping import Float, Int
from torch import Tensor


@lru_cache(maxsize=64)
def _grid_constants(shape: Tuple[int, int, int], device: torch.device, dtype: torch.dtype) -> Tuple[Tensor, ...]:
    """Per grid shape and device: the upper corner in index units, the last cell's lower corner, the
    row strides, the eight corners' row offsets and their corner bits (float, 8 x 3). Made once,
    because copying a Python constant to a GPU waits for the device."""
    strides = (shape[1] * shape[2], shape[2], 1)
    bits = [(dx, dy, dz) for dx in (0, 1) for dy in (0, 1) for dz in (0, 1)]
    offsets = [dx * strides[0] + dy * strides[1] + dz for dx, dy, dz in bits]
    return (
        torch.tensor([size - 1 for size in shape], dtype=dtype, device=device),
        torch.tensor([size - 2 for size in shape], dtype=torch.long, device=device),
        torch.tensor(strides, dtype=torch.long, device=device),
        torch.tensor(offsets, dtype=torch.long, device=device),
        torch.tensor(bits, dtype=dtype, device=device),
    )


def grid_index_extent(shape: Tuple[int, ...], device: torch.device, dtype: torch.dtype) -> Float[Tensor, "3"]:
    """``shape - 1`` as a tensor on ``device`` (made once per shape): the factor that maps a position
    in a grid's box, as a fraction of the box, to index units."""
    return _grid_constants(tuple(int(size) for size in shape), torch.device(device), dtype)[0]


def trilinear_rows(
    rows: Float[Tensor, "M C"],
    first_row: Int[Tensor, "N"],
    shape: Tuple[int, int, int],
    coords: Float[Tensor, "N 3"],
) -> Float[Tensor, "N C"]:
    """Trilinear lookup in grids stored as rows: node ``(i, j, k)`` of the grid that starts at row
    ``first_row[n]`` is ``rows[first_row[n] + (i * Y + j) * Z + k]`` for a grid of ``shape`` (X, Y, Z).
    ``coords`` are in index units and clamped to the grid (points outside read its border); each axis
    needs at least two nodes. The result has ``coords``' dtype."""
    shape = tuple(int(size) for size in shape)
    upper, last_cell, strides, corner_offsets, corner_bits = _grid_constants(shape, coords.device, coords.dtype)
    coords = torch.minimum(coords.clamp(min=0.0), upper)
    lower = torch.minimum(coords.detach().floor().long(), last_cell)
    fraction = coords - lower.to(coords.dtype)
    index = (first_row + (lower * strides).sum(dim=-1))[:, None] + corner_offsets  # N 8
    # Per corner and axis, the weight is the fraction towards it: f where the corner's bit is 1, 1 - f where 0.
    factors = (1.0 - corner_bits) + (2.0 * corner_bits - 1.0) * fraction[:, None, :]  # N 8 3
    weights = factors[..., 0] * factors[..., 1] * factors[..., 2]
    return (weights[..., None] * rows[index].to(coords.dtype)).sum(dim=1)


def trilinear_sample(values: Float[Tensor, "C X Y Z"], coords: Float[Tensor, "N 3"]) -> Float[Tensor, "N C"]:
    """``values`` at ``coords`` given in index units (node ``(i, j, k)`` sits at ``(i, j, k)``), clamped
    to the grid (see :func:`trilinear_rows`)."""
    rows = values.reshape(values.shape[0], -1).transpose(0, 1)
    first_row = coords.new_zeros(coords.shape[0], dtype=torch.long)
    return trilinear_rows(rows, first_row, tuple(values.shape[1:]), coords.to(values.dtype))
