"""Normal smoothness: the SDF's normal should change little over a small step along the surface.

The residual's hash grid can fit image noise and texture as bumps in the surface; the colour loss is
satisfied either way, but the extracted mesh gets rough. Comparing the normal at points near the
surface with the normal about a centimetre away penalises those bumps and leaves large-scale shape
(folds, the skirt's flare) free. Points are canonical: the loss shapes the field, not the deformation.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor


def near_surface_points(
    points: Float[Tensor, "N 3"], sdf: Float[Tensor, "N 1"], band: float, max_points: int
) -> Optional[Float[Tensor, "M 3"]]:
    """Up to ``max_points`` of ``points`` (detached) whose |SDF| is below ``band``, chosen at random."""
    candidates = (sdf.detach().reshape(-1).abs() < band).nonzero().reshape(-1)
    if candidates.numel() == 0:
        return None
    if candidates.numel() > max_points:
        candidates = candidates[torch.randperm(candidates.numel(), device=candidates.device)[:max_points]]
    return points.detach()[candidates]


def normal_difference(
    gradients: Float[Tensor, "M 3"], neighbour_gradients: Float[Tensor, "M 3"]
) -> Float[Tensor, ""]:
    """Mean squared distance between the unit normals of point pairs (0: parallel, 4: opposite)."""
    return (F.normalize(gradients, dim=-1) - F.normalize(neighbour_gradients, dim=-1)).pow(2).sum(dim=-1).mean()
