"""Mask cross-entropy under a label-noise model: plain at rate 0, bounded pull from a contradicted label."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hfavatar_ns.model_components.avatar_losses import avatar_losses
from hfavatar_ns.model_components.noisy_labels import label_belief, noisy_label_cross_entropy
from hfavatar_ns.model_components.silhouette_loss import silhouette_loss
from hfavatar_ns.models.hfavatar_model import HFAvatarModelConfig


def pull(probability: float, label: float, flip_rate: float) -> float:
    point = torch.tensor([probability], requires_grad=True)
    noisy_label_cross_entropy(point, torch.tensor([label]), flip_rate).sum().backward()
    return abs(float(point.grad))


def test_rate_zero_is_plain_cross_entropy():
    probability = torch.tensor([0.01, 0.3, 0.5, 0.9, 0.99])
    label = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0])
    expected = F.binary_cross_entropy(probability, label, reduction="none")
    assert torch.allclose(noisy_label_cross_entropy(probability, label, 0.0), expected)


def test_a_contradicted_label_pulls_with_a_bounded_gradient():
    flip_rate = 0.05
    # The model is sure the ray is the person; the label says background.
    assert pull(0.999, 0.0, 0.0) > 500.0
    assert pull(0.999, 0.0, flip_rate) < 1.0 / flip_rate
    # An agreeing label still pulls towards it, as plain cross-entropy does near the middle.
    assert pull(0.5, 1.0, flip_rate) == pytest.approx((1 - 2 * flip_rate) * pull(0.5, 1.0, 0.0))
    # Still smallest where the probability equals the label.
    grid = torch.linspace(0.001, 0.999, 999)
    losses = noisy_label_cross_entropy(grid, torch.ones_like(grid), flip_rate)
    assert int(losses.argmin()) == len(grid) - 1


def test_rates_that_carry_no_information_are_refused():
    with pytest.raises(ValueError, match="flip_rate"):
        noisy_label_cross_entropy(torch.tensor([0.5]), torch.tensor([1.0]), 0.5)


def test_the_silhouette_loss_uses_the_same_model():
    min_sdf = torch.tensor([[0.05], [-0.05], [0.2]])
    mask = torch.tensor([[1.0], [0.0], [1.0]])
    plain = silhouette_loss(min_sdf, mask, 50.0)
    assert torch.allclose(plain, silhouette_loss(min_sdf, mask, 50.0, 0.0))
    robust = silhouette_loss(min_sdf, mask, 50.0, 0.05)
    assert float(robust) < float(plain)  # every ray here is confidently contradicted


def test_the_config_setting_reaches_the_mask_loss():
    outputs = {"rgb": torch.zeros(2, 3), "accumulation": torch.tensor([[0.99], [0.5]])}
    target, mask = torch.zeros(2, 3), torch.tensor([[0.0], [1.0]])
    plain_config = HFAvatarModelConfig(skinning_loss_mult=0.0, mask_label_noise=0.0)
    plain = avatar_losses(plain_config, outputs, target, mask, [], {})
    robust_config = HFAvatarModelConfig(skinning_loss_mult=0.0, mask_label_noise=0.05)
    robust = avatar_losses(robust_config, outputs, target, mask, [], {})
    expected = noisy_label_cross_entropy(outputs["accumulation"], mask, 0.05).mean()
    assert torch.allclose(robust["mask_loss"], expected)
    assert float(robust["mask_loss"]) < float(plain["mask_loss"])


def test_a_label_is_believed_as_far_as_the_flipping_channel_allows():
    probability = torch.tensor([0.95, 0.5, 0.05, 0.95])
    label = torch.tensor([0.0, 0.0, 0.0, 1.0])
    belief = label_belief(probability, label, 0.15)
    # Bayes by hand: P(right) = (1 - r) q / ((1 - r) q + r (1 - q)), q the model's agreement with the label.
    agreement = torch.tensor([0.05, 0.5, 0.95, 0.95])
    expected = 0.85 * agreement / (0.85 * agreement + 0.15 * (1 - agreement))
    assert torch.allclose(belief, expected)
    assert belief[0] < 0.25 < 0.8 < belief[1] < belief[2]  # a contradicted background label is doubted
    assert torch.equal(label_belief(probability, label, 0.0), torch.ones(4))  # exact labels: always believed
    with pytest.raises(ValueError, match="0.5"):
        label_belief(probability, label, 0.5)
