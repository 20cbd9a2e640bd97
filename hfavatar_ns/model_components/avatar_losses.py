"""The avatar's training losses, from a batch's outputs, its target and the learnable state they regularise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict, Iterable, Optional

import torch
from jaxtyping import Float
from torch import Tensor, nn

from hfavatar_ns.model_components.noisy_labels import noisy_label_cross_entropy
from hfavatar_ns.model_components.normal_smoothness import normal_difference
from hfavatar_ns.model_components.silhouette_loss import silhouette_loss

if TYPE_CHECKING:
    from hfavatar_ns.models.hfavatar_model import HFAvatarModelConfig


def residual_penalty(residual: Float[Tensor, "*bs"], saturation: float) -> Float[Tensor, "*bs"]:
    """Per-point cost of the residual SDF: ``|r|``, or with ``saturation`` > 0 ``s * log(1 + |r| / s)``, whose
    slope is L1's at 0 and falls as ``s / (s + |r|)``: a drift of a few millimetres where the images are
    vague is pulled back as hard as by L1, while clothing that stands centimetres off the body pays
    little more than a fold does."""
    magnitude = residual.abs()
    if saturation <= 0:
        return magnitude
    return saturation * torch.log1p(magnitude / saturation)


def avatar_losses(
    config: "HFAvatarModelConfig",
    outputs: Dict[str, Tensor],
    target: Float[Tensor, "R 3"],
    mask: Float[Tensor, "R 1"],
    skinning_parameters: Iterable[nn.Parameter],
    body_corrections: Dict[str, Tensor],
    trusted: Optional[Float[Tensor, "R 1"]] = None,
    colour_trusted: Optional[Float[Tensor, "R 1"]] = None,
) -> Dict[str, Tensor]:
    """Every loss term, each already multiplied by its weight in ``config`` (terms with weight 0 are left out).

    Args:
        config: the model's configuration (the ``*_loss_mult`` weights).
        outputs: :meth:`HFAvatarModel.get_outputs` in training mode.
        target: colour composited on the background with the mask.
        mask: the foreground mask of each ray.
        skinning_parameters: the learned skinning residual (kept near the body's weights).
        body_corrections: mean squared pose-refinement corrections (``BodyFrames.correction_magnitudes``).
        trusted: rays whose mask label the image and colour losses may use (``None``: all); the others are
            left out of them (see :mod:`hfavatar_ns.model_components.mask_trust`).
        colour_trusted: each ray's weight in the colour loss (0 or 1, or between where a label is partly
            believed), where it trusts fewer rays than the mask terms (``None``: those of ``trusted``).
    """
    weight = torch.ones_like(mask) if trusted is None else trusted.to(mask.dtype)
    count = weight.sum().clamp_min(1.0)
    colour_weight = weight if colour_trusted is None else colour_trusted.to(mask.dtype)
    colour_error = (outputs["rgb"] - target).abs().mean(dim=-1, keepdim=True)
    losses = {"rgb_loss": config.rgb_loss_mult * (colour_error * colour_weight).sum() / colour_weight.sum().clamp_min(1.0)}
    # Where the mask loss may not move the sharpness, the model renders a second accumulation with it held.
    accumulation = outputs.get("mask_accumulation", outputs["accumulation"]).clamp(1e-3, 1.0 - 1e-3)
    mask_error = noisy_label_cross_entropy(accumulation, mask, config.mask_label_noise)
    losses["mask_loss"] = config.mask_loss_mult * (mask_error * weight).sum() / count
    if "ray_min_sdf" in outputs and config.silhouette_loss_mult > 0:
        ray_min_sdf = outputs["ray_min_sdf"]
        if trusted is not None:  # an untrusted ray is one the silhouette loss must not act on
            ray_min_sdf = torch.where(trusted, ray_min_sdf, torch.full_like(ray_min_sdf, float("inf")))
        silhouette = silhouette_loss(ray_min_sdf, mask, config.silhouette_sharpness, config.mask_label_noise)
        if silhouette is not None:
            losses["silhouette_loss"] = config.silhouette_loss_mult * silhouette
    if "eikonal_gradients" in outputs:
        norms = outputs["eikonal_gradients"].norm(dim=-1)
        target = outputs.get("eikonal_target_norm", 1.0)  # the prior's own norm, or NeuS's 1
        losses["eikonal_loss"] = config.eikonal_loss_mult * ((norms - target) ** 2).mean()
        if config.body_prior:  # without a body prior the residual is the shape: nothing to pull it towards
            penalty = residual_penalty(outputs["residual_sdf"], config.residual_loss_saturation)
            losses["residual_loss"] = config.residual_loss_mult * penalty.mean()
    if "smoothness_gradients" in outputs:
        gradients, neighbour_gradients = outputs["smoothness_gradients"]
        losses["normal_smoothness_loss"] = config.normal_smoothness_loss_mult * normal_difference(
            gradients, neighbour_gradients
        )
    if "non_rigid_offset" in outputs and config.non_rigid_loss_mult > 0:
        offset = outputs["non_rigid_offset"]
        losses["non_rigid_loss"] = config.non_rigid_loss_mult * (offset**2).sum(dim=-1).mean()
    if config.skinning_loss_mult > 0:
        residual = torch.cat([p.reshape(-1) for p in skinning_parameters])
        losses["skinning_loss"] = config.skinning_loss_mult * (residual**2).mean()
    if body_corrections and config.pose_correction_loss_mult > 0:
        total = body_corrections["pose"] + body_corrections["rotation"]
        total = total + body_corrections["translation"] / config.pose_correction_translation_scale**2
        losses["pose_correction_loss"] = config.pose_correction_loss_mult * total
    return losses
