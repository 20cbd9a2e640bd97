"""Fitting the body model to one camera's landmarks and person masks, SMPLify-style, batched over frames.

Per frame: the 72-d pose (SMPL's convention; the root rotation lives in ``Rh`` as EasyMocap writes it,
so ``poses[:, :3]`` stays zero), ``Rh`` and ``Th``; shared by all frames: the shape coefficients (body
models with a shape space). The camera is the world frame (OpenCV axes: x right, y down, z forward).

The objective, minimised by Adam over all frames at once:

* 2D joints: projected body joints against the landmarks, weighted by visibility, robust to outliers;
* 3D bone directions from mediapipe's metric landmarks: what one camera cannot tell (a forearm towards
  or away from it);
* silhouette: posed vertices inside the mask (the mask's distance transform at their projections) and
  the mask covered by the body (each sampled mask pixel near some projected vertex);
* priors: poses near rest, the knees and elbows bending only their own way, unobserved joints (hands)
  held still, shape near the mean; and temporal smoothness of pose, rotation and translation.

The body's size is fixed (the free body) or regularised (SMPL), which fixes the depth: one camera
cannot tell a tall person far away from a short one near it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm import tqdm

from hfavatar_ns.body.base import BodyModel
from hfavatar_ns.body.skinning import (
    axis_angle_to_matrix,
    forward_kinematics,
    global_transform,
    linear_blend_skinning,
    pose_to_local_rotations,
)
from hfavatar_ns.video.landmarks import BONES, JOINT_WEIGHTS, OBSERVED_JOINTS, TORSO

LEFT_KNEE, RIGHT_KNEE, LEFT_ELBOW, RIGHT_ELBOW = 4, 5, 18, 19
HANDS = (22, 23)


@dataclass
class BodyFitConfig:
    """Weights and schedule of the fit (defaults measured on synthetic videos with known bodies)."""

    rigid_iterations: int = 30
    """First stage: only the global rotation Rh, on the torso's joints."""
    pose_iterations: int = 150
    """Second stage: joints, bone directions and priors, without the silhouette (which, from a rest pose, leads
    to wrong minima: limbs squeezed into the mask the short way)."""
    iterations: int = 150
    """Last stage: everything."""
    learning_rate: float = 0.03
    translation_rate: float = 0.03
    """Learning rate of Th after the rigid stage, as a share of ``learning_rate``."""
    final_learning_rate_ratio: float = 0.03
    """The rate decays exponentially to this share of ``learning_rate`` by the end of each stage."""
    joint_weight: float = 1.0
    robust_scale_px: float = 0.05
    """Joint residuals beyond this share of the image's long side count less and less (Geman-McClure)."""
    bone_direction_weight: float = 0.5
    silhouette_weight: float = 100.0
    """Posed body inside the mask."""
    coverage_weight: float = 10.0
    """Mask covered by the posed body (weak: loose clothing covers more than the body)."""
    silhouette_vertices: int = 300
    """Vertices whose projections the silhouette terms use."""
    mask_points: int = 64
    """Mask pixels per frame that must lie near the body."""
    silhouette_size: int = 256
    """Long side of the distance maps, pixels."""
    pose_prior_weight: float = 2e-3
    joint_limit_weight: float = 1.0
    shape_prior_weight: float = 1e-2
    smoothness_weight: float = 0.05
    seed: int = 0


@dataclass
class FitObservations:
    """What the fit sees, per kept frame."""

    joints_2d: Float[Tensor, "N K 2"]
    """Observed joints (see :mod:`hfavatar_ns.video.landmarks`), pixels."""
    joint_confidence: Float[Tensor, "N K"]
    bones_3d: Float[Tensor, "N K 3"]
    """The same joints from the metric landmarks (camera axes), for bone directions."""
    masks: Bool[Tensor, "N H W"]
    intrinsics: Float[Tensor, "3 3"]
    frame_gaps: Float[Tensor, "N-1"]
    """Source-frame distance between consecutive kept frames (smoothness weighs 1/gap)."""


@dataclass
class BodyFit:
    poses: Float[Tensor, "N 72"]
    Rh: Float[Tensor, "N 3"]
    Th: Float[Tensor, "N 3"]
    shapes: Float[Tensor, "10"]
    joint_error_px: Float[Tensor, "N"]
    """Mean distance of the visible observed joints from the fitted body's projections."""


def project(points: Float[Tensor, "*b 3"], intrinsics: Float[Tensor, "3 3"]) -> Float[Tensor, "*b 2"]:
    """Pinhole projection of camera-frame points (depth clamped away from zero)."""
    z = points[..., 2:].clamp(min=1e-3)
    return (points[..., :2] / z) * intrinsics.diagonal()[:2] + intrinsics[:2, 2]


