"""HF-Avatar as a nerfstudio model.

Per ray: the frame's dilated posed body bounds the samples (prior-guided inner sampling); each
sample is carried from observation to canonical space by iterative backward deformation; the
canonical field gives SDF (body prior + learned residual) and colour; NeuS-style rendering turns
SDF into opacity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig

from hfavatar_ns.body.canonical_pose import canonical_pose_transforms, rebase_to_canonical, star_pose
from hfavatar_ns.body.base import CanonicalBody
from hfavatar_ns.body.skinning import SMPL_PARENTS, transform_points
from hfavatar_ns.deformation.backward import (
    BackwardDeformation,
    BackwardDeformationConfig,
    blend_point_transforms,
    per_point_bone_transforms,
)
from hfavatar_ns.fields.avatar_field import AvatarField, AvatarFieldConfig
from hfavatar_ns.geometry.prior_sdf import build_sdf_grid, query_sdf_grid
from hfavatar_ns.model_components.inner_sampler import InnerSampler, InnerSamplerConfig
from hfavatar_ns.models.neus_rendering import neus_alpha, weights_from_alpha


class PriorSDF(nn.Module):
    """The canonical body's signed distance, precomputed on a grid and sampled trilinearly."""

    def __init__(self, vertices: Tensor, faces: Tensor, bounds: Tensor, resolution: int):
        super().__init__()
        self.grid = build_sdf_grid(vertices, faces, bounds[0], bounds[1], resolution)

    def forward(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]:
        return query_sdf_grid(self.grid, points)


@dataclass
class HFAvatarModelConfig(ModelConfig):
    """HF-Avatar: body-prior SDF + hash-grid residual, inner sampling, iterative backward deformation."""

    _target: Type = field(default_factory=lambda: HFAvatarModel)
    sdf_field: AvatarFieldConfig = field(default_factory=AvatarFieldConfig)
    """The canonical field (named as nerfstudio's SDF models name it, so `ns-export marching-cubes` finds it)."""
    sampler: InnerSamplerConfig = field(default_factory=InnerSamplerConfig)
    deformation: BackwardDeformationConfig = field(default_factory=BackwardDeformationConfig)
    canonical_leg_angle: float = 0.45
    """Hip abduction (radians) of the canonical star pose."""
    canonical_margin: float = 0.15
    """Margin (metres) around the canonical body of the box the residual field and prior grid cover."""
    prior_sdf_resolution: int = 96
    background_color: Literal["black", "white"] = "black"
    """Colour of pixels outside the foreground mask (ZJU-MoCap methods train on black)."""
    rgb_loss_mult: float = 1.0
    mask_loss_mult: float = 1.0
    eikonal_loss_mult: float = 0.1
    residual_loss_mult: float = 0.05
    """L1 on the residual SDF: keep to the body where the images say nothing."""
    non_rigid_loss_mult: float = 1.0
    """L2 on the non-rigid offsets (metres^2): skinning explains the motion unless the images disagree."""
    skinning_loss_mult: float = 0.01
    """L2 on the learned skinning-logit residual: stay close to the body's weights."""
    silhouette_loss_mult: float = 0.1
    """Weight of the silhouette loss on each ray's smallest SDF against the foreground mask."""
    silhouette_sharpness: float = 50.0
    """Logit scale (1/metres) of the silhouette loss."""
    mapping_tolerance: float = 0.03
    """Metres by which a sample's distance to the posed body may exceed its canonical point's distance to
    the canonical body before the mapping counts as spurious (see ``reject_inconsistent_mapping``); 0: off."""
    cos_anneal_end: int = 2000
    """Steps over which NeuS's cos-anneal ratio goes from 0 to 1."""


