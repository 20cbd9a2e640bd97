"""Irradiance as a function of the surface normal: the light shared by every frame of a capture.

Lambertian shading under any distant lighting is a smooth function of the normal whose spherical-harmonics
expansion is almost all in degrees 0 to 2, so nine coefficients per colour channel describe a room's
light on a diffuse body. Learning them apart from the albedo lets a canonical colour field stay the same
in every frame while the person turns under fixed lights.
"""

from __future__ import annotations

import math

import torch
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
