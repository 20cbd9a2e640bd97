"""Cubic B-spline interpolation of dense 3-D grids: a C2 field through the grid's values.

Trilinear interpolation is only C0: its gradient is constant inside a cell and jumps at every cell face,
so a tabulated SDF read that way has faceted normals, which NeuS shades and marching cubes meshes. A
cubic B-spline is twice continuously differentiable. It interpolates the values once its coefficients
are the values *prefiltered* (a recursive filter along each axis, inverse of the B-spline's sampling);
the prefilter is scipy's ``ndimage.spline_filter``, the same that ``ndimage.map_coordinates(order=3)``
uses, so scipy is also the reference the tests compare against.

The lookup is written with gathers rather than ``grid_sample`` for the reason given in ``trilinear.py``:
it must be differentiable twice (the eikonal loss differentiates the SDF's gradient).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

__all__ = ["bspline_coefficients", "cubic_bspline_weights", "tricubic_sample"]


def bspline_coefficients(values: Float[Tensor, "X Y Z"]) -> Float[Tensor, "X Y Z"]:
    """The cubic B-spline coefficients whose spline passes through ``values`` at the nodes (borders
    mirrored), in ``values``' dtype and device. Costs one pass over the grid on the CPU (float64)."""
    from scipy import ndimage

    filtered = ndimage.spline_filter(values.detach().double().cpu().numpy(), order=3, mode="mirror")
    return torch.from_numpy(np.ascontiguousarray(filtered)).to(dtype=values.dtype, device=values.device)


def cubic_bspline_weights(fraction: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch 4"]:
    """Weights of the four nodes ``floor(x) - 1 .. floor(x) + 2`` at ``fraction = x - floor(x)``
    (uniform cubic B-spline basis; they sum to one)."""
    t = fraction
    t2 = t * t
    t3 = t2 * t
    one_minus = 1.0 - t
    return torch.stack(
        [one_minus * one_minus * one_minus, 3.0 * t3 - 6.0 * t2 + 4.0, -3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0, t3],
        dim=-1,
    ) / 6.0


@lru_cache(maxsize=64)
def _constants(shape: Tuple[int, int, int], device: torch.device, dtype: torch.dtype) -> Tuple[Tensor, Tensor, Tensor]:
    """Per grid shape and device: the upper corner in index units (float and long) and the tap offsets."""
    upper = torch.tensor([size - 1 for size in shape], dtype=dtype, device=device)
    return upper, upper.long(), torch.arange(-1, 3, device=device)


def tricubic_sample(coefficients: Float[Tensor, "X Y Z"], coords: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]:
    """The cubic B-spline with ``coefficients`` (see :func:`bspline_coefficients`) at ``coords`` in index
    units (node ``(i, j, k)`` at ``(i, j, k)``), clamped to the grid; taps beyond the border are mirrored,
    as scipy's ``mode="mirror"``. Each axis needs at least two nodes. Differentiable twice in ``coords``."""
    shape = tuple(int(size) for size in coefficients.shape)
    upper, upper_index, tap_offsets = _constants(shape, coords.device, coords.dtype)
    coords = torch.minimum(coords.clamp(min=0.0), upper)
    base = torch.minimum(coords.detach().floor().long(), upper_index)
    weights = cubic_bspline_weights(coords - base.to(coords.dtype))  # N 3 4
    taps = base[:, :, None] + tap_offsets  # N 3 4
    taps = taps.abs()  # mirror at 0: -1 -> 1
    taps = torch.where(taps > upper_index[:, None], 2 * upper_index[:, None] - taps, taps)  # mirror at the top
    taps = taps.clamp(min=0)  # grids of two nodes: 2 * 1 - 3 = -1
    rows = (
        taps[:, 0, :, None, None] * (shape[1] * shape[2]) + taps[:, 1, None, :, None] * shape[2] + taps[:, 2, None, None, :]
    )  # N 4 4 4
    gathered = coefficients.reshape(-1)[rows].to(coords.dtype)
    return torch.einsum("nijk,ni,nj,nk->n", gathered, weights[:, 0], weights[:, 1], weights[:, 2])