def geman_mcclure(squared: Tensor, scale: float) -> Tensor:
    """Robust squared distance in units of ``scale``: ``r^2/s^2`` for small residuals, at most 1."""
    return squared / (squared + scale**2)


def kabsch_rotation(source: Float[Tensor, "*b K 3"], target: Float[Tensor, "*b K 3"]) -> Float[Tensor, "*b 3 3"]:
    """The rotation R minimising ``sum |R (s - mean s) - (t - mean t)|^2`` (no reflection)."""
    source = source - source.mean(dim=-2, keepdim=True)
    target = target - target.mean(dim=-2, keepdim=True)
    u, _, vt = torch.linalg.svd(target.transpose(-1, -2) @ source)
    sign = torch.sign(torch.det(u @ vt))
    fix = torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1))
    return u @ fix @ vt


def matrix_to_axis_angle(matrix: Float[Tensor, "*b 3 3"]) -> Float[Tensor, "*b 3"]:
    import roma

    return roma.rotmat_to_rotvec(matrix)


def translation_from_projections(
    points: Float[Tensor, "N K 3"], pixels: Float[Tensor, "N K 2"], weights: Float[Tensor, "N K"], intrinsics: Tensor
) -> Float[Tensor, "N 3"]:
    """The translation t that best projects ``points + t`` onto ``pixels`` (linear least squares per frame)."""
    f = intrinsics.diagonal()[:2]
    c = intrinsics[:2, 2]
    normalised = (pixels - c) / f  # x/z, y/z
    rows, rhs = [], []
    for axis in range(2):
        # (X + tx) - u (Z + tz) = 0  ->  [1, 0, -u] t = u Z - X
        a = torch.zeros(*points.shape[:2], 3, dtype=points.dtype)
        a[..., axis] = 1.0
        a[..., 2] = -normalised[..., axis]
        rows.append(a)
        rhs.append(normalised[..., axis] * points[..., 2] - points[..., axis])
    a = torch.cat(rows, dim=1) * torch.cat([weights, weights], dim=1)[..., None]
    b = torch.cat(rhs, dim=1) * torch.cat([weights, weights], dim=1)
    solution = torch.linalg.lstsq(a, b[..., None]).solution[..., 0]
    return solution


def distance_outside(masks: Bool[np.ndarray, "N H W"], size: int) -> Float[Tensor, "N h w"]:
    """Per mask, each pixel's distance to the mask (0 inside), in pixels of the full image, at ``size`` long side."""
    import cv2

    height, width = masks.shape[1:]
    scale = min(1.0, size / max(height, width))
    small = (max(1, int(round(width * scale))), max(1, int(round(height * scale))))
    maps = []
    for mask in masks:
        resized = cv2.resize(mask.astype(np.uint8), small, interpolation=cv2.INTER_NEAREST)
        maps.append(cv2.distanceTransform((resized == 0).astype(np.uint8), cv2.DIST_L2, 3) / scale)
    return torch.from_numpy(np.stack(maps).astype(np.float32))


def sample_mask_points(masks: Bool[np.ndarray, "N H W"], count: int, rng: np.random.Generator) -> Float[Tensor, "N P 2"]:
    """``count`` pixel centres drawn from each mask (with replacement when a mask is small)."""
    points = np.zeros((len(masks), count, 2), np.float32)
    for i, mask in enumerate(masks):
        ys, xs = np.nonzero(mask)
        if len(xs) == 0:
            continue
        chosen = rng.choice(len(xs), count, replace=len(xs) < count)
        points[i] = np.stack([xs[chosen], ys[chosen]], axis=-1) + 0.5
    return torch.from_numpy(points)


def _sample_map(maps: Float[Tensor, "N h w"], pixels: Float[Tensor, "N P 2"], width: int, height: int) -> Tensor:
    grid = torch.stack([pixels[..., 0] / width * 2 - 1, pixels[..., 1] / height * 2 - 1], dim=-1)
    values = torch.nn.functional.grid_sample(maps[:, None], grid[:, None], align_corners=False, padding_mode="border")
    outside = (pixels - pixels.clamp(min=0).clamp(max=torch.tensor([width, height], dtype=pixels.dtype))).norm(dim=-1)
    return values[:, 0, 0] + outside


