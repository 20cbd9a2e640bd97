"""Irradiance as a function of the surface normal: the light shared by every frame of a capture.

Lambertian shading under any distant lighting is a smooth function of the normal whose spherical-harmonics
expansion is almost all in degrees 0 to 2, so nine coefficients per colour channel describe a room's
light on a diffuse body. Learning them apart from the albedo lets a canonical colour field stay the same
in every frame while the person turns under fixed lights. From one camera half of the normals are never
seen, and there an ambient light plus one distant light is the safer guess.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from nerfstudio.field_components.encodings import SHEncoding

SH_DEGREE_0 = 0.5 / math.sqrt(math.pi)
"""The constant real spherical harmonic Y_0^0."""


class SphericalHarmonicsShading(nn.Module):
    """Per-channel irradiance ``max(0, sum_k c_k Y_k(n))``; starts at 1 everywhere (unlit albedo).

    Args:
        levels: spherical-harmonics levels (``levels**2`` terms).
    """

    def __init__(self, levels: int = 3):
        super().__init__()
        if levels < 1:
            raise ValueError(f"shading_sh_levels must be at least 1 (the constant term), got {levels}")
        self.basis = SHEncoding(levels=levels)
        coefficients = torch.zeros(levels**2, 3)
        coefficients[0] = 1.0 / SH_DEGREE_0
        self.coefficients = nn.Parameter(coefficients)

    def forward(self, normals: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3"]:
        """Irradiance at unit ``normals``; clipped at zero, where a fitted expansion may dip on sides no
        training image showed. The normals are not differentiated: the light explains brightness, it does
        not bend the surface towards it."""
        return (self.basis(normals.detach()) @ self.coefficients).clamp_min(0.0)


LIGHT_SOFTPLUS_BETA = 10.0
"""Sharpness of the softplus that keeps the light's colour positive: near a linear parameter above 0.1, so
the optimiser's steps (the same size for every parameter) move it as fast as the ambient term."""


class DirectionalLightShading(nn.Module):
    """Per-channel irradiance ``max(0, a + d * max(0, n . l))``: an ambient light and one distant light.

    From one camera only the normals facing it are ever seen. Nine spherical-harmonics terms fitted to that
    half of the sphere are free on the other half, and held-out views of it come out too bright or too dark.
    One light and an ambient term have eight degrees of freedom and reach the unseen half as only a distant
    light can: the side it does not face gets the ambient light alone. Starts lit from ``towards`` as
    strongly as by the ambient (0.5 each): from the training camera's side of a monocular capture every seen
    normal gives the direction a gradient, and the light turns to the real one in a few hundred steps. From
    an unlit start (a light of zero strength) its direction has no gradient until its strength has grown.

    Args:
        towards: initial direction of the light (need not be unit).
    """

    def __init__(self, towards: Optional[Float[Tensor, "3"]] = None):
        super().__init__()
        direction = torch.tensor([0.0, 0.0, 1.0]) if towards is None else towards.detach().float().cpu()
        if not torch.isfinite(direction).all() or float(direction.norm()) < 1e-9:
            raise ValueError(f"the light's initial direction must be a non-zero vector, got {direction.tolist()}")
        self.ambient = nn.Parameter(torch.full((3,), 0.5))
        # A negative light would darken the seen side from the camera's direction: a poor local minimum from
        # which the direction never turns to the real light. Hence a positive colour.
        initial_colour = math.log(math.expm1(0.5 * LIGHT_SOFTPLUS_BETA)) / LIGHT_SOFTPLUS_BETA
        self.light_colour_logit = nn.Parameter(torch.full((3,), initial_colour))
        self.light_direction = nn.Parameter(direction / direction.norm())

    @property
    def light_colour(self) -> Float[Tensor, "3"]:
        return F.softplus(self.light_colour_logit, beta=LIGHT_SOFTPLUS_BETA)

    def point_towards(self, towards: Float[Tensor, "3"]) -> None:
        """Restart the light's direction towards ``towards`` (a construction-time choice, not learned state)."""
        with torch.no_grad():
            self.light_direction.copy_(F.normalize(towards.to(self.light_direction), dim=0))

    def forward(self, normals: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3"]:
        """Irradiance at unit ``normals``; as for the spherical harmonics, the normals are not differentiated."""
        facing = (normals.detach() @ F.normalize(self.light_direction, dim=0)).clamp_min(0.0)
        return (self.ambient + self.light_colour * facing[..., None]).clamp_min(0.0)
