"""HF-Avatar as a nerfstudio model.

Per ray: the frame's dilated posed body bounds the samples (prior-guided inner sampling); each
sample is carried from observation to canonical space by iterative backward deformation; the
canonical field gives SDF (body prior + learned residual) and colour; NeuS-style rendering turns
SDF into opacity.
"""

from __future__ import annotations

import copy
import dataclasses
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
from nerfstudio.viewer.viewer_elements import ViewerCheckbox, ViewerSlider, ViewerText

from hfavatar_ns.body.canonical_pose import canonical_pose_transforms, rebase_to_canonical, star_pose
from hfavatar_ns.body.base import CanonicalBody
from hfavatar_ns.body.skinning import SMPL_PARENTS, transform_points
from hfavatar_ns.deformation.backward import (
    BackwardDeformation,
    BackwardDeformationConfig,
    blend_point_transforms,
    per_point_bone_transforms,
)
from hfavatar_ns.deformation.weight_grid import PerFrameWeightGrids
from hfavatar_ns.evaluation.image_metrics import LpipsNet, avatar_image_metrics, lpips_metric
from hfavatar_ns.fields.avatar_field import AvatarField, AvatarFieldConfig
from hfavatar_ns.geometry.prior_sdf import build_sdf_grid, isotropic_resolution, query_sdf_grid
from hfavatar_ns.model_components.inner_sampler import InnerSampler, InnerSamplerConfig
from hfavatar_ns.model_components.normal_smoothness import near_surface_points, normal_difference
from hfavatar_ns.model_components.silhouette_loss import silhouette_loss
from hfavatar_ns.models.neus_rendering import neus_alpha, weights_from_alpha


