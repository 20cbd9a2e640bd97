"""Mask labels the avatar's colour contradicts stay out of the losses; every other ray counts as before."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hfavatar_ns.model_components.avatar_losses import avatar_losses
from hfavatar_ns.model_components.mask_trust import contradicted_background
from hfavatar_ns.model_components.noisy_labels import label_belief
from hfavatar_ns.models.hfavatar_model import HFAvatarModelConfig

BLACK = torch.zeros(3)
SKIN = torch.tensor([0.8, 0.6, 0.5])


def rays(*cases):
    """(mask, image colour, rendered colour, accumulation) per ray."""
    mask = torch.tensor([[c[0]] for c in cases], dtype=torch.float32)
    image = torch.stack([c[1] for c in cases])
    rendered = torch.stack([c[2] for c in cases])
    accumulation = torch.tensor([[c[3]] for c in cases], dtype=torch.float32)
    return mask, image, rendered, accumulation


def test_only_a_background_label_over_a_pixel_the_avatar_explains_is_contradicted():
    mask, image, rendered, accumulation = rays(
        (0.0, SKIN, SKIN * 0.97, 0.95),  # a hand the mask misses: the avatar draws the pixel's colour
        (0.0, BLACK, SKIN, 0.95),  # true background the avatar wrongly covers: the label is right
        (0.0, SKIN, SKIN, 0.2),  # the avatar does not cover it: nothing to protect
        (0.0, torch.tensor([0.1, 0.5, 0.9]), SKIN, 0.95),  # a coloured background, unlike the avatar
        (1.0, SKIN, SKIN, 0.95),  # foreground labels are never doubted
    )
    contradicted = contradicted_background(mask, image, rendered, accumulation, BLACK, margin=0.1)
    assert contradicted.reshape(-1).tolist() == [True, False, False, False, False]
    assert not contradicted_background(mask, image, rendered, accumulation, BLACK, margin=None).any()


def test_losses_without_untrusted_rays_equal_the_losses_of_the_trusted_ones():
    config = HFAvatarModelConfig(silhouette_loss_mult=0.1, skinning_loss_mult=0.0)
    generator = torch.Generator().manual_seed(0)
    count = 64
    outputs = {
        "rgb": torch.rand(count, 3, generator=generator),
        "accumulation": torch.rand(count, 1, generator=generator),
        "ray_min_sdf": torch.randn(count, 1, generator=generator) * 0.05,
    }
    target = torch.rand(count, 3, generator=generator)
    mask = (torch.rand(count, 1, generator=generator) > 0.5).float()
    everything = avatar_losses(config, outputs, target, mask, [], {})
    assert torch.allclose(everything["rgb_loss"], F.l1_loss(outputs["rgb"], target))  # unchanged without trust
    trusted = torch.rand(count, 1, generator=generator) > 0.3
    some = avatar_losses(config, outputs, target, mask, [], {}, trusted=trusted)
    keep = trusted.reshape(-1)
    subset = avatar_losses(config, {k: v[keep] for k, v in outputs.items()}, target[keep], mask[keep], [], {})
    for name in ("rgb_loss", "mask_loss", "silhouette_loss"):
        assert torch.allclose(some[name], subset[name]), name
    assert not torch.allclose(some["mask_loss"], everything["mask_loss"])


@pytest.mark.slow
def test_rays_at_a_mask_outline_are_left_out_of_the_losses_from_the_command_line(tmp_path):
    """``--pipeline.datamanager.pixel-sampler.mask-outline-px`` reaches the sampler, and the model drops
    the flagged rays from its image losses."""
    from ns_train_fixture import trained_on_tiny_capture

    pipeline = trained_on_tiny_capture(tmp_path, 1, "--pipeline.datamanager.pixel-sampler.mask-outline-px", "2").pipeline
    ray_bundle, batch = pipeline.datamanager.next_train(1)
    flagged = batch["mask_outline"].reshape(-1)
    assert flagged.any() and not flagged.all()
    outputs = pipeline.model(ray_bundle)
    dropped = pipeline.model.get_loss_dict(outputs, batch)
    kept = pipeline.model.get_loss_dict(outputs, {**batch, "mask_outline": torch.zeros_like(batch["mask_outline"])})
    assert not torch.allclose(dropped["mask_loss"], kept["mask_loss"])
    # With mask_outline_losses="colour" the flagged rays still count for the mask and silhouette terms.
    pipeline.model.config.mask_outline_losses = "colour"
    colour_only = pipeline.model.get_loss_dict(outputs, batch)
    assert torch.allclose(colour_only["mask_loss"], kept["mask_loss"])
    assert torch.allclose(colour_only["rgb_loss"], dropped["rgb_loss"])


def test_the_colour_loss_can_trust_fewer_rays_than_the_mask_terms():
    generator = torch.Generator().manual_seed(3)
    outputs = {"rgb": torch.rand(6, 3, generator=generator), "accumulation": torch.rand(6, 1, generator=generator)}
    target, mask = torch.rand(6, 3, generator=generator), torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0], [1.0]])
    config = HFAvatarModelConfig(skinning_loss_mult=0.0)
    colour_trusted = torch.tensor([[True], [True], [False], [False], [True], [True]])
    split = avatar_losses(config, outputs, target, mask, [], {}, colour_trusted=colour_trusted)
    everything = avatar_losses(config, outputs, target, mask, [], {})
    keep = colour_trusted[:, 0]
    subset = avatar_losses(config, {k: v[keep] for k, v in outputs.items()}, target[keep], mask[keep], [], {})
    assert torch.allclose(split["rgb_loss"], subset["rgb_loss"])
    assert torch.allclose(split["mask_loss"], everything["mask_loss"])


def test_background_labels_count_in_the_colour_loss_only_on_masks_declared_exact():
    from types import SimpleNamespace

    from hfavatar_ns.models.hfavatar_model import HFAvatarModel

    def resolved(choice: str, metadata: dict) -> str:
        config = HFAvatarModelConfig(colour_on_background_labels=choice)
        model = SimpleNamespace(config=config, kwargs={"metadata": metadata})
        return HFAvatarModel.background_labels_in_colour.fget(model)

    assert HFAvatarModelConfig().colour_on_background_labels == "auto"
    assert resolved("auto", {"masks_estimated": False}) == "all"
    assert resolved("auto", {"masks_estimated": True}) == "none"
    assert resolved("auto", {}) == "none"  # a dataparser that says nothing: the masks are estimates
    for choice in ("all", "believed", "sharpness", "none"):
        assert resolved(choice, {"masks_estimated": True}) == resolved(choice, {"masks_estimated": False}) == choice


@pytest.mark.slow
def test_the_colour_loss_weighs_background_labels_as_configured(tmp_path):
    """``--pipeline.model.colour-on-background-labels`` reaches the model: ``none`` makes the colour loss the
    L1 over the foreground-labelled rays alone, ``believed`` weights each background label by its belief;
    the mask loss counts every ray either way."""
    from ns_train_fixture import trained_on_tiny_capture

    pipeline = trained_on_tiny_capture(tmp_path, 1, "--pipeline.model.colour-on-background-labels", "none").pipeline
    model = pipeline.model
    assert model.config.colour_on_background_labels == "none"
    model.config.mask_trust_margin = None  # every label believed, so the foreground is exactly mask == 1
    ray_bundle, batch = pipeline.datamanager.next_train(1)
    outputs = model(ray_bundle)
    target, mask = model.target_rgb(batch, outputs["rgb"].device)
    error = (outputs["rgb"] - target).abs().mean(dim=-1)
    foreground = mask.reshape(-1) > 0.5
    assert foreground.any() and not foreground.all()
    left_out = model.get_loss_dict(outputs, batch)
    assert torch.allclose(left_out["rgb_loss"], model.config.rgb_loss_mult * error[foreground].mean())

    model.config.colour_on_background_labels = "believed"
    belief = label_belief(outputs["accumulation"].detach().reshape(-1), mask.reshape(-1), model.config.mask_label_noise)
    weights = torch.where(foreground, torch.ones_like(belief), belief)
    believed = model.get_loss_dict(outputs, batch)
    assert torch.allclose(believed["rgb_loss"], model.config.rgb_loss_mult * (error * weights).sum() / weights.sum())

    model.config.colour_on_background_labels = "all"
    every_ray = model.get_loss_dict(outputs, batch)
    assert torch.allclose(every_ray["rgb_loss"], model.config.rgb_loss_mult * error.mean())
    for losses in (left_out, believed):
        assert torch.allclose(every_ray["mask_loss"], losses["mask_loss"])
    assert len({round(float(losses["rgb_loss"]), 6) for losses in (left_out, believed, every_ray)}) == 3


@pytest.mark.slow
def test_background_labels_can_move_the_sharpness_alone(tmp_path):
    """With ``sharpness`` the colour loss has the value of ``all``, but background-labelled rays send gradient
    only to NeuS's sharpness: every other parameter gets what the foreground-labelled rays alone give it."""
    from ns_train_fixture import trained_on_tiny_capture

    flags = ("--pipeline.model.colour-on-background-labels", "sharpness")
    pipeline = trained_on_tiny_capture(tmp_path, 1, *flags).pipeline
    model = pipeline.model
    assert model.config.colour_on_background_labels == "sharpness"
    model.config.mask_trust_margin = None
    ray_bundle, batch = pipeline.datamanager.next_train(1)
    outputs = model(ray_bundle)
    target, mask = model.target_rgb(batch, outputs["rgb"].device)
    foreground = mask.reshape(-1) > 0.5
    assert foreground.any() and not foreground.all()
    error = (outputs["rgb"] - target).abs().mean(dim=-1)
    losses = model.get_loss_dict(outputs, batch)
    assert torch.allclose(losses["rgb_loss"], model.config.rgb_loss_mult * error.mean())

    def gradients(loss: torch.Tensor) -> dict:
        named = dict(model.field.named_parameters())
        grads = torch.autograd.grad(loss, list(named.values()), retain_graph=True, allow_unused=True)
        return {name: torch.zeros_like(named[name]) if g is None else g for name, g in zip(named, grads)}

    with_background = gradients(losses["rgb_loss"])
    foreground_only = gradients(model.config.rgb_loss_mult * error[foreground].sum() / error.numel())
    for name, gradient in with_background.items():
        if name != "log_inv_s":
            assert torch.allclose(gradient, foreground_only[name], atol=1e-7), name
    assert not torch.allclose(with_background["log_inv_s"], foreground_only["log_inv_s"])
    assert bool(with_background["log_inv_s"].abs().sum() > 0)
