"""The residual SDF's cost: L1 by default; saturating past a few millimetres when asked."""

from __future__ import annotations

import torch

from hfavatar_ns.model_components.avatar_losses import avatar_losses, residual_penalty
from hfavatar_ns.models.hfavatar_model import HFAvatarModelConfig


def slope(residual: float, saturation: float) -> float:
    point = torch.tensor([residual], requires_grad=True)
    residual_penalty(point, saturation).sum().backward()
    return float(point.grad)


def test_without_saturation_the_penalty_is_l1():
    residual = torch.tensor([-0.2, -0.003, 0.0, 0.004, 0.1])
    assert torch.allclose(residual_penalty(residual, 0.0), residual.abs())


def test_saturation_keeps_l1_slope_at_small_residuals_and_lowers_it_for_large_ones():
    saturation = 0.005
    assert abs(slope(1e-6, saturation) - 1.0) < 1e-3  # a small drift is pulled back as by L1
    assert abs(slope(-1e-6, saturation) + 1.0) < 1e-3
    # A 5 cm skirt pays 1/11 of L1's slope: s / (s + |r|).
    assert abs(slope(0.05, saturation) - saturation / (saturation + 0.05)) < 1e-5
    # Monotone: a larger residual never costs less.
    values = residual_penalty(torch.linspace(0.0, 0.25, 100), saturation)
    assert bool((values[1:] > values[:-1]).all())
    assert float(residual_penalty(torch.tensor([0.002]), saturation)) < 0.002  # never above L1


def test_the_config_setting_reaches_the_residual_loss():
    outputs = {
        "rgb": torch.zeros(4, 3),
        "accumulation": torch.full((4, 1), 0.5),
        "eikonal_gradients": torch.ones(8, 3) / 3**0.5,
        "residual_sdf": torch.tensor([[0.0], [0.002], [-0.05], [0.1], [0.0], [0.0], [0.0], [0.0]]),
    }
    target, mask = torch.zeros(4, 3), torch.ones(4, 1)
    plain = avatar_losses(HFAvatarModelConfig(skinning_loss_mult=0.0), outputs, target, mask, [], {})
    assert torch.allclose(plain["residual_loss"], 0.05 * outputs["residual_sdf"].abs().mean())
    saturated_config = HFAvatarModelConfig(skinning_loss_mult=0.0, residual_loss_saturation=0.005)
    saturated = avatar_losses(saturated_config, outputs, target, mask, [], {})
    expected = 0.05 * (0.005 * torch.log1p(outputs["residual_sdf"].abs() / 0.005)).mean()
    assert torch.allclose(saturated["residual_loss"], expected)
    assert float(saturated["residual_loss"]) < float(plain["residual_loss"])
