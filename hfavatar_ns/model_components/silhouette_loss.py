"""The silhouette loss on each ray's closest approach to the surface (IDR's mask loss)."""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.model_components.noisy_labels import noisy_label_cross_entropy


def silhouette_loss(
    ray_min_sdf: Float[Tensor, "R 1"], mask: Float[Tensor, "R 1"], sharpness: float, label_flip_rate: float = 0.0
) -> Optional[Float[Tensor, ""]]:
    """Binary cross-entropy of ``sigmoid(-sharpness * min_sdf)`` against the mask, on the rays it should act on.

    Unlike the accumulation loss, its gradient does not vanish far from the current surface, so loose
    clothing the body prior lacks can grow out of it. It acts only where the silhouette is wrong: on
    background rays (whose closest approach must stay outside) and on foreground rays that miss the
    surface (``min_sdf > 0``). A foreground ray that already crosses the surface is left alone: pushing
    its ``min_sdf`` further below zero would inflate every limb until grazing rays cross deep inside it.

    Args:
        ray_min_sdf: smallest SDF over each ray's samples; ``inf`` for rays with no samples (they miss
            the sampling shell, so the loss has nothing to move).
        mask: foreground mask of each ray, in [0, 1].
        sharpness: logit scale in 1/metres.
        label_flip_rate: how often a mask label is taken to be wrong
            (:func:`~hfavatar_ns.model_components.noisy_labels.noisy_label_cross_entropy`); 0 trusts every label.

    Returns:
        The mean loss over the rays it acts on, or ``None`` when there are none.
    """
    foreground = mask > 0.5
    active = torch.isfinite(ray_min_sdf) & (~foreground | (ray_min_sdf > 0))
    if not active.any():
        return None
    logits = -sharpness * ray_min_sdf[active]
    if label_flip_rate > 0:
        return noisy_label_cross_entropy(torch.sigmoid(logits), mask[active].float(), label_flip_rate).mean()
    return F.binary_cross_entropy_with_logits(logits, mask[active].float())
