"""The learned canonical skinning-weight field, initialised from the body model's weights.

``w(x) = softmax(log w_body(x) + r(x))`` for a canonical point ``x``:

* ``w_body`` is the body's nearest-vertex skinning weights (:mod:`~hfavatar_ns.deformation.weight_grid`),
  precomputed once on a grid over the canonical body's bounding box and stored as log-weights;
* ``r`` is a learnable low-resolution grid of logits over the same box, zero at the start, so the field
  starts out as the body's weights and learns where clothing or hair move unlike the skin below.

Both grids are sampled trilinearly, so the per-sample cost is two grid lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Type

import torch
from jaxtyping import Float
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from hfavatar_ns.body.base import CanonicalBody
from hfavatar_ns.deformation.weight_grid import build_weight_grid, sample_grid


@dataclass
class CanonicalSkinningFieldConfig(InstantiateConfig):
    """Configuration of :class:`CanonicalSkinningField`."""

    _target: Type = field(default_factory=lambda: CanonicalSkinningField)
    grid_resolution: int = 64
    """Nodes along each axis of the body-weight grid (built once; 64^3 takes about a second)."""
    residual_resolution: int = 16
    """Nodes along each axis of the learnable residual logit grid."""
    margin: float = 0.1
    """Metres added around the canonical body's bounding box; points outside read the box's faces."""
    knn: int = 10
    """Nearest body vertices blended for the body weights."""
    min_weight: float = 1e-5
    """Floor applied to the body weights before taking logs (bounds the logits' dynamic range)."""


class CanonicalSkinningField(nn.Module):
    """Skinning weights of canonical points: the body's weights times a learned correction.

    Args:
        config: the field's configuration.
        canonical: the rest body whose weights initialise the field.
    """

    def __init__(self, config: CanonicalSkinningFieldConfig, canonical: CanonicalBody) -> None:
        super().__init__()
        self.config = config
        vertices = canonical.vertices.detach().float()
        weights = canonical.skinning_weights.detach().float()
        bounds_min = vertices.amin(dim=0) - config.margin
        bounds_max = vertices.amax(dim=0) + config.margin
        grid = build_weight_grid(vertices, weights, bounds_min, bounds_max, config.grid_resolution, config.knn)
        # Derived from the body (rebuilt by the constructor), so never written into checkpoints.
        self.register_buffer("body_log_weights", grid.values.clamp_min(config.min_weight).log(), persistent=False)
        self.register_buffer("bounds_min", bounds_min, persistent=False)
        self.register_buffer("bounds_max", bounds_max, persistent=False)
        num_joints = weights.shape[-1]
        res = config.residual_resolution
        self.residual_logits = nn.Parameter(torch.zeros(num_joints, res, res, res))

    def body_logits(self, points: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs J"]:
        """``log w_body(x)``: the interpolated log-weights of the body."""
        return sample_grid(self.body_log_weights, self.bounds_min, self.bounds_max, points)

    def residual(self, points: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs J"]:
        """``r(x)``: the learned logit correction."""
        return sample_grid(self.residual_logits, self.bounds_min, self.bounds_max, points)

    def forward(self, points: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs J"]:
        """Skinning weights (rows sum to 1) of canonical points."""
        return torch.softmax(self.body_logits(points) + self.residual(points), dim=-1)
