"""HF-Avatar as a nerfstudio model.

Per ray: the frame's dilated posed body bounds the samples (prior-guided inner sampling); each
sample is carried from observation to canonical space by iterative backward deformation; the
canonical field gives SDF (body prior + learned residual) and colour; NeuS-style rendering turns
SDF into opacity. The per-frame body state is the :class:`~hfavatar_ns.body.body_frames.BodyFrames`
the dataparser built; this model owns it and the sampler, weight grids and deformation read it.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float, Int
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle, RaySamples
from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.models.base_model import Model, ModelConfig
from torch import Tensor, nn

from hfavatar_ns.body.body_frames import BodyFrames
from hfavatar_ns.body.canonical_pose import star_pose
from hfavatar_ns.body.motion import Motion, append_motion
from hfavatar_ns.deformation.backward import (
    BackwardDeformation,
    BackwardDeformationConfig,
    blend_point_transforms,
    reject_inconsistent_mapping,
)
from hfavatar_ns.errors import InputError
from hfavatar_ns.evaluation.image_metrics import LpipsNet, avatar_image_metrics, lpips_metric, psnr
from hfavatar_ns.fields.avatar_field import AvatarField, AvatarFieldConfig
from hfavatar_ns.fields.shading import DirectionalLightShading
from hfavatar_ns.geometry.prior_sdf import EllipsoidSDF, PriorSDF
from hfavatar_ns.model_components.avatar_losses import avatar_losses
from hfavatar_ns.model_components.inner_sampler import InnerSampler, InnerSamplerConfig
from hfavatar_ns.model_components.mask_trust import contradicted_background
from hfavatar_ns.model_components.noisy_labels import label_belief
from hfavatar_ns.model_components.normal_smoothness import near_surface_points
from hfavatar_ns.models.neus_rendering import composite, composite_rgb, neus_alpha, uncomposite, weights_from_alpha
from hfavatar_ns.models.viewer_frames import ViewerFrameControls, camera_with_frame, render_in_chunks


NO_PRIOR_RESIDUAL_SCALE = 0.5
"""Metres the residual may move the surface when there is no body prior (``body_prior=False``): enough to
carve a body out of the ellipsoid it starts from."""


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
    body_prior: bool = True
    """The SDF is the body's plus a residual. False is the ablation without a body prior: the base is an
    ellipsoid filling the canonical body's box and the residual learns the whole shape, so its bound is
    widened to ``NO_PRIOR_RESIDUAL_SCALE``; the residual's L1 pull and the mapping rejection, which both
    read the body's distance, are off. Sampling and skinning still follow the body."""
    prior_sdf_resolution: int = 96
    """Nodes per axis of the tabulated body-prior SDF (along the longest axis when ``prior_sdf_isotropic``)."""
    prior_sdf_isotropic: bool = False
    """Same node spacing on every axis (``prior_sdf_resolution`` nodes along the longest)."""
    prior_sdf_interpolation: Literal["tricubic", "trilinear"] = "tricubic"
    """How the tabulated prior is read between nodes: a C2 cubic B-spline through the nodes' values (smooth
    normals for NeuS and the meshes), or trilinear (C0: normals faceted at the grid's cells; 4x cheaper)."""
    background_color: Literal["black", "white"] = "black"
    """Colour of pixels outside the foreground mask (ZJU-MoCap methods train on black)."""
    rgb_loss_mult: float = 1.0
    mask_loss_mult: float = 1.0
    mask_trust_margin: Optional[float] = 0.1
    """Leave a background-labelled ray out of the mask, silhouette and colour losses when the avatar renders it
    opaque in the pixel's colour, within this much (mean absolute, 0-1), and the pixel is not background: real masks
    miss hands and feet, and trusting them erases the limb (``mask_trust.contradicted_background``). None:
    trust every mask pixel."""
    mask_outline_losses: Literal["all", "colour"] = "all"
    """Which losses leave out the rays the pixel sampler marks as near a mask's outline (its ``mask_outline_px``):
    ``all`` (colour, mask and silhouette) or ``colour`` only. The colour target there is composited with a mask
    that may be off by a pixel or two, while the mask and silhouette terms are still the best evidence of where
    the surface is (pair them with ``mask_label_noise``)."""
    colour_on_background_labels: Literal["auto", "all", "believed", "sharpness", "none"] = "auto"
    """How the colour loss treats rays the mask labels background, whose target is the background colour.
    ``all`` counts each fully. ``none`` leaves them to the mask loss, whose label noise bounds their pull: a mask
    that cuts into the person then cannot teach the colour field the background's colour there; it suits
    estimated masks (a segmentation network's), since on exact ones the edge gets a faint halo. ``auto`` (the
    default) is ``all`` where the capture declares its masks exact (``"exact_masks": true`` in
    ``body_model.json``, as hfavatar-synth writes without mask errors) and ``none`` otherwise, i.e. on every
    real capture. ``sharpness`` counts them, but their colour error moves only NeuS's sharpness, never the SDF,
    the deformation or the colour field: no halo on exact masks and part of ``none``'s gain on estimated ones,
    but on a one-camera capture it scored below ``all``. ``believed`` weights each by the probability that its
    label is right under that label-noise model (``mask_label_noise``), given the avatar's opacity. Measured in
    docs/results.md ("background labels")."""
    mask_label_noise: float = 0.15
    """Share of mask labels the mask and silhouette losses take to be wrong (a label-noise model of the
    cross-entropy, ``noisy_labels.noisy_label_cross_entropy``): a ray the avatar confidently contradicts then pulls
    with a bounded gradient, so a mask outline a pixel or two off cannot dominate a batch. Measured with the
    sharpness held (``mask_loss_sets_sharpness``): 0.15 gains most on noisy masks, 0.25 weakens the pull that
    places the surface (docs/results.md, "Noisy masks"); 0: the plain cross-entropy."""
    mask_loss_sets_sharpness: bool = False
    """Whether the mask loss may move NeuS's learned sharpness. Against a mask outline a pixel or two off (a
    segmentation network's) the cross-entropy is smallest for a soft edge, so it lowers the sharpness and every
    image's outline blurs, the body prior's too. False: the mask loss sees the accumulation at the current
    sharpness held fixed; it still shapes the SDF, and the colour loss alone sets the sharpness (on exact masks
    this changes no score measurably; docs/results.md, "Noisy masks")."""
    eikonal_loss_mult: float = 0.3
    eikonal_target: Literal["prior", "unit"] = "prior"
    """Gradient norm the eikonal loss asks of the SDF: ``unit`` is NeuS's |grad f| = 1; ``prior`` the body prior's
    own norm at the point (1 away from the body). A tabulated distance is not an exact one where the body is
    thinner than its grid (between the fingers, at the lips and eyes: norms of 0.5-0.8), and asking the sum
    for norm 1 there makes the residual reshape the hands and face the images cannot resolve."""
    residual_loss_mult: float = 0.05
    """L1 on the residual SDF: keep to the body where the images say nothing."""
    residual_loss_saturation: float = 0.0
    """Metres: with a value > 0 the residual's cost saturates past about this size (``avatar_losses.residual_penalty``),
    so a stronger ``residual_loss_mult`` holds small drifts without holding back clothing. 0: plain L1."""
    non_rigid_loss_mult: float = 1.0
    """L2 on the non-rigid offsets (metres^2): skinning explains the motion unless the images disagree."""
    skinning_loss_mult: float = 0.01
    """L2 on the learned skinning-logit residual: stay close to the body's weights."""
    pose_correction_loss_mult: float = 1e-3
    """L2 on the pose-refinement corrections (radians^2; translations divided by the scale below): a prior
    towards the given fits. Only with ``deformation.pose_refinement``."""
    pose_correction_translation_scale: float = 0.05
    """Metres of translation correction that cost as much as one radian of rotation correction."""
    normal_smoothness_loss_mult: float = 0.02
    """Weight of the normal-smoothness loss (normals near the surface vs. a neighbour's); 0: off."""
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
        cfg = self.config
        if not 0.0 <= cfg.mask_label_noise < 0.5:
            raise InputError(
                f"--pipeline.model.mask-label-noise {cfg.mask_label_noise} is out of range: it is the share of mask labels "
                "taken to be wrong, from 0 (exact masks) up to below 0.5 (0.05 suits masks from a segmentation network)."
            )
        self.body: BodyFrames = self.kwargs["metadata"]["body_frames"]
        self.body.set_canonical_pose(star_pose(cfg.canonical_leg_angle))
        canonical = self.body.canonical_body()
        bounds = self.body.canonical_bounds(cfg.canonical_margin)
        field_config = cfg.sdf_field
        if cfg.body_prior:
            prior_sdf = PriorSDF(
                canonical.vertices,
                canonical.faces,
                bounds,
                cfg.prior_sdf_resolution,
                cfg.prior_sdf_isotropic,
                cfg.prior_sdf_interpolation,
            )
        else:
            prior_sdf = EllipsoidSDF.around(canonical.vertices)
            field_config = dataclasses.replace(
                field_config, residual_scale=max(field_config.residual_scale, NO_PRIOR_RESIDUAL_SCALE)
            )
        self.field = AvatarField(field_config, bounds, prior_sdf)
        if isinstance(self.field.shading, DirectionalLightShading) and self.body.lone_training_camera is not None:
            self.field.shading.point_towards(self.body.lone_training_camera - self.body.posed_bounds().mean(dim=0))
        self.deformation = BackwardDeformation(cfg.deformation, self.body)
        self.sampler = InnerSampler(cfg.sampler)
        self.sampler.set_bodies(self.body, self.scene_box.aabb)
        self.canonical_sampler = InnerSampler(
            dataclasses.replace(cfg.sampler, num_samples=cfg.canonical_render_samples)
        )
        self.canonical_sampler.set_frames(canonical.vertices[None], canonical.faces, bounds)
        self.viewer_controls = ViewerFrameControls(self.body)
        self.cos_anneal_ratio = 1.0 if cfg.cos_anneal_end <= 0 else 0.0

    # ------------------------------------------------------------------ geometry queries

    @property
    def colour_sees_canonical_normals(self) -> bool:
        """``sdf_field.color_normals`` resolved for this capture (auto: canonical for one training camera)."""
        choice = self.field.config.color_normals
        return choice == "canonical" or (choice == "auto" and self.body.lone_training_camera is not None)

    @property
    def colour_is_shaded(self) -> bool:
        """``sdf_field.shading`` resolved for this capture (auto: one light and an ambient for one training camera)."""
        choice = self.field.config.shading
        return choice in ("spherical_harmonics", "directional") or (
            choice == "auto" and self.body.lone_training_camera is not None
        )

    @property
    def background_labels_in_colour(self) -> Literal["all", "believed", "sharpness", "none"]:
        """``colour_on_background_labels`` resolved for this capture (auto: ``all`` for masks it declares exact,
        ``none`` for estimated ones)."""
        choice = self.config.colour_on_background_labels
        if choice != "auto":
            return choice
        return "none" if self.kwargs["metadata"].get("masks_estimated", True) else "all"

    @property
    def canonical_bounds(self) -> Float[Tensor, "2 3"]:
        return self.field.bounds

    def canonical_sdf(self, points: Float[Tensor, "N 3"]) -> Float[Tensor, "N"]:
        """The avatar's SDF in canonical space."""
        return self.field.get_sdf(points).reshape(-1)

    def posed_sdf(self, points: Float[Tensor, "N 3"], row: int) -> Float[Tensor, "N"]:
        """The avatar's SDF at observation-space points of one frame (a row of ``self.body``).

        Only points in the space the sampler samples for the frame are deformed and evaluated: nothing
        outside it is ever rendered, so the avatar is empty there and gets a positive stand-in value (the
        shell's margin). A mesh then shows what renders, and a grid over the frame's box costs a fraction
        of the evaluations."""
        sdf = points.new_full((points.shape[0],), float(self.config.sampler.margin))
        sampled = self.sampler.contains(points, int(row))
        if bool(sampled.any()):
            inside = points[sampled]
            rows = torch.full((inside.shape[0],), int(row), dtype=torch.long, device=points.device)
            canonical, aux = self.deformation(inside, rows)
            prior, field_sdf, _ = self.field.sdf_parts(canonical)
            sdf[sampled] = self.reject(field_sdf, prior, aux["body_distance"]).reshape(-1).to(sdf.dtype)
        return sdf

    def posed_bounds(self, row: int, margin: Optional[float] = None) -> Float[Tensor, "2 3"]:
        """A box around one frame's posed body, wide enough for loose clothing."""
        return self.body.posed_bounds([int(row)], self.config.sampler.margin + 0.05 if margin is None else margin)

    def reject(self, sdf: Tensor, prior_sdf: Tensor, body_distance: Tensor) -> Tensor:
        tolerance = self.config.mapping_tolerance if self.config.body_prior else 0.0  # needs the body's distance
        return reject_inconsistent_mapping(sdf, prior_sdf, body_distance, tolerance)

    @torch.no_grad()
    def vertex_colors(
        self, vertices: Float[Tensor, "N 3"], normals: Float[Tensor, "N 3"], row: Optional[int]
    ) -> Float[Tensor, "N 3"]:
        """Colours at mesh vertices (canonical with ``row=None``, else posed at ``row``), seen head-on."""
        pose = None
        points = vertices
        if row is not None:
            rows = torch.full((points.shape[0],), int(row), dtype=torch.long, device=points.device)
            points, _ = self.deformation(points, rows)
            pose = self.body.frame_poses(rows)[:, 3:]
        features = self.field.forward_geonetwork(points)[:, 1:]
        lit_by = normals if row is not None and self.colour_is_shaded else None  # canonical: albedo
        return self.field.get_color(features, normals, -normals, pose, lit_by).clamp(0, 1)

    # ------------------------------------------------------------------ training schedule

    def get_param_groups(self) -> Dict[str, List[nn.Parameter]]:
        groups = {"fields": list(self.field.parameters()), "deformation": list(self.deformation.parameters())}
        if self.body.correction_parameters():
            groups["body"] = self.body.correction_parameters()
        return groups

    def set_progress(self, step: int) -> None:
        """Everything scheduled by the training step: NeuS's cos anneal, the non-rigid kick-in, hash levels,
        pose refinement (and re-posing the bodies it moved)."""
        if self.config.cos_anneal_end > 0:
            self.cos_anneal_ratio = min(1.0, step / self.config.cos_anneal_end)
        self.deformation.set_progress(step)
        self.field.set_progress(step)
        if self.body.refining:
            self.body.refresh()

    def update_to_step(self, step: int) -> None:  # on loading a checkpoint: render as trained, not as at step 0
        self.set_progress(step)
        if self.body.refining:  # exports and evaluations pose the body exactly at the refined fits
            self.body.refresh(tolerance=0.0)

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> List[TrainingCallback]:
        return [
            TrainingCallback(
                [TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], self.set_progress, update_every_num_iters=1
            )
        ]

    # ------------------------------------------------------------------ rendering

    def background(self, device: torch.device) -> Tensor:
        return torch.full((3,), 0.0 if self.config.background_color == "black" else 1.0, device=device)

    def frame_rows(self, ray_bundle: RayBundle) -> Int[Tensor, "R"]:
        """The body row of each ray: from its ``frame_idx`` metadata, else its time, else row 0."""
        metadata = ray_bundle.metadata or {}
        if "frame_idx" in metadata:
            return metadata["frame_idx"].reshape(-1).long().clamp(0, self.body.num_frames - 1)
        if ray_bundle.times is not None:
            return self.body.rows_at_times(ray_bundle.times)
        return torch.zeros(ray_bundle.origins.shape[0], dtype=torch.long, device=ray_bundle.origins.device)

    def get_outputs(self, ray_bundle: RayBundle) -> Dict[str, Tensor]:
        rows = self.frame_rows(ray_bundle)
        ray_samples, ray_hits = self.sampler(ray_bundle, rows)
        return self.shade(ray_samples, ray_hits, rows)

    def shade(
        self,
        ray_samples: RaySamples,
        ray_hits: Tensor,
        rows: Optional[Int[Tensor, "R"]],
        rotation: Optional[Float[Tensor, "3 3"]] = None,
    ) -> Dict[str, Tensor]:
        """Render samples of observation-space rays in their ``rows`` (or, with ``rows=None``, samples
        already in canonical space, shown rotated by ``rotation``); only rays that hit the shell are shaded."""
        num_rays, num_samples = ray_samples.shape[:2]
        device = ray_samples.frustums.origins.device
        alpha = torch.zeros(num_rays, num_samples, 1, device=device)
        rgb = torch.zeros(num_rays, num_samples, 3, device=device)
        normals = torch.zeros(num_rays, num_samples, 3, device=device)
        extras: Dict[str, Tensor] = {}
        hit = ray_hits.nonzero().reshape(-1)
        if hit.numel() > 0:
            points = ray_samples.frustums.get_positions()[hit].reshape(-1, 3)
            directions = ray_samples.frustums.directions[hit].reshape(-1, 3)
            if rows is None:
                geometry = self.field.sdf_and_gradient(points)
                sdf, pose = geometry.sdf, None
                gradient = geometry.gradient @ rotation.T
                directions = directions @ rotation.T
            else:
                sample_rows = rows[hit][:, None].expand(-1, num_samples).reshape(-1)
                points_canonical, aux = self.deformation(points, sample_rows)
                geometry = self.field.sdf_and_gradient(points_canonical)
                sdf = self.reject(geometry.sdf, geometry.prior_sdf, aux["body_distance"])
                # The canonical gradient to observation space by the blended bone rotation (for a rotation
                # R the inverse-transpose the chain rule asks for is R itself).
                blended = blend_point_transforms(aux["skinning_weights"], aux["bone_transforms"])
                gradient = (blended[:, :, :3] @ geometry.gradient[:, :, None])[..., 0]
                pose = self.body.frame_poses(sample_rows)[:, 3:]
                if self.training:
                    extras = self.training_outputs(hit, num_rays, num_samples, sdf, geometry, aux, points_canonical)
            unit_normals = F.normalize(gradient, dim=-1)
            deltas = ray_samples.deltas[hit].reshape(-1, 1)
            sample_alpha = neus_alpha(sdf, gradient, directions, deltas, self.field.inv_s(), self.cos_anneal_ratio)
            if self.training and not self.config.mask_loss_sets_sharpness:
                held = neus_alpha(sdf, gradient, directions, deltas, self.field.inv_s().detach(), self.cos_anneal_ratio)
                mask_alpha = torch.zeros_like(alpha).index_put((hit,), held.reshape(-1, num_samples, 1))
                extras["mask_accumulation"] = weights_from_alpha(mask_alpha).sum(dim=1)
            colour_normals = unit_normals
            if self.colour_sees_canonical_normals:
                colour_normals = F.normalize(geometry.gradient, dim=-1)
            lit_by = unit_normals if self.colour_is_shaded else None
            sample_rgb = self.field.get_color(geometry.features, colour_normals, directions, pose, lit_by)
            if self.training and self.background_labels_in_colour == "sharpness":
                extras["rgb_sharpness_only"] = self.sharpness_only_rgb(
                    sdf, gradient, directions, deltas, sample_rgb, hit, (num_rays, num_samples)
                )
            alpha = alpha.index_put((hit,), sample_alpha.reshape(-1, num_samples, 1))
            rgb = rgb.index_put((hit,), sample_rgb.reshape(-1, num_samples, 3))
            normals = normals.index_put((hit,), unit_normals.reshape(-1, num_samples, 3))
        outputs = composite(alpha, rgb, normals, ray_samples, self.background(device))
        del outputs["weights"]
        if not self.training:
            outputs["rgb"] = outputs["rgb"].clamp(0.0, 1.0)
        outputs.update(extras)
        return outputs

    def sharpness_only_rgb(
        self,
        sdf: Float[Tensor, "N 1"],
        gradient: Float[Tensor, "N 3"],
        directions: Float[Tensor, "N 3"],
        deltas: Float[Tensor, "N 1"],
        sample_rgb: Float[Tensor, "N 3"],
        hit: Int[Tensor, "H"],
        shape: Tuple[int, int],
    ) -> Float[Tensor, "R 3"]:
        """The rays' colour as rendered, differentiable in NeuS's sharpness alone (``N`` samples of the ``H``
        rays that hit the shell, of ``shape`` = (rays, samples per ray))."""
        num_rays, num_samples = shape
        inv_s = self.field.inv_s()
        held = neus_alpha(sdf.detach(), gradient.detach(), directions, deltas, inv_s, self.cos_anneal_ratio)
        alpha = torch.zeros(num_rays, num_samples, 1, device=sdf.device)
        alpha = alpha.index_put((hit,), held.reshape(-1, num_samples, 1))
        rgb = torch.zeros(num_rays, num_samples, 3, device=sdf.device)
        rgb = rgb.index_put((hit,), sample_rgb.detach().reshape(-1, num_samples, 3))
        return composite_rgb(alpha, rgb, self.background(sdf.device))

    def training_outputs(self, hit, num_rays, num_samples, sdf, geometry, aux, points_canonical) -> Dict[str, Tensor]:
        """What the losses need beyond the image: closest approach of each ray, eikonal gradients, the learned
        residual (before rejection, which is not the field's doing), non-rigid offsets, smoothness pairs."""
        min_sdf = torch.full((num_rays, 1), float("inf"), device=sdf.device)
        outputs = {
            "ray_min_sdf": min_sdf.index_put((hit,), sdf.reshape(-1, num_samples).min(dim=1).values[:, None]),
            "eikonal_gradients": geometry.gradient,
            "residual_sdf": geometry.sdf - geometry.prior_sdf,
            "non_rigid_offset": aux["non_rigid_offset"],
        }
        if self.config.eikonal_target == "prior" and self.config.body_prior:  # the ellipsoid has no such norm
            outputs["eikonal_target_norm"] = self.field.prior_gradient(points_canonical).norm(dim=-1)
        if self.config.normal_smoothness_loss_mult > 0:
            radius = self.config.normal_smoothness_radius
            near = near_surface_points(
                points_canonical, geometry.sdf, 2.0 * radius, self.config.normal_smoothness_points
            )
            if near is not None:
                pairs = torch.cat([near, near + radius * torch.randn_like(near)])
                outputs["smoothness_gradients"] = self.field.sdf_and_gradient(pairs).gradient.reshape(2, -1, 3)
        return outputs

    @torch.no_grad()
    def get_outputs_canonical(self, ray_bundle: RayBundle, row: Optional[int]) -> Dict[str, Tensor]:
        """Render the canonical avatar (no deformation). With a ``row`` the rays are in observation space and
        the canonical body stands where that frame's pelvis is; with ``None`` they are in canonical space."""
        device = ray_bundle.origins.device
        pelvis = torch.eye(4, device=device)
        if row is not None:
            pelvis = self.body.corrected_bone_transforms(torch.tensor([int(row)], device=self.body.poses.device))[0, 0]
        rotation, translation = pelvis[:3, :3].to(device), pelvis[:3, 3].to(device)
        rays = RayBundle(
            origins=(ray_bundle.origins - translation) @ rotation,  # R^T (o - t), as row vectors
            directions=ray_bundle.directions @ rotation,
            pixel_area=ray_bundle.pixel_area,
            camera_indices=ray_bundle.camera_indices,
        )
        frames = torch.zeros(rays.origins.shape[0], dtype=torch.long, device=device)
        ray_samples, ray_hits = self.canonical_sampler(rays, frames)
        return self.shade(ray_samples, ray_hits, None, rotation)

    # ------------------------------------------------------------------ losses and metrics

    def target_rgb(self, batch: Dict, device: torch.device) -> Tuple[Tensor, Tensor]:
        """Ground-truth colour composited on the background with the foreground mask, and the mask."""
        image = batch["image"].to(device)[..., :3].float()
        mask = batch["mask"].to(device).float().reshape(*image.shape[:-1], 1) if "mask" in batch else None
        mask = torch.ones_like(image[..., :1]) if mask is None else mask
        return image * mask + self.background(device) * (1.0 - mask), mask

    def get_metrics_dict(self, outputs, batch) -> Dict[str, Tensor]:
        target, _ = self.target_rgb(batch, outputs["rgb"].device)
        return {"psnr": psnr(outputs["rgb"].clamp(0, 1).detach(), target), "inv_s": self.field.inv_s().detach()}

    def get_loss_dict(self, outputs, batch, metrics_dict=None) -> Dict[str, Tensor]:
        device = outputs["rgb"].device
        target, mask = self.target_rgb(batch, device)
        ignored = contradicted_background(
            mask, batch["image"].to(device)[..., :3].float(), outputs["rgb"], outputs["accumulation"],
            self.background(device), self.config.mask_trust_margin,
        )  # fmt: skip
        colour_ignored = ignored
        if "mask_outline" in batch:  # labels the pixel sampler found too near a mask's outline to believe
            outline = batch["mask_outline"].to(device).reshape(ignored.shape)
            colour_ignored = ignored | outline
            if self.config.mask_outline_losses == "all":
                ignored = colour_ignored
        skinning = self.deformation.skinning_field.parameters()
        if "rgb_sharpness_only" in outputs:  # background labels: their colour error moves the sharpness alone
            outputs = {**outputs, "rgb": torch.where(mask > 0.5, outputs["rgb"], outputs["rgb_sharpness_only"])}
        return avatar_losses(
            self.config, outputs, target, mask, skinning, self.body.correction_magnitudes(),
            trusted=~ignored, colour_trusted=self.colour_weights(~colour_ignored, mask, outputs["accumulation"]),
        )  # fmt: skip

    def colour_weights(
        self, trusted: Bool[Tensor, "R 1"], mask: Float[Tensor, "R 1"], accumulation: Float[Tensor, "R 1"]
    ) -> Float[Tensor, "R 1"]:
        """Each ray's weight in the colour loss: 0 where untrusted, and for background labels as
        ``colour_on_background_labels`` says."""
        choice, weights = self.background_labels_in_colour, trusted.to(mask.dtype)
        if choice in ("all", "sharpness"):  # with "sharpness" the rays count fully; what they move is held
            return weights
        if choice == "none":
            return weights * (mask > 0.5)
        belief = label_belief(accumulation.detach().clamp(0.0, 1.0), mask, self.config.mask_label_noise)
        return weights * torch.where(mask > 0.5, torch.ones_like(belief), belief)

    def get_rgba_image(self, outputs: Dict[str, Tensor], output_name: str = "rgb") -> Float[Tensor, "*bs 4"]:
        # nerfstudio's exporters and viewer call this; the base class expects an RGBRenderer we do not have.
        rgb, accumulation = outputs[output_name][..., :3], outputs[output_name.replace("rgb", "accumulation")]
        return uncomposite(rgb, accumulation, self.background(rgb.device))

    def get_image_metrics_and_images(self, outputs, batch) -> Tuple[Dict[str, float], Dict[str, Tensor]]:
        target, mask = self.target_rgb(batch, outputs["rgb"].device)
        # Whole image, and the crop to the mask's bounding box (NeuralBody/ARAH protocol); LPIPS on the
        # crop only when its weights are already on disk (evaluation never downloads).
        metrics = avatar_image_metrics(outputs["rgb"], target, mask, lpips_metric(self.config.lpips_net))
        images = {
            "img": torch.cat([target, outputs["rgb"]], dim=1),
            "accumulation": torch.cat([mask.expand_as(outputs["accumulation"]), outputs["accumulation"]], dim=1),
            "normals": outputs["normals"],
        }
        return metrics, images

    # ------------------------------------------------------------------ cameras without a frame, novel motions

    @torch.no_grad()
    def get_outputs_for_camera(self, camera: Cameras, obb_box=None) -> Dict[str, Tensor]:
        """Render one camera; viewer/trajectory cameras get their frame from the sliders (eval mode only)."""
        has_frame = camera.metadata is not None and "frame_idx" in camera.metadata
        if self.training or has_frame:
            return super().get_outputs_for_camera(camera, obb_box=obb_box)
        row = self.viewer_controls.row(camera.times)
        camera = camera_with_frame(camera, row)
        if not self.viewer_controls.canonical.value:
            return super().get_outputs_for_camera(camera, obb_box=obb_box)
        ray_bundle = camera.generate_rays(camera_indices=0, keep_shape=True, obb_box=obb_box)
        render = functools.partial(self.get_outputs_canonical, row=row)
        return render_in_chunks(ray_bundle, render, self.config.eval_num_rays_per_chunk, self.device)

    @torch.no_grad()
    def get_outputs_for_camera_ray_bundle(self, camera_ray_bundle: RayBundle) -> Dict[str, Tensor]:
        """Render a bundle of rays; one that names no frame (no ``frame_idx``, no time) renders the canonical
        avatar in canonical coordinates: such bundles come from ``ns-export marching-cubes``, which textures
        the canonical mesh with rays from its surface."""
        metadata = camera_ray_bundle.metadata or {}
        if self.training or "frame_idx" in metadata or camera_ray_bundle.times is not None:
            return super().get_outputs_for_camera_ray_bundle(camera_ray_bundle)
        render = functools.partial(self.get_outputs_canonical, row=None)
        return render_in_chunks(camera_ray_bundle, render, self.config.eval_num_rays_per_chunk, self.device)

    def animate(self, motion: Motion) -> Int[Tensor, "N"]:
        """Append a novel motion to the body (posed with its model and shape) and return its rows, for
        rendering; rays are clipped to the scene box, so it grows to hold the motion."""
        rows = append_motion(self.body, motion)
        margin = self.config.sampler.margin + 0.05
        motion_box = self.body.posed_bounds(rows.tolist(), margin).to(self.sampler.scene_aabb)
        scene = self.sampler.scene_aabb
        self.sampler.set_bodies(
            self.body, torch.stack([scene[0].minimum(motion_box[0]), scene[1].maximum(motion_box[1])])
        )
        self.viewer_controls.rows_changed()
        return rows