def skeleton_scale(
    rest_joints: Float[Tensor, "K 3"], metric_joints: Float[Tensor, "N K 3"], confidence: Float[Tensor, "N K"]
) -> float:
    """How much larger the body's skeleton is than the metric landmarks' (median over confident bones)."""
    a, b = torch.tensor([i for i, _ in BONES]), torch.tensor([j for _, j in BONES])
    rest_lengths = (rest_joints[b] - rest_joints[a]).norm(dim=-1)
    lengths = (metric_joints[:, b] - metric_joints[:, a]).norm(dim=-1)
    trusted = (torch.minimum(confidence[:, a], confidence[:, b]) > 0.5) & (lengths > 1e-3)
    if not trusted.any():
        return 1.0
    return float((rest_lengths.expand_as(lengths) / lengths.clamp(min=1e-3))[trusted].median())


def joint_limits(local_poses: Float[Tensor, "N 24 3"]) -> Tensor:
    """Penalty for knees and elbows bending the wrong way or twisting, and hands moving (never observed)."""
    knees = local_poses[:, [LEFT_KNEE, RIGHT_KNEE]]
    penalty = torch.relu(-knees[..., 0]).square().sum(-1) + knees[..., 1:].square().sum((-1, -2))
    left, right = local_poses[:, LEFT_ELBOW], local_poses[:, RIGHT_ELBOW]
    penalty = penalty + torch.relu(left[:, 1]).square() + torch.relu(-right[:, 1]).square()
    penalty = penalty + left[:, [0, 2]].square().sum(-1) * 0.3 + right[:, [0, 2]].square().sum(-1) * 0.3
    return penalty + local_poses[:, list(HANDS)].square().sum((-1, -2))


