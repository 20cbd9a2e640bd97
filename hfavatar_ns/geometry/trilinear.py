"""Trilinear interpolation of a dense grid, written with gathers so that it is twice differentiable.

``torch.nn.functional.grid_sample`` would do the same lookup, but its 3-D backward has no derivative
of its own on some builds (torch 2.11 with CUDA: "derivative for aten::grid_sampler_3d_backward is
not implemented"), and the eikonal loss differentiates the SDF's gradient.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def trilinear_sample(values: Float[Tensor, "C X Y Z"], coords: Float[Tensor, "N 3"]) -> Float[Tensor, "N C"]:
    """``values`` at ``coords`` given in index units (node ``(i, j, k)`` sits at ``(i, j, k)``); coordinates
    are clamped to the grid, so points outside read its border. Each axis needs at least two nodes."""
    channels = values.shape[0]
    sizes = torch.tensor(values.shape[1:], device=coords.device)
    upper = (sizes - 1).to(coords.dtype)
    coords = torch.minimum(torch.maximum(coords, torch.zeros_like(upper)), upper)
    lower = torch.minimum(coords.detach().floor().long(), sizes - 2)
    fraction = coords - lower.to(coords.dtype)
    flat = values.reshape(channels, -1)
    result = coords.new_zeros(coords.shape[0], channels, dtype=values.dtype)
    for dx in (0, 1):
        wx = fraction[:, 0] if dx else 1.0 - fraction[:, 0]
        for dy in (0, 1):
            wy = fraction[:, 1] if dy else 1.0 - fraction[:, 1]
            for dz in (0, 1):
                wz = fraction[:, 2] if dz else 1.0 - fraction[:, 2]
                index = ((lower[:, 0] + dx) * values.shape[2] + (lower[:, 1] + dy)) * values.shape[3] + lower[:, 2] + dz
                result = result + flat[:, index].transpose(0, 1) * (wx * wy * wz)[:, None].to(values.dtype)
    return result
