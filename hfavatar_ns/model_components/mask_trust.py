"""Which rays' mask labels to believe: real masks miss limbs, and a loss that trusts them erases the limb."""

from __future__ import annotations

from typing import Optional

import torch
from jaxtyping import Bool, Float
from torch import Tensor


def contradicted_background(
    mask: Float[Tensor, "R 1"],
    image: Float[Tensor, "R 3"],
    rendered: Float[Tensor, "R 3"],
    accumulation: Float[Tensor, "R 1"],
    background: Float[Tensor, "3"],
    margin: Optional[float],
) -> Bool[Tensor, "R 1"]:
    """Rays labelled background whose pixel the avatar already explains as foreground.

    A ray counts when the avatar renders it opaque (accumulation above 0.5) in the pixel's colour (mean
    absolute difference over channels at most ``margin``, colours in [0, 1]) and that colour is not the
    background's (more than ``margin`` from it). The avatar learned that colour from the views whose masks
    show the limb, so a mask that misses it there is the likelier mistake; true background rarely shows
    the avatar's own colour. ``margin=None``: trust every label.
    """
    if margin is None:
        return torch.zeros_like(mask, dtype=torch.bool)
    rendered, accumulation = rendered.detach(), accumulation.detach()
    explained = (rendered - image).abs().mean(dim=-1, keepdim=True) <= margin
    image_is_background = (image - background).abs().mean(dim=-1, keepdim=True) <= margin
    return (mask < 0.5) & (accumulation > 0.5) & explained & ~image_is_background