class HFAvatarModel(Model):
    config: HFAvatarModelConfig

    def populate_modules(self) -> None:
        super().populate_modules()
        body = self.kwargs["metadata"]["body"]
        rest_vertices = body["canonical_vertices"].float()
        weights = body["skinning_weights"].float()
        faces = body["faces"].long()
        rest_to_canonical = canonical_pose_transforms(
            body["canonical_joints"].float(), SMPL_PARENTS, star_pose(self.config.canonical_leg_angle)
        )
        canonical_vertices, bone_transforms = rebase_to_canonical(
            rest_vertices, weights, rest_to_canonical, body["bone_transforms"].float()
        )
        # Per-frame tables come from the dataparser at construction; never saved in checkpoints.
        self.register_buffer("bone_transforms", bone_transforms, persistent=False)
        self.register_buffer("body_poses", body["poses"].float(), persistent=False)
        self.register_buffer("posed_vertices", body["posed_vertices"].float(), persistent=False)
        self.register_buffer("body_faces", faces, persistent=False)
        self.register_buffer("frame_ids", body["frame_indices"].long(), persistent=False)
        frame_ids = body["frame_indices"].float()
        span = (frame_ids.max() - frame_ids.min()).clamp(min=1.0)
        self.register_buffer("frame_times", (frame_ids - frame_ids.min()) / span, persistent=False)
        self.num_frames = int(bone_transforms.shape[0])

        margin = self.config.canonical_margin
        bounds = torch.stack([canonical_vertices.min(0).values - margin, canonical_vertices.max(0).values + margin])
        self.prior_sdf = PriorSDF(canonical_vertices, faces, bounds, self.config.prior_sdf_resolution)
        self.field = AvatarField(self.config.sdf_field, bounds, self.prior_sdf)
        canonical_joints = transform_points(rest_to_canonical, body["canonical_joints"].float())
        self.deformation = BackwardDeformation(self.config.deformation)
        self.deformation.setup_body(
            canonical=CanonicalBody(
                vertices=canonical_vertices, faces=faces, joints=canonical_joints, skinning_weights=weights
            ),
            posed_vertices=self.posed_vertices,
            bone_transforms=bone_transforms,
            poses=self.body_poses,
        )
        self.sampler = InnerSampler(self.config.sampler)
        self.sampler.set_frames(self.posed_vertices, faces, self.scene_box.aabb)
        self.cos_anneal_ratio = 1.0 if self.config.cos_anneal_end <= 0 else 0.0
        self.viewer_frame: Optional[int] = None
        """Frame rendered for rays that carry none (set by the viewer's frame slider)."""

        from torchmetrics.functional import structural_similarity_index_measure
        from torchmetrics.image import PeakSignalNoiseRatio

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = structural_similarity_index_measure

    # ------------------------------------------------------------------ geometry queries

    def canonical_sdf(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]:
        """The avatar's SDF in canonical space."""
        return self.field.get_sdf(points).reshape(-1)

    def posed_sdf(self, points: Float[Tensor, "N 3"], frame_row: int) -> Float[Tensor, "N"]:
        """The avatar's SDF at observation-space points of one frame (row of the per-frame tables)."""
        frames = torch.full((points.shape[0],), int(frame_row), dtype=torch.long, device=points.device)
        canonical, aux = self.deformation(points, frames)
        sdf = self.reject_inconsistent_mapping(self.field.get_sdf(canonical), canonical, aux["body_distance"])
        return sdf.reshape(-1)

    def reject_inconsistent_mapping(
        self, sdf: Float[Tensor, "N 1"], points_canonical: Float[Tensor, "N 3"], body_distance: Float[Tensor, "N"]
    ) -> Float[Tensor, "N 1"]:
        """Empty space where inverse skinning sent a point much closer to the body than it is.

        Backward skinning has spurious solutions: a point beside a shoulder, given arm weights by its
        nearest vertices, lands inside the canonical arm and would render a phantom "wing". Skinning is
        close to an isometry near the body, so a point's distance to the posed body (``body_distance``)
        and its canonical point's distance to the canonical body (``|prior SDF|``) should agree. Where
        the posed distance exceeds the canonical one by more than the tolerance, the SDF is blended (over
        one more tolerance) towards the posed distance: outside, as the point really is.
        """
        tolerance = self.config.mapping_tolerance
        if tolerance <= 0:
            return sdf
        prior = self.prior_sdf(points_canonical).detach().abs()
        excess = body_distance.detach() - prior - tolerance
        blend = (excess / tolerance).clamp(0.0, 1.0)[:, None]
        return (1.0 - blend) * sdf + blend * body_distance.detach()[:, None]

    @property
    def canonical_bounds(self) -> Float[Tensor, "2 3"]:
        return self.field.bounds

    def posed_bounds(self, frame_row: int, margin: Optional[float] = None) -> Float[Tensor, "2 3"]:
        """A box around one frame's posed body, wide enough for loose clothing."""
        margin = self.config.sampler.margin + 0.05 if margin is None else margin
        vertices = self.posed_vertices[int(frame_row)]
        return torch.stack([vertices.min(0).values - margin, vertices.max(0).values + margin])

    # ------------------------------------------------------------------ nerfstudio hooks

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        return {"fields": list(self.field.parameters()), "deformation": list(self.deformation.parameters())}

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        def set_progress(step: int) -> None:
            if self.config.cos_anneal_end > 0:
                self.cos_anneal_ratio = min(1.0, step / self.config.cos_anneal_end)
            self.deformation.set_progress(step)

        return [
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], update_every_num_iters=1, func=set_progress
            )
        ]

    def background(self, device: torch.device) -> Tensor:
        value = 0.0 if self.config.background_color == "black" else 1.0
        return torch.full((3,), value, device=device)

    def frame_rows(self, ray_bundle: RayBundle) -> Int[Tensor, "R"]:
        """The per-frame table row of each ray: from its metadata, else its time, else the viewer's frame."""
        num_rays = ray_bundle.origins.shape[0]
        device = ray_bundle.origins.device
        metadata = ray_bundle.metadata or {}
        if "frame_idx" in metadata:
            return metadata["frame_idx"].reshape(-1).long().clamp(0, self.num_frames - 1)
        if self.viewer_frame is not None:
            return torch.full((num_rays,), int(self.viewer_frame), dtype=torch.long, device=device)
        if ray_bundle.times is not None:
            times = ray_bundle.times.reshape(-1, 1).to(device)
            return (times - self.frame_times[None]).abs().argmin(dim=-1)
        return torch.zeros(num_rays, dtype=torch.long, device=device)

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        device = ray_bundle.origins.device
        frames = self.frame_rows(ray_bundle)
        ray_samples, ray_hits = self.sampler(ray_bundle, frames)
        num_rays, num_samples = ray_samples.shape[:2]
        positions = ray_samples.frustums.get_positions()  # [R,S,3] observation space
        directions = ray_samples.frustums.directions
        deltas = ray_samples.deltas

        rgb_samples = torch.zeros(num_rays, num_samples, 3, device=device)
        alpha = torch.zeros(num_rays, num_samples, 1, device=device)
        normals_obs = torch.zeros(num_rays, num_samples, 3, device=device)
        outputs: Dict[str, Tensor] = {}
        hit = ray_hits.nonzero().reshape(-1)
        if hit.numel() > 0:
            points_obs = positions[hit].reshape(-1, 3)
            sample_frames = frames[hit][:, None].expand(-1, num_samples).reshape(-1)
            points_canonical, deformation_aux = self.deformation(points_obs, sample_frames)
            sdf, features, gradient = self.field.sdf_and_gradient(points_canonical)
            sdf = self.reject_inconsistent_mapping(sdf, points_canonical, deformation_aux["body_distance"])
            # Rotate the canonical gradient into observation space with the blended bone transform
            # (for a rotation R, the inverse-transpose the chain rule asks for is R itself).
            blended = blend_point_transforms(
                deformation_aux["skinning_weights"], per_point_bone_transforms(self.bone_transforms, sample_frames)
            )
            gradient_obs = (blended[:, :, :3] @ gradient[:, :, None])[..., 0]
            dirs = directions[hit].reshape(-1, 3)
            pose = self.body_poses[sample_frames, 3:]
            colors = self.field.get_color(features, F.normalize(gradient_obs, dim=-1), dirs, pose)
            sample_alpha = neus_alpha(
                sdf, gradient_obs, dirs, deltas[hit].reshape(-1, 1), self.field.inv_s(), self.cos_anneal_ratio
            )
            alpha = alpha.index_put((hit,), sample_alpha.reshape(-1, num_samples, 1))
            rgb_samples = rgb_samples.index_put((hit,), colors.reshape(-1, num_samples, 3))
            normals_obs = normals_obs.index_put((hit,), F.normalize(gradient_obs, dim=-1).reshape(-1, num_samples, 3))
            if self.training:
                # Closest approach of each hit ray to the surface: drives the silhouette loss.
                min_sdf = torch.full((num_rays, 1), float("inf"), device=device)
                min_sdf = min_sdf.index_put((hit,), sdf.reshape(-1, num_samples).min(dim=1).values[:, None])
                outputs["ray_min_sdf"] = min_sdf
                outputs["eikonal_gradients"] = gradient
                outputs["residual_sdf"] = sdf - self.prior_sdf(points_canonical)[:, None]
                outputs["non_rigid_offset"] = deformation_aux["non_rigid_offset"]

        weights = weights_from_alpha(alpha)
        accumulation = weights.sum(dim=1)
        rgb = (weights * rgb_samples).sum(dim=1) + (1.0 - accumulation) * self.background(device)
        depth_along = (weights * (ray_samples.frustums.starts + ray_samples.frustums.ends) * 0.5).sum(dim=1)
        depth = depth_along / accumulation.clamp(min=1e-6)
        normals = F.normalize((weights * normals_obs).sum(dim=1), dim=-1)
        outputs.update(
            rgb=rgb.clamp(0.0, 1.0) if not self.training else rgb,
            accumulation=accumulation,
            depth=depth,
            normals=(normals + 1.0) / 2.0 * accumulation,
        )
        return outputs

    def target_rgb(self, batch: Dict, device: torch.device) -> Tuple[Tensor, Tensor]:
        """Ground-truth colour composited on the background with the foreground mask, and the mask."""
        image = batch["image"].to(device)[..., :3].float()
        if "mask" in batch:
            mask = batch["mask"].to(device).float().reshape(*image.shape[:-1], 1)
        else:
            mask = torch.ones_like(image[..., :1])
        return image * mask + self.background(device) * (1.0 - mask), mask

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        target, _ = self.target_rgb(batch, outputs["rgb"].device)
        return {"psnr": self.psnr(outputs["rgb"].clamp(0, 1), target), "inv_s": self.field.inv_s().detach()}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        device = outputs["rgb"].device
        target, mask = self.target_rgb(batch, device)
        losses = {"rgb_loss": self.config.rgb_loss_mult * F.l1_loss(outputs["rgb"], target)}
        accumulation = outputs["accumulation"].clamp(1e-3, 1.0 - 1e-3)
        losses["mask_loss"] = self.config.mask_loss_mult * F.binary_cross_entropy(accumulation, mask)
        if "ray_min_sdf" in outputs and self.config.silhouette_loss_mult > 0:
            # IDR-style: a foreground ray must come within the surface somewhere, a background ray must
            # stay outside. Unlike the accumulation loss, its gradient does not vanish far from the
            # current surface, so loose clothing the body prior lacks can grow out of it.
            hits = torch.isfinite(outputs["ray_min_sdf"])
            if hits.any():
                logits = -self.config.silhouette_sharpness * outputs["ray_min_sdf"][hits]
                losses["silhouette_loss"] = self.config.silhouette_loss_mult * F.binary_cross_entropy_with_logits(
                    logits, mask[hits]
                )
        if "eikonal_gradients" in outputs:
            norms = outputs["eikonal_gradients"].norm(dim=-1)
            losses["eikonal_loss"] = self.config.eikonal_loss_mult * ((norms - 1.0) ** 2).mean()
            losses["residual_loss"] = self.config.residual_loss_mult * outputs["residual_sdf"].abs().mean()
        if "non_rigid_offset" in outputs and self.config.non_rigid_loss_mult > 0:
            offset = outputs["non_rigid_offset"]
            losses["non_rigid_loss"] = self.config.non_rigid_loss_mult * (offset**2).sum(dim=-1).mean()
        if self.config.skinning_loss_mult > 0:
            residual = torch.cat([p.reshape(-1) for p in self.deformation.skinning_field.parameters()])
            losses["skinning_loss"] = self.config.skinning_loss_mult * (residual**2).mean()
        return losses

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box=None) -> Dict[str, Tensor]:
        return super().get_outputs_for_camera(camera, obb_box=obb_box)

    def get_image_metrics_and_images(self, outputs, batch) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        device = outputs["rgb"].device
        target, mask = self.target_rgb(batch, device)
        predicted = outputs["rgb"]
        predicted_chw = predicted.permute(2, 0, 1)[None]
        target_chw = target.permute(2, 0, 1)[None]
        metrics = {
            "psnr": float(self.psnr(predicted_chw, target_chw)),
            "ssim": float(self.ssim(predicted_chw, target_chw)),  # type: ignore[arg-type]
        }
        images = {
            "img": torch.cat([target, predicted], dim=1),
            "accumulation": torch.cat([mask.expand_as(outputs["accumulation"]), outputs["accumulation"]], dim=1),
            "normals": outputs["normals"],
        }
        return metrics, images