def fit_body(
    body_model: BodyModel,
    observations: FitObservations,
    config: Optional[BodyFitConfig] = None,
    fit_shape: bool = False,
    progress: bool = True,
    initial: Optional[BodyFit] = None,
) -> BodyFit:
    """Fit the body to every frame at once; see the module docstring for the objective."""
    obs = observations
    config = config or BodyFitConfig()
    num_frames = obs.joints_2d.shape[0]
    height, width = obs.masks.shape[1:]
    long_side = float(max(height, width))
    generator = np.random.default_rng(config.seed)
    K = obs.intrinsics.float()
    joint_ids = list(OBSERVED_JOINTS)
    joint_weights = torch.from_numpy(JOINT_WEIGHTS)[None] * obs.joint_confidence
    masks_np = obs.masks.numpy()
    outside_maps = distance_outside(masks_np, config.silhouette_size)
    mask_points = sample_mask_points(masks_np, config.mask_points, generator)

    rest = body_model.canonical()
    num_vertices = rest.vertices.shape[0]
    vertex_ids = torch.from_numpy(np.sort(generator.choice(num_vertices, min(config.silhouette_vertices, num_vertices), replace=False)))
    weights = rest.skinning_weights[vertex_ids]
    num_betas = body_model.num_betas
    shapes = torch.zeros(num_betas, requires_grad=fit_shape)

    def rest_body(betas: Tensor):
        canonical = body_model.canonical(betas if fit_shape else None)
        return canonical.vertices[vertex_ids], canonical.joints

    # Rigid start. Rotation: the torso's rest joints onto the metric landmarks'. Translation: the whole metric
    # skeleton, brought to the body's size, moved to project onto the 2D landmarks; every joint takes part, so
    # the depth rests on the body's full extent rather than on the torso's four joints.
    _, rest_joints = rest_body(shapes)
    torso = [joint_ids[i] for i in TORSO]
    rotation = kabsch_rotation(rest_joints[torso].expand(num_frames, -1, -1), obs.bones_3d[:, list(TORSO)])
    Rh = matrix_to_axis_angle(rotation).detach().clone()
    scale = skeleton_scale(rest_joints[joint_ids], obs.bones_3d, obs.joint_confidence)
    metric = (obs.bones_3d - obs.bones_3d[:, [TORSO[2], TORSO[3]]].mean(dim=1, keepdim=True)) * scale
    pelvis = rest_joints[joint_ids][[TORSO[2], TORSO[3]]].mean(dim=0) @ rotation.transpose(-1, -2)
    Th = translation_from_projections(metric, obs.joints_2d, joint_weights.sqrt(), K) - pelvis
    Th = Th.detach().clone()
    local = torch.zeros(num_frames, 24, 3)
    if initial is not None:
        Rh, Th, local = initial.Rh.clone(), initial.Th.clone(), initial.poses.reshape(num_frames, 24, 3).clone()
    Rh.requires_grad_(True)
    Th.requires_grad_(True)
    local.requires_grad_(True)

    gaps = obs.frame_gaps.float().clamp(min=1.0)
    bone_a = torch.tensor([a for a, _ in BONES])
    bone_b = torch.tensor([b for _, b in BONES])
    bone_confidence = torch.minimum(obs.joint_confidence[:, bone_a], obs.joint_confidence[:, bone_b])
    target_bones = obs.bones_3d[:, bone_b] - obs.bones_3d[:, bone_a]
    target_bones = target_bones / target_bones.norm(dim=-1, keepdim=True).clamp(min=1e-6)

    def posed(with_vertices: bool):
        rest_vertices, rest_joints = rest_body(shapes)
        pose = local.clone()
        pose = torch.cat([torch.zeros_like(pose[:, :1]), pose[:, 1:]], dim=1)
        bones, joints = forward_kinematics(pose_to_local_rotations(pose), rest_joints.expand(num_frames, -1, -1), body_model.parents)
        world = global_transform(Rh, Th)
        joints = joints @ axis_angle_to_matrix(Rh).transpose(-1, -2) + Th[:, None]
        vertices = None
        if with_vertices:
            vertices = linear_blend_skinning(rest_vertices.expand(num_frames, -1, -1), weights.expand(num_frames, -1, -1), world[:, None] @ bones)
        return joints, vertices

    def objective(stage: str) -> Tensor:
        joints, vertices = posed(with_vertices=stage == "full")
        observed = joints[:, joint_ids]
        residual = (project(observed, K) - obs.joints_2d).square().sum(-1) / long_side**2
        weight = joint_weights if stage != "rigid" else joint_weights * torch.isin(torch.arange(len(joint_ids)), torch.tensor(TORSO))
        loss = config.joint_weight * (weight * geman_mcclure(residual, config.robust_scale_px)).sum() / weight.sum().clamp(min=1e-6)
        if stage == "rigid":
            return loss
        bones = observed[:, bone_b] - observed[:, bone_a]
        bones = bones / bones.norm(dim=-1, keepdim=True).clamp(min=1e-6)
        loss = loss + config.bone_direction_weight * (bone_confidence * (bones - target_bones).square().sum(-1)).mean()
        if vertices is not None:
            pixels = project(vertices, K)
            inside = _sample_map(outside_maps, pixels, width, height) / long_side
            # amin over explicit differences: cdist's backward is an order of magnitude slower here.
            covered = (mask_points[:, :, None] - pixels[:, None]).square().sum(-1).amin(dim=-1).sqrt() / long_side
            loss = loss + (config.silhouette_weight * inside.square().mean() + config.coverage_weight * covered.square().mean()) * 10.0
        loss = loss + config.pose_prior_weight * local[:, 1:].square().sum((-1, -2)).mean()
        loss = loss + config.joint_limit_weight * joint_limits(local).mean()
        if fit_shape:
            loss = loss + config.shape_prior_weight * shapes.square().sum()
        if num_frames > 1:
            rotations = axis_angle_to_matrix(Rh)
            smooth = (local[1:] - local[:-1]).square().sum((-1, -2)) + (rotations[1:] - rotations[:-1]).square().sum((-1, -2))
            smooth = smooth + (Th[1:] - Th[:-1]).square().sum(-1) * 10.0
            loss = loss + config.smoothness_weight * (smooth / gaps).mean()
        return loss

    # After the rigid stage the translation moves slowly: limbs bent towards or away from the camera explain
    # the 2D joints at a wrong depth about as well as at the right one, and a fast translation drifts there.
    lr = config.learning_rate
    everything = [{"params": [Rh, local] + ([shapes] if fit_shape else []), "lr": lr}, {"params": [Th], "lr": lr * config.translation_rate}]
    stages = [("rigid", config.rigid_iterations, [{"params": [Rh], "lr": lr}]), ("pose", config.pose_iterations, everything), ("full", config.iterations, everything)]
    bar = tqdm(total=sum(n for _, n, _ in stages), desc="body fit", unit="step", disable=not progress)
    for stage, iterations, parameters in stages:
        optimizer = torch.optim.Adam(parameters)
        # Adam at a fixed rate keeps jittering by about the rate; decaying it lets every frame settle.
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, config.final_learning_rate_ratio ** (1.0 / max(iterations, 1)))
        for _ in range(iterations):
            optimizer.zero_grad()
            objective(stage).backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
    bar.close()

    with torch.no_grad():
        joints, _ = posed(with_vertices=False)
        distances = (project(joints[:, joint_ids], K) - obs.joints_2d).norm(dim=-1)
        seen = obs.joint_confidence > 0.5
        joint_error = (distances * seen).sum(-1) / seen.sum(-1).clamp(min=1)
        poses = torch.cat([torch.zeros(num_frames, 3), local[:, 1:].reshape(num_frames, -1)], dim=1)
    return BodyFit(poses=poses.detach(), Rh=Rh.detach(), Th=Th.detach(), shapes=shapes.detach(), joint_error_px=joint_error)
