"""Trilinear interpolation of dense grids, written with gathers so that it is twice differentiable.

``torch.nn.functional.grid_sample`` would do the same lookup, but its 3-D backward has no derivative
of its own on some builds (torch 2.11 with CUDA: "derivative for aten::grid_sampler_3d_backward is
not implemented"), and the eikonal loss differentiates the SDF's gradient.
"""

from __future__ import annotations

from typing import Tuple

import torch
from jaxtyping import Float, Int
from torch import Tensor


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
    sizes = torch.tensor(shape, device=coords.device)
    upper = (sizes - 1).to(coords.dtype)
    coords = torch.minimum(torch.maximum(coords, torch.zeros_like(upper)), upper)
    lower = torch.minimum(coords.detach().floor().long(), sizes - 2)
    fraction = coords - lower.to(coords.dtype)
    result = coords.new_zeros(coords.shape[0], rows.shape[1])
    for dx in (0, 1):
        wx = fraction[:, 0] if dx else 1.0 - fraction[:, 0]
        for dy in (0, 1):
            wy = fraction[:, 1] if dy else 1.0 - fraction[:, 1]
            for dz in (0, 1):
                wz = fraction[:, 2] if dz else 1.0 - fraction[:, 2]
                index = first_row + ((lower[:, 0] + dx) * shape[1] + lower[:, 1] + dy) * shape[2] + lower[:, 2] + dz
                result = result + (wx * wy * wz)[:, None] * rows[index].to(coords.dtype)
    return result


def trilinear_sample(values: Float[Tensor, "C X Y Z"], coords: Float[Tensor, "N 3"]) -> Float[Tensor, "N C"]:
    """``values`` at ``coords`` given in index units (node ``(i, j, k)`` sits at ``(i, j, k)``), clamped
    to the grid (see :func:`trilinear_rows`)."""
    rows = values.reshape(values.shape[0], -1).transpose(0, 1)
    first_row = torch.zeros(coords.shape[0], dtype=torch.long, device=coords.device)
    return trilinear_rows(rows, first_row, tuple(values.shape[1:]), coords.to(values.dtype))
