"""NeuS-style volume rendering of an SDF: signed distance to per-sample opacity.

Pure functions; compositing uses nerfstudio's renderers. The formula is NeuS's discrete opacity (Wang et al. 2021, eq. 13) with the
"cos anneal" that blends a direction-agnostic start into the exact estimate of the SDF change over
a sample's interval.
"""

from __future__ import annotations

from typing import Dict

import torch
from jaxtyping import Float
from nerfstudio.cameras.rays import RaySamples
from nerfstudio.model_components.renderers import AccumulationRenderer, DepthRenderer, NormalsRenderer, RGBRenderer
from torch import Tensor


def neus_alpha(
    sdf: Float[Tensor, "*bs 1"],
    normals: Float[Tensor, "*bs 3"],
    directions: Float[Tensor, "*bs 3"],
    deltas: Float[Tensor, "*bs 1"],
    inv_s: Float[Tensor, ""],
    cos_anneal_ratio: float = 1.0,
) -> Float[Tensor, "*bs 1"]:
    """Opacity of each sample interval from the SDF at its midpoint.

    Args:
        sdf: signed distance at the sample (negative inside).
        normals: SDF gradient at the sample (need not be unit length).
        directions: unit ray directions.
        deltas: interval lengths along the ray (zero-length intervals get zero opacity).
        inv_s: sharpness of the logistic density (learned).
        cos_anneal_ratio: 0 at the start of training (softer), 1 later (exact).
    """
    true_cos = (directions * normals).sum(dim=-1, keepdim=True)
    iter_cos = -(
        torch.relu(-true_cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio) + torch.relu(-true_cos) * cos_anneal_ratio
    )
    sdf_next = sdf + iter_cos * deltas * 0.5
    sdf_prev = sdf - iter_cos * deltas * 0.5
    cdf_prev = torch.sigmoid(sdf_prev * inv_s)
    cdf_next = torch.sigmoid(sdf_next * inv_s)
    alpha = ((cdf_prev - cdf_next + 1e-5) / (cdf_prev + 1e-5)).clamp(0.0, 1.0)
    return torch.where(deltas > 0, alpha, torch.zeros_like(alpha))


def weights_from_alpha(alpha: Float[Tensor, "R S 1"]) -> Float[Tensor, "R S 1"]:
    """Volume-rendering weights ``alpha_i * prod_{j<i} (1 - alpha_j)``."""
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha + 1e-7], dim=1), dim=1)
    return alpha * transmittance[:, :-1]


def composite(
    alpha: Float[Tensor, "R S 1"],
    rgb: Float[Tensor, "R S 3"],
    normals: Float[Tensor, "R S 3"],
    ray_samples: RaySamples,
    background: Float[Tensor, "3"],
) -> Dict[str, Tensor]:
    """Per-ray outputs from per-sample opacity, colour and (unit) normals, with nerfstudio's renderers.

    Returns ``rgb`` (composited on ``background``), ``accumulation``, expected ``depth`` (normalised by
    the accumulation) and ``normals`` (their weighted mean, mapped to [0, 1] and premultiplied by the
    accumulation, as nerfstudio's viewer shows normals), plus the volume-rendering ``weights``.
    """
    weights = weights_from_alpha(alpha)
    accumulation = AccumulationRenderer()(weights)
    return {
        "rgb": RGBRenderer.combine_rgb(rgb, weights, background_color=background),
        "accumulation": accumulation,
        "depth": DepthRenderer(method="expected")(weights, ray_samples),
        "normals": (NormalsRenderer()(normals, weights, normalize=True) + 1.0) / 2.0 * accumulation,
        "weights": weights,
    }


def composite_rgb(
    alpha: Float[Tensor, "R S 1"], rgb: Float[Tensor, "R S 3"], background: Float[Tensor, "3"]
) -> Float[Tensor, "R 3"]:
    """The colour alone of :func:`composite`."""
    return RGBRenderer.combine_rgb(rgb, weights_from_alpha(alpha), background_color=background)


def uncomposite(
    rgb: Float[Tensor, "*bs 3"], accumulation: Float[Tensor, "*bs 1"], background: Float[Tensor, "3"]
) -> Float[Tensor, "*bs 4"]:
    """Colour composited on ``background`` back to straight colour, with the accumulation as alpha."""
    straight = (rgb - (1.0 - accumulation) * background) / accumulation.clamp(min=1e-6)
    return torch.cat([straight.clamp(0.0, 1.0), accumulation], dim=-1)
