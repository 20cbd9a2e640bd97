"""How an irradiance model learned from one camera guesses the light on the side that camera never sees.

A camera sees only the normals that face it. Fitting a shading model to those normals and comparing it with
the true irradiance on the other half of the sphere measures what a held-out camera on the far side will be
shown, apart from everything else a training run does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor, nn


@dataclass(frozen=True)
class Lighting:
    """Distant lights on a diffuse surface: ``ambient + sum_k strength_k * max(0, n . direction_k)``."""

    ambient: float
    lights: Tuple[Tuple[Tuple[float, float, float], float], ...]
    """(direction towards the light, strength) per light."""

    def irradiance(self, normals: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]:
        total = torch.full(normals.shape[:1], self.ambient, dtype=normals.dtype)
        for direction, strength in self.lights:
            towards = F.normalize(torch.tensor(direction, dtype=normals.dtype), dim=0)
            total = total + strength * (normals @ towards).clamp_min(0.0)
        return total


def sphere_normals(count: int, seed: int = 0) -> Float[Tensor, "N 3"]:
    """Unit normals spread uniformly over the sphere."""
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(count, 3, generator=generator), dim=-1)


def seen_from(
    normals: Float[Tensor, "N 3"], camera_side: Float[Tensor, "3"], grazing: float = 0.1
) -> Bool[Tensor, "N"]:
    """The normals a distant camera on ``camera_side`` sees (facing it by more than ``grazing``)."""
    return normals @ F.normalize(camera_side, dim=0) > grazing


def fit_irradiance(
    shading: nn.Module,
    normals: Float[Tensor, "N 3"],
    target: Float[Tensor, "N *C"],
    steps: int = 1500,
    learning_rate: float = 0.02,
) -> nn.Module:
    """Fit ``shading`` (normals -> per-channel irradiance) to a grey ``[N]`` or coloured ``[N, 3]`` target by Adam
    on the squared error."""
    target = target.reshape(len(target), -1)
    optimizer = torch.optim.Adam(shading.parameters(), lr=learning_rate)
    for _ in range(steps):
        loss = (shading(normals) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return shading


@torch.no_grad()
def seen_and_unseen_error(
    make_shading: Callable[[], nn.Module],
    lighting: Lighting,
    camera_side: Sequence[float],
    count: int = 8000,
) -> Tuple[float, float]:
    """RMS irradiance error of a model fitted to what one camera sees: on the seen normals, and on the rest."""
    normals = sphere_normals(count)
    seen = seen_from(normals, torch.tensor(camera_side, dtype=normals.dtype))
    target = lighting.irradiance(normals)
    with torch.enable_grad():
        shading = fit_irradiance(make_shading(), normals[seen], target[seen])
    error = (shading(normals) - target[:, None]).square().mean(dim=-1)
    return float(error[seen].mean().sqrt()), float(error[~seen].mean().sqrt())