class PriorSDF(nn.Module):
    """The canonical body's signed distance, precomputed on a grid and sampled trilinearly."""

    def __init__(self, vertices: Tensor, faces: Tensor, bounds: Tensor, resolution: int, isotropic: bool = False):
        super().__init__()
        nodes = isotropic_resolution(bounds[0], bounds[1], resolution) if isotropic else resolution
        self.grid = build_sdf_grid(vertices, faces, bounds[0], bounds[1], nodes)

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
    """Nodes per axis of the tabulated body-prior SDF (along the longest axis when ``prior_sdf_isotropic``)."""
    prior_sdf_isotropic: bool = False
    """Same node spacing on every axis (``prior_sdf_resolution`` nodes along the longest). Meshed at 256^3, the
    canonical body's tabulated SDF has normal consistency 0.37 against the body itself at 64^3 nodes, 0.62 at
    128^3 (both presets), 0.63 isotropic with 192 along the longest axis, 0.73 computed exactly. Not in the
    presets: hfavatar-lite with 192 isotropic on the default capture (800 steps) raised the posed meshes' NC
    0.568 -> 0.611 but held-out PSNR went 27.87 -> 27.71 dB, Chamfer 5.59 -> 5.67 mm, and training took 8%
    longer (577 s, near the 10-minute budget); on tiny (400 steps) every figure improved slightly."""
    background_color: Literal["black", "white"] = "black"
    """Colour of pixels outside the foreground mask (ZJU-MoCap methods train on black)."""
    rgb_loss_mult: float = 1.0
    mask_loss_mult: float = 1.0
    eikonal_loss_mult: float = 0.3
    """0.3, not NeuS's 0.1: on the tiny capture (400 steps) it lowered the posed mesh's Chamfer from 10.1 to
    8.7 mm at the same held-out PSNR."""
    residual_loss_mult: float = 0.05
    """L1 on the residual SDF: keep to the body where the images say nothing."""
    non_rigid_loss_mult: float = 1.0
    """L2 on the non-rigid offsets (metres^2): skinning explains the motion unless the images disagree."""
    skinning_loss_mult: float = 0.01
    """L2 on the learned skinning-logit residual: stay close to the body's weights."""
    normal_smoothness_loss_mult: float = 0.02
    """Weight of the normal-smoothness loss (normals near the surface vs. about a centimetre away); 0: off.
    On the tiny capture (with eikonal 0.3): Chamfer 8.7 -> 8.2 mm, F@1cm 0.79 -> 0.82, ~10% more time a step."""
    normal_smoothness_radius: float = 0.01
    """Metres: standard deviation of the step to the neighbour point, and the |SDF| band points come from."""
    normal_smoothness_points: int = 2048
    """Near-surface points per batch the normal-smoothness loss compares."""
    silhouette_loss_mult: float = 0.1
    """Weight of the silhouette loss on each ray's smallest SDF against the foreground mask."""
    silhouette_sharpness: float = 50.0
    """Logit scale (1/metres) of the silhouette loss."""
    mapping_tolerance: float = 0.03
    """Metres by which a sample's distance to the posed body may exceed its canonical point's distance to
    the canonical body before the mapping counts as spurious (see ``reject_inconsistent_mapping``); 0: off."""
    cos_anneal_end: int = 2000
    """Steps over which NeuS's cos-anneal ratio goes from 0 to 1."""
    lpips_net: LpipsNet = "vgg"
    """Backbone of the LPIPS metric (reported only when its weights are cached locally)."""
    canonical_render_samples: int = 64
    """Samples per ray when the viewer's "Canonical pose" box renders the canonical avatar."""


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
        self.prior_sdf = PriorSDF(
            canonical_vertices, faces, bounds, self.config.prior_sdf_resolution, self.config.prior_sdf_isotropic
        )
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
        self.setup_viewer_elements()

    # ------------------------------------------------------------------ geometry queries

    def canonical_sdf(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]:
        """The avatar's SDF in canonical space."""
        return self.field.get_sdf(points).reshape(-1)

    def posed_sdf(self, points: Float[Tensor, "N 3"], frame_row: int) -> Float[Tensor, "N"]:
        """The avatar's SDF at observation-space points of one frame (row of the per-frame tables)."""
        frames = torch.full((points.shape[0],), int(frame_row), dtype=torch.long, device=points.device)
        canonical, aux = self.deformation(points, frames)
        prior = self.prior_sdf(canonical)
        sdf = self.reject_inconsistent_mapping(self.field.get_sdf(canonical), prior, aux["body_distance"])
        return sdf.reshape(-1)

    def reject_inconsistent_mapping(
        self, sdf: Float[Tensor, "N 1"], prior_sdf: Float[Tensor, "N"], body_distance: Float[Tensor, "N"]
    ) -> Float[Tensor, "N 1"]:
        """Empty space where inverse skinning sent a point much closer to the body than it is.

        Backward skinning has spurious solutions: a point beside a shoulder, given arm weights by its
        nearest vertices, lands inside the canonical arm and would render a phantom "wing". Skinning is
        close to an isometry near the body, so a point's distance to the posed body (``body_distance``)
        and its canonical point's distance to the canonical body (``|prior_sdf|``) should agree. Where
        the posed distance exceeds the canonical one by more than the tolerance, the SDF is blended (over
        one more tolerance) towards the posed distance: outside, as the point really is.
        """
        tolerance = self.config.mapping_tolerance
        if tolerance <= 0:
            return sdf
        excess = body_distance.detach() - prior_sdf.detach().abs() - tolerance
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

    def set_progress(self, step: int) -> None:
        """Everything scheduled by the training step: NeuS's cos anneal, the non-rigid kick-in, hash levels."""
        if self.config.cos_anneal_end > 0:
            self.cos_anneal_ratio = min(1.0, step / self.config.cos_anneal_end)
        self.deformation.set_progress(step)
        self.field.set_progress(step)

    def update_to_step(self, step: int) -> None:
        # nerfstudio calls this when it loads a checkpoint (resume, ns-eval, ns-render, viewer): without it
        # a loaded avatar would render as at step 0 (non-rigid offsets and fine hash levels off).
        self.set_progress(step)

    def get_training_callbacks(self, training_callback_attributes: TrainingCallbackAttributes) -> List[TrainingCallback]:
        return [
            TrainingCallback(
                where_to_run=[TrainingCallbackLocation.BEFORE_TRAIN_ITERATION],
                update_every_num_iters=1,
                func=self.set_progress,
            )
        ]

    def background(self, device: torch.device) -> Tensor:
        value = 0.0 if self.config.background_color == "black" else 1.0
        return torch.full((3,), value, device=device)

    def normal_pairs(self, points_canonical: Float[Tensor, "N 3"], sdf: Float[Tensor, "N 1"]) -> Dict[str, Tensor]:
        """SDF gradients at near-surface canonical points and at random neighbours (normal smoothness)."""
        radius = self.config.normal_smoothness_radius
        points = near_surface_points(points_canonical, sdf, 2.0 * radius, self.config.normal_smoothness_points)
        if points is None:
            return {}
        neighbours = points + radius * torch.randn_like(points)
        _, _, gradients = self.field.sdf_and_gradient(torch.cat([points, neighbours]))
        return {"smoothness_gradients": gradients.reshape(2, -1, 3)}

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
            field_sdf, features, gradient = self.field.sdf_and_gradient(points_canonical)
            prior = self.prior_sdf(points_canonical)
            sdf = self.reject_inconsistent_mapping(field_sdf, prior, deformation_aux["body_distance"])
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
                # The learned part alone (before rejection, which is not the field's doing).
                outputs["residual_sdf"] = field_sdf - prior[:, None]
                outputs["non_rigid_offset"] = deformation_aux["non_rigid_offset"]
                if self.config.normal_smoothness_loss_mult > 0:
                    outputs.update(self.normal_pairs(points_canonical, field_sdf))

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
            silhouette = silhouette_loss(outputs["ray_min_sdf"], mask, self.config.silhouette_sharpness)
            if silhouette is not None:
                losses["silhouette_loss"] = self.config.silhouette_loss_mult * silhouette
        if "eikonal_gradients" in outputs:
            norms = outputs["eikonal_gradients"].norm(dim=-1)
            losses["eikonal_loss"] = self.config.eikonal_loss_mult * ((norms - 1.0) ** 2).mean()
            losses["residual_loss"] = self.config.residual_loss_mult * outputs["residual_sdf"].abs().mean()
        if "smoothness_gradients" in outputs:
            gradients, neighbour_gradients = outputs["smoothness_gradients"]
            losses["normal_smoothness_loss"] = self.config.normal_smoothness_loss_mult * normal_difference(
                gradients, neighbour_gradients
            )
        if "non_rigid_offset" in outputs and self.config.non_rigid_loss_mult > 0:
            offset = outputs["non_rigid_offset"]
            losses["non_rigid_loss"] = self.config.non_rigid_loss_mult * (offset**2).sum(dim=-1).mean()
        if self.config.skinning_loss_mult > 0:
            residual = torch.cat([p.reshape(-1) for p in self.deformation.skinning_field.parameters()])
            losses["skinning_loss"] = self.config.skinning_loss_mult * (residual**2).mean()
        return losses

    def get_rgba_image(self, outputs: Dict[str, Tensor], output_name: str = "rgb") -> Float[Tensor, "*bs 4"]:
        """The rendered colour without the background, and the accumulation as alpha.

        nerfstudio's exporters (``ns-export marching-cubes`` texturing) and viewer call this; the base
        class expects an ``RGBRenderer`` this model does not have. ``rgb`` is composited on the
        background, so the background's share is taken out again.
        """
        accumulation = outputs[output_name.replace("rgb", "accumulation")]
        composited = outputs[output_name][..., :3]
        background = self.background(composited.device)
        straight = (composited - (1.0 - accumulation) * background) / accumulation.clamp(min=1e-6)
        return torch.cat([straight.clamp(0.0, 1.0), accumulation], dim=-1)

    def get_image_metrics_and_images(self, outputs, batch) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        device = outputs["rgb"].device
        target, mask = self.target_rgb(batch, device)
        predicted = outputs["rgb"]
        # Whole image, and the crop to the mask's bounding box (NeuralBody/ARAH protocol); LPIPS on the
        # crop only when its weights are already on disk (evaluation never downloads).
        metrics = avatar_image_metrics(predicted, target, mask, self.lpips_metric())
        images = {
            "img": torch.cat([target, predicted], dim=1),
            "accumulation": torch.cat([mask.expand_as(outputs["accumulation"]), outputs["accumulation"]], dim=1),
            "normals": outputs["normals"],
        }
        return metrics, images

    # ------------------------------------------------------------------ evaluation extras

    def lpips_metric(self) -> Optional[nn.Module]:
        """LPIPS built on first use when its weights are on disk, else ``None`` (kept out of checkpoints)."""
        cache = self.__dict__.setdefault("_lpips_cache", {})
        if "metric" not in cache:
            cache["metric"] = lpips_metric(self.config.lpips_net)
        return cache["metric"]

    # ------------------------------------------------------------------ viewer: frame scrubbing, canonical pose
    #
    # Cameras from the viewer (and from ns-render trajectories) carry no frame_idx. Which frame they show:
    #   * the "Frame" slider (a row of the per-frame tables), unless
    #   * nerfstudio's "Time" slider moved since the last render: then its value picks the nearest frame
    #     row and the Frame slider is moved there. So whichever slider moved last wins. The Time value
    #     first counts as seen at its default, 0.0.
    # Cameras with frame_idx (datasets, ns-eval, ns-render dataset) are never changed. GUI state is read
    # only here, in eval mode: training never depends on it.

    def setup_viewer_elements(self) -> None:
        """The viewer's Frame slider, the capture frame id it shows, and the Canonical pose toggle."""
        last_row = max(self.num_frames - 1, 1)
        ids = self.frame_ids.tolist()
        shown = ", ".join(str(i) for i in ids[:12]) + (" ..." if len(ids) > 12 else "")
        self.viewer_frame_slider = ViewerSlider(
            "Frame", 0, 0, last_row, 1, cb_hook=self._show_frame_id,
            hint=f"Row of the avatar's frame table ({self.num_frames} rows; capture frame ids {shown})",
        )  # fmt: skip
        self.viewer_frame_id = ViewerText(
            "Capture frame id", self.frame_label(0), disabled=True, hint="The capture frame the Frame slider shows"
        )
        self.viewer_canonical = ViewerCheckbox(
            "Canonical pose", False, hint="Render the canonical avatar (no deformation), placed at the frame's pelvis"
        )
        self._viewer_last_time: float = 0.0

    def frame_label(self, row: int) -> str:
        """The capture frame id of a table row, as text (novel-motion rows have negative ids)."""
        row = min(max(int(row), 0), self.num_frames - 1)
        frame_id = int(self.frame_ids[row])
        return str(frame_id) if frame_id >= 0 else f"novel motion frame {-frame_id - 1}"

    def _show_frame_id(self, slider: ViewerSlider) -> None:
        self.viewer_frame_id.value = self.frame_label(int(slider.value))

    def nearest_frame_row(self, time: float) -> int:
        """The capture frame row whose normalised time is nearest to ``time`` (novel-motion rows excluded)."""
        return int((self.frame_times - float(time)).abs().argmin())

    def viewer_frame_row(self, times: Optional[Tensor]) -> int:
        """The frame row for a camera without frame metadata (see the rule above); reads the slider once."""
        row = int(self.viewer_frame_slider.value)
        if times is not None and times.numel() > 0:
            time = float(times.reshape(-1)[0])
            if abs(time - self._viewer_last_time) > 1e-6:
                self._viewer_last_time = time
                time_row = self.nearest_frame_row(time)
                if time_row != row:
                    self.viewer_frame_slider.value = time_row  # moves the GUI slider
                row = time_row
        row = min(max(row, 0), self.num_frames - 1)
        if self.viewer_frame_id.value != self.frame_label(row):
            self.viewer_frame_id.value = self.frame_label(row)
        return row

    @staticmethod
    def camera_with_frame(camera: Cameras, row: int) -> Cameras:
        """A shallow copy of ``camera`` whose rays carry ``frame_idx = row``."""
        camera = copy.copy(camera)
        metadata = {k: v for k, v in (camera.metadata or {}).items() if isinstance(v, Tensor)}
        metadata["frame_idx"] = torch.full((*camera.shape, 1), int(row), dtype=torch.long, device=camera.device)
        camera.metadata = metadata
        return camera

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box=None) -> Dict[str, Tensor]:
        """Render one camera; viewer/trajectory cameras get their frame from the sliders (eval mode only)."""
        has_frame = camera.metadata is not None and "frame_idx" in camera.metadata
        if self.training or has_frame:
            return super().get_outputs_for_camera(camera, obb_box=obb_box)
        row = self.viewer_frame_row(camera.times)
        canonical = bool(self.viewer_canonical.value)
        camera = self.camera_with_frame(camera, row)
        if not canonical:
            return super().get_outputs_for_camera(camera, obb_box=obb_box)
        ray_bundle = camera.generate_rays(camera_indices=0, keep_shape=True, obb_box=obb_box)
        return self.render_ray_bundle_in_chunks(ray_bundle, lambda rays: self.get_outputs_canonical(rays, row))

    @torch.no_grad()
    def get_outputs_for_camera_ray_bundle(self, camera_ray_bundle: RayBundle) -> Dict[str, Tensor]:
        """Render a bundle of rays; one that names no frame (no ``frame_idx``, no time) renders the
        canonical avatar in canonical coordinates.

        Every camera of ours gets its frame before it reaches here (see :meth:`get_outputs_for_camera`).
        Bundles without one come from nerfstudio's exporters: ``ns-export marching-cubes`` meshes the
        canonical field and textures that mesh with rays from its surface, so those rays are canonical.
        Posing them as frame 0 would colour the texture with whatever frame 0 has at those places.
        """
        metadata = camera_ray_bundle.metadata or {}
        if self.training or "frame_idx" in metadata or camera_ray_bundle.times is not None:
            return super().get_outputs_for_camera_ray_bundle(camera_ray_bundle)
        return self.render_ray_bundle_in_chunks(camera_ray_bundle, lambda rays: self.get_outputs_canonical(rays, None))

    def render_ray_bundle_in_chunks(self, camera_ray_bundle: RayBundle, render) -> Dict[str, Tensor]:
        """``render`` (rays -> outputs) over an image's rays in chunks of ``eval_num_rays_per_chunk``."""
        height, width = camera_ray_bundle.origins.shape[:2]
        chunks: Dict[str, List[Tensor]] = {}
        step = self.config.eval_num_rays_per_chunk
        for start in range(0, len(camera_ray_bundle), step):
            rays = camera_ray_bundle.get_row_major_sliced_ray_bundle(start, start + step).to(self.device)
            for name, value in render(rays).items():
                chunks.setdefault(name, []).append(value)
        return {name: torch.cat(values).view(height, width, -1) for name, values in chunks.items()}

    def canonical_sampler(self) -> InnerSampler:
        """An inner sampler around the canonical body (built on first use, not a submodule)."""
        cache = self.__dict__.setdefault("_canonical_sampler_cache", {})
        sampler = cache.get("sampler")
        if sampler is None or sampler.posed_vertices.device != self.device:
            canonical_vertices, _ = self._rebase(torch.zeros(0, 24, 4, 4))
            sampler = InnerSampler(self.config.sampler).to(self.device)
            sampler.set_frames(canonical_vertices[None].to(self.device), self.body_faces, self.canonical_bounds)
            cache["sampler"] = sampler
        return sampler

    @torch.no_grad()
    def get_outputs_canonical(self, ray_bundle: RayBundle, frame_row: Optional[int]) -> Dict[str, Tensor]:
        """Render the canonical avatar (identity deformation).

        With a ``frame_row``, the rays are in observation space and the canonical body is placed rigidly
        by that frame's pelvis bone transform (so it stands where the posed body stands); rays are mapped
        into canonical space by its inverse. With ``None``, the rays are already in canonical space.
        Samples go straight to the canonical field. Same outputs as :meth:`get_outputs` in eval mode.
        """
        device = ray_bundle.origins.device
        pelvis = torch.eye(4, device=device) if frame_row is None else self.bone_transforms[int(frame_row), 0].to(device)
        rotation, translation = pelvis[:3, :3], pelvis[:3, 3]
        rays = RayBundle(
            origins=(ray_bundle.origins - translation) @ rotation,  # R^T (o - t), as row vectors
            directions=ray_bundle.directions @ rotation,
            pixel_area=ray_bundle.pixel_area,
            camera_indices=ray_bundle.camera_indices,
        )
        sampler = self.canonical_sampler()
        sampler.config = dataclasses.replace(sampler.config, num_samples=self.config.canonical_render_samples)
        frames = torch.zeros(rays.origins.shape[0], dtype=torch.long, device=device)
        ray_samples, ray_hits = sampler(rays, frames)
        num_rays, num_samples = ray_samples.shape[:2]
        rgb_samples = torch.zeros(num_rays, num_samples, 3, device=device)
        alpha = torch.zeros(num_rays, num_samples, 1, device=device)
        normals_obs = torch.zeros(num_rays, num_samples, 3, device=device)
        hit = ray_hits.nonzero().reshape(-1)
        if hit.numel() > 0:
            points = ray_samples.frustums.get_positions()[hit].reshape(-1, 3)
            dirs = ray_samples.frustums.directions[hit].reshape(-1, 3)
            sdf, features, gradient = self.field.sdf_and_gradient(points)
            normals = F.normalize(gradient @ rotation.T, dim=-1)  # canonical -> observation orientation
            colors = self.field.get_color(features, normals, dirs @ rotation.T, None)
            sample_alpha = neus_alpha(
                sdf, gradient, dirs, ray_samples.deltas[hit].reshape(-1, 1), self.field.inv_s(), self.cos_anneal_ratio
            )
            alpha = alpha.index_put((hit,), sample_alpha.reshape(-1, num_samples, 1))
            rgb_samples = rgb_samples.index_put((hit,), colors.reshape(-1, num_samples, 3))
            normals_obs = normals_obs.index_put((hit,), normals.reshape(-1, num_samples, 3))
        weights = weights_from_alpha(alpha)
        accumulation = weights.sum(dim=1)
        rgb = (weights * rgb_samples).sum(dim=1) + (1.0 - accumulation) * self.background(device)
        depth = (weights * (ray_samples.frustums.starts + ray_samples.frustums.ends) * 0.5).sum(dim=1)
        normals = F.normalize((weights * normals_obs).sum(dim=1), dim=-1)
        return {
            "rgb": rgb.clamp(0.0, 1.0),
            "accumulation": accumulation,
            "depth": depth / accumulation.clamp(min=1e-6),
            "normals": (normals + 1.0) / 2.0 * accumulation,
        }

    # ------------------------------------------------------------------ animation: frames beyond the capture

    def _rebase(self, rest_to_observation: Float[Tensor, "N 24 4 4"]) -> Tuple[Tensor, Tensor]:
        """The canonical vertices and ``rest_to_observation`` rebased to start from the canonical pose
        (exactly as :meth:`populate_modules` rebases the capture's frames)."""
        body = self.kwargs["metadata"]["body"]
        rest_to_canonical = canonical_pose_transforms(
            body["canonical_joints"].float(), SMPL_PARENTS, star_pose(self.config.canonical_leg_angle)
        )
        return rebase_to_canonical(
            body["canonical_vertices"].float(), body["skinning_weights"].float(), rest_to_canonical,
            rest_to_observation.float().cpu(),
        )  # fmt: skip

    @torch.no_grad()
    def add_frames(
        self,
        rest_bone_transforms: Float[Tensor, "N 24 4 4"],
        posed_vertices: Float[Tensor, "N V 3"],
        poses: Float[Tensor, "N 72"],
        global_rotation: Optional[Float[Tensor, "N 3"]] = None,
        global_translation: Optional[Float[Tensor, "N 3"]] = None,
    ) -> Int[Tensor, "N"]:
        """Append frames of a new motion to the per-frame tables; returns their rows (for ``frame_idx``).

        The body state comes from the same body model and shape as the capture's (see
        ``hfavatar_ns.scripts.render_video.pose_body``), in the dataparser's convention:

        Args:
            rest_bone_transforms: rest pose -> observation bone transforms (``PosedBody.bone_transforms``).
            posed_vertices: the posed body (world coordinates, metres).
            poses: the 72-d SMPL poses (``poses[:, 3:]`` conditions colour and the non-rigid offset).
            global_rotation, global_translation: ``Rh``/``Th`` (used by pose refinement only).

        New rows get capture frame ids ``-1, -2, ...`` and no time (the Time slider never picks them).
        Per-frame caches (occupancy and weight grids) are rebuilt lazily. Meant for rendering: the new
        rows have no images and must not be trained on.
        """
        count = int(poses.shape[0])
        device = self.bone_transforms.device
        _, bone_transforms = self._rebase(rest_bone_transforms)
        bone_transforms = bone_transforms.to(device)
        posed_vertices = posed_vertices.float().to(device)
        poses = poses.float().reshape(count, -1).to(device)
        first = self.num_frames
        next_id = -1 - int((self.frame_ids < 0).sum())
        self.bone_transforms = torch.cat([self.bone_transforms, bone_transforms])
        self.body_poses = torch.cat([self.body_poses, poses])
        self.posed_vertices = torch.cat([self.posed_vertices, posed_vertices])
        new_ids = torch.arange(next_id, next_id - count, -1, device=device)
        self.frame_ids = torch.cat([self.frame_ids, new_ids])
        self.frame_times = torch.cat([self.frame_times, torch.full((count,), float("inf"), device=device)])
        self.num_frames += count

        deformation = self.deformation
        zeros = torch.zeros(count, 3, device=device)
        rh = zeros if global_rotation is None else global_rotation.float().reshape(count, 3).to(device)
        th = zeros if global_translation is None else global_translation.float().reshape(count, 3).to(device)
        deformation.frame_bone_transforms = torch.cat([deformation.frame_bone_transforms, bone_transforms])
        deformation.poses = torch.cat([deformation.poses, poses])
        deformation.global_rotation = torch.cat([deformation.global_rotation, rh])
        deformation.global_translation = torch.cat([deformation.global_translation, th])
        if isinstance(getattr(deformation, "pose_deltas", None), nn.Parameter):
            padded = torch.cat([deformation.pose_deltas.data, deformation.pose_deltas.new_zeros(count, *deformation.pose_deltas.shape[1:])])
            deformation.pose_deltas = nn.Parameter(padded)
        old_grids = deformation.observation_grids
        cfg = deformation.config
        deformation.observation_grids = PerFrameWeightGrids(
            self.posed_vertices, old_grids.vertex_weights, resolution=cfg.obs_grid_resolution,
            margin=cfg.obs_grid_margin, k=cfg.knn, dtype=getattr(torch, cfg.obs_grid_dtype),
        )  # fmt: skip

        # Rays are clipped to the scene box: grow it to hold the new motion too.
        vertices = self.posed_vertices.reshape(-1, 3)
        margin = self.config.sampler.margin + 0.05
        aabb = self.scene_box.aabb.to(device)
        aabb = torch.stack([torch.minimum(aabb[0], vertices.min(0).values - margin),
                            torch.maximum(aabb[1], vertices.max(0).values + margin)])  # fmt: skip
        self.sampler.set_frames(self.posed_vertices, self.body_faces, aabb)

        self.viewer_frame_slider.max = max(self.num_frames - 1, 1)
        if self.viewer_frame_slider.gui_handle is not None:
            self.viewer_frame_slider.gui_handle.max = self.viewer_frame_slider.max
        return torch.arange(first, self.num_frames, device=device)
