"""Cross-entropy against mask labels that are sometimes wrong, so that a wrong label cannot dominate a batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor


def noisy_label_cross_entropy(
    probability: Float[Tensor, "*bs"], label: Float[Tensor, "*bs"], flip_rate: float
) -> Float[Tensor, "*bs"]:
    """Binary cross-entropy of ``label`` under a channel that flips it with probability ``flip_rate``.

    The label is modelled as observed through ``P(label = 1) = flip_rate + (1 - 2 flip_rate) * probability``.
    The loss is still smallest where ``probability`` equals a 0/1 label, but a ray the model confidently
    contradicts (a jittered outline, a blob of background labelled as the person) pulls with a gradient of
    at most about ``1 / flip_rate`` instead of the plain loss's ``1 / (1 - probability)``. ``flip_rate=0`` is
    the plain binary cross-entropy.
    """
    if not 0.0 <= flip_rate < 0.5:
        raise ValueError(f"flip_rate must lie in [0, 0.5), got {flip_rate}: at 0.5 the labels carry no information.")
    observed = flip_rate + (1.0 - 2.0 * flip_rate) * probability
    return F.binary_cross_entropy(observed, label, reduction="none")


def label_belief(
    probability: Float[Tensor, "*bs"], label: Float[Tensor, "*bs"], flip_rate: float
) -> Float[Tensor, "*bs"]:
    """Posterior probability that ``label`` is right, given the model's ``probability`` of foreground as the
    prior and the same flipping channel as :func:`noisy_label_cross_entropy`.

    A background label over a ray the model renders opaque at 0.95 is believed at 0.23 with ``flip_rate``
    0.15, at 0.85 where the model is unsure (0.5); with ``flip_rate=0`` every label is believed.
    """
    if not 0.0 <= flip_rate < 0.5:
        raise ValueError(f"flip_rate must lie in [0, 0.5), got {flip_rate}: at 0.5 the labels carry no information.")
    if flip_rate == 0.0:  # an exact channel: even a label the model is sure of the opposite of is right
        return torch.ones_like(probability)
    agrees = torch.where(label > 0.5, probability, 1.0 - probability)
    right = (1.0 - flip_rate) * agrees
    return right / (right + flip_rate * (1.0 - agrees)).clamp_min(1e-12)
