"""Iterative backward deformation: observation-space samples to canonical space.

Linear blend skinning maps a canonical point forward, ``x_o = G(x_c) x_c`` with the blended transform
``G(x) = sum_j w_j(x) G_j`` and canonical skinning weights ``w``. Going backward, the weights depend on
the unknown ``x_c``, so the canonical point is the fixed point of

    ``x_c = Phi(x_c) := G(x_c)^-1 x_o``.

:func:`iterative_backward_deformation` runs the fixed-point iteration ``x^{k+1} = Phi(x^k)``, started
from the inverse LBS with observation-space weights (the posed body's nearest-vertex weights, from
:class:`~hfavatar_ns.deformation.weight_grid.PerFrameWeightGrids`), then refined with the learned
canonical skinning field. Near the body the weights vary slowly compared with the bone motion, ``Phi``
is a contraction there and a few steps (three in the reference) suffice.

:class:`BackwardDeformation` wires the weight grids, the canonical skinning field and the non-rigid
offset into one module, reading each frame's (possibly refined) body from ``BodyFrames``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Literal, Optional, Tuple, Type, Union

import torch
from jaxtyping import Float, Int
from nerfstudio.configs.base_config import InstantiateConfig
from torch import Tensor, nn

from hfavatar_ns.body.body_frames import BodyFrames
from hfavatar_ns.deformation.non_rigid import NonRigidOffset, NonRigidOffsetConfig
from hfavatar_ns.deformation.skinning_field import CanonicalSkinningField, CanonicalSkinningFieldConfig
from hfavatar_ns.deformation.weight_grid import PerFrameWeightGrids
from hfavatar_ns.errors import InputError


def per_point_bone_transforms(
    bone_transforms: Union[Float[Tensor, "N J 4 4"], Float[Tensor, "F J 4 4"], Float[Tensor, "N J 12"]],
    frame_indices: Optional[Int[Tensor, "N"]] = None,
) -> Float[Tensor, "N J 12"]:
    """The top three rows of each point's bone transforms, flattened (gathered by frame if indexed).

    Rows already in that form (``[N, J, 12]``, no ``frame_indices``) are returned as they are.
    """
    if bone_transforms.shape[-1] == 12 and frame_indices is None:
        return bone_transforms
    rows = bone_transforms[..., :3, :].flatten(-2)
    return rows if frame_indices is None else rows[frame_indices]


def blend_point_transforms(
    weights: Float[Tensor, "N J"], point_transforms: Float[Tensor, "N J 12"]
) -> Float[Tensor, "N 3 4"]:
    """Per-point blended affine map ``sum_j w_j G_j`` (top three rows)."""
    return torch.bmm(weights[:, None, :].to(point_transforms.dtype), point_transforms).reshape(-1, 3, 4)


def solve_blended_affine(blended: Float[Tensor, "N 3 4"], points: Float[Tensor, "N 3"]) -> Float[Tensor, "N 3"]:
    """``A^-1 (x - t)`` for per-point affine maps ``[A | t]``, by the closed-form 3x3 inverse.

    The inverse of ``A`` with rows ``a0, a1, a2`` has columns ``(a1 x a2, a2 x a0, a0 x a1) / det A``;
    on a CPU this is about ten times faster than batched ``torch.linalg.inv``, and differentiable.
    """
    linear, translation = blended[..., :3], blended[..., 3]
    rhs = points - translation
    a0, a1, a2 = linear.unbind(dim=-2)
    c0, c1, c2 = torch.cross(a1, a2, dim=-1), torch.cross(a2, a0, dim=-1), torch.cross(a0, a1, dim=-1)
    det = (a0 * c0).sum(dim=-1, keepdim=True)
    return (c0 * rhs[..., 0:1] + c1 * rhs[..., 1:2] + c2 * rhs[..., 2:3]) / det


def iterative_backward_deformation(
    points_obs: Float[Tensor, "N 3"],
    bone_transforms: Union[Float[Tensor, "N J 4 4"], Float[Tensor, "F J 4 4"], Float[Tensor, "N J 12"]],
    initial_weights: Float[Tensor, "N J"],
    canonical_weight_fn: Callable[[Tensor], Tensor],
    num_iterations: int = 3,
    frame_indices: Optional[Int[Tensor, "N"]] = None,
) -> Tuple[Float[Tensor, "N 3"], Float[Tensor, "N J"]]:
    """Canonical positions of observation-space points by fixed-point iteration of inverse LBS.

    Step 0: ``x^0 = (sum_j w0_j G_j)^-1 x_o`` with ``initial_weights`` (observation-space weights).
    Steps 1..num_iterations-1: ``x^k = (sum_j w_j(x^{k-1}) G_j)^-1 x_o`` with the canonical weights
    ``w = canonical_weight_fn`` read at the previous canonical estimate; the observation point ``x_o``
    is inverted every time (the estimate only chooses the weights). A fixed point ``x*`` satisfies
    ``LBS(x*; w(x*)) = x_o`` exactly, i.e. it is a canonical point that skins onto ``x_o``.

    Only the last step is differentiated: earlier steps run under ``torch.no_grad()`` and the last
    one reads the weights at the detached previous estimate, so gradients reach ``points_obs``, the
    bone transforms and the parameters of ``canonical_weight_fn`` (or ``initial_weights`` when
    ``num_iterations == 1``), but not through the choice of where the weights were read.

    Args:
        points_obs: observation-space points.
        bone_transforms: canonical -> observation transform of each bone, per point (``[N, J, 4, 4]``,
            or its top rows ``[N, J, 12]``) or per frame (``[F, J, 4, 4]``, with ``frame_indices``).
        initial_weights: skinning weights for step 0 (rows sum to 1).
        canonical_weight_fn: skinning weights of canonical points, ``[N, 3] -> [N, J]``.
        num_iterations: total number of inverse-LBS solves, at least 1.
        frame_indices: the frame (row of ``bone_transforms``) of each point, or ``None``.

    Returns:
        points_canonical: the canonical estimate after the last step.
        weights: the skinning weights used in the last step.
    """
    if num_iterations < 1:
        raise ValueError(f"num_iterations must be at least 1, got {num_iterations}.")
    point_transforms = per_point_bone_transforms(bone_transforms, frame_indices)

    def inverse_skinning(weights: Tensor) -> Tensor:
        return solve_blended_affine(blend_point_transforms(weights, point_transforms), points_obs)

    if num_iterations == 1:
        return inverse_skinning(initial_weights), initial_weights
    with torch.no_grad():
        estimate = inverse_skinning(initial_weights)
        for _ in range(num_iterations - 2):
            estimate = inverse_skinning(canonical_weight_fn(estimate))
    weights = canonical_weight_fn(estimate.detach())
    return inverse_skinning(weights), weights


@dataclass
class BackwardDeformationConfig(InstantiateConfig):
    """Configuration of :class:`BackwardDeformation`."""

    _target: Type = field(default_factory=lambda: BackwardDeformation)
    num_iterations: int = 3
    """Inverse-LBS solves per sample: one with observation-space weights, the rest with the canonical field
    (1: a single inverse-skinning step with the observation-space weights, the ablation of iterative deformation)."""
    learned_skinning: bool = True
    """Learn a correction of the body's canonical skinning weights; False keeps the body's own weights."""
    knn: int = 10
    """Nearest body vertices blended (inverse-distance) for the weight grids."""
    obs_grid_resolution: int = 32
    """Nodes along each axis of each frame's observation-space weight grid."""
    obs_grid_margin: float = 0.1
    """Metres around each frame's posed body covered by its weight grid."""
    obs_grid_dtype: Literal["float16", "float32"] = "float16"
    """Storage type of the per-frame grids (all frames are cached: 1.5 MiB a frame at 32^3, float16)."""
    canonical_grid_resolution: int = 64
    """Nodes along each axis of the canonical body-weight grid."""
    residual_grid_resolution: int = 16
    """Nodes along each axis of the learnable residual skinning-logit grid."""
    canonical_grid_margin: float = 0.1
    """Metres around the canonical body covered by the canonical grids."""
    non_rigid: NonRigidOffsetConfig = field(default_factory=NonRigidOffsetConfig)
    """The pose-conditioned non-rigid offset (kick-in and coarse-to-fine schedule included)."""
    pose_refinement: Optional[bool] = None
    """Learn per-frame corrections of the body fits (every joint's rotation, ``Rh`` and ``Th``), for captures
    whose fits have errors. The corrected body is what sampling, weight grids and skinning use. None (the
    default): on for estimated fits (every real capture), off where the capture declares its fits exact
    (``"exact_fits": true`` in ``body_model.json``, as hfavatar-synth writes without fit errors)."""
    pose_refinement_kick_in_step: int = 0
    """Step from which the corrections are applied (and learned)."""
    pose_refinement_depth: Literal["auto", "held", "free"] = "auto"
    """Whether refinement may move a frame's body along the line of sight: "held" keeps the given fit's
    depth (only for captures whose training images all come from one camera, which barely see depth),
    "free" learns it, "auto" holds it on such monocular captures and frees it otherwise."""


class BackwardDeformation(nn.Module):
    """Observation -> canonical deformation of samples: skinning iterations, then a non-rigid offset.

    Reads the body from a :class:`~hfavatar_ns.body.body_frames.BodyFrames` (the model owns it; this
    keeps a reference, never a copy): the canonical body for the skinning field, each frame's bone
    transforms and pose, and each frame's posed body for the observation-space weight grids.

    Args:
        config: the deformation's configuration.
        body: the per-frame body state. With ``pose_refinement`` its corrections are enabled here.
    """

    skinning_field: CanonicalSkinningField
    observation_grids: PerFrameWeightGrids

    def __init__(self, config: BackwardDeformationConfig, body: BodyFrames) -> None:
        super().__init__()
        self.config = config
        self.non_rigid: NonRigidOffset = config.non_rigid.setup()
        self._step = 0
        object.__setattr__(self, "body", body)  # read, not owned: never a submodule
        canonical = body.canonical_body()
        self.skinning_field = CanonicalSkinningField(
            CanonicalSkinningFieldConfig(
                grid_resolution=config.canonical_grid_resolution,
                residual_resolution=config.residual_grid_resolution,
                margin=config.canonical_grid_margin,
                knn=config.knn,
            ),
            canonical,
        ).to(canonical.vertices.device)
        self.skinning_field.residual_logits.requires_grad_(config.learned_skinning)
        self.observation_grids = PerFrameWeightGrids(
            body,
            canonical.skinning_weights,
            resolution=config.obs_grid_resolution,
            margin=config.obs_grid_margin,
            k=config.knn,
            dtype=getattr(torch, config.obs_grid_dtype),
        )
        self.refines_poses = body.fits_estimated if config.pose_refinement is None else config.pose_refinement
        """Whether pose refinement is on (``config.pose_refinement``, resolved for this capture)."""
        if self.refines_poses:
            body.enable_refinement()
            if self._holds_depth(config.pose_refinement_depth, body):
                body.hold_depth(body.lone_training_camera)
        self.set_progress(0)

    @staticmethod
    def _holds_depth(choice: str, body: BodyFrames) -> bool:
        monocular = body.lone_training_camera is not None
        if choice == "held" and not monocular:
            raise InputError(
                "pose_refinement_depth='held' needs a capture whose training images all come from one camera; "
                "this one has several, which see depth. Use --pipeline.model.deformation.pose-refinement-depth "
                "auto (or free)."
            )
        return choice == "held" or (choice == "auto" and monocular)

    @property
    def pose_refinement_active(self) -> bool:
        """Whether per-frame corrections are applied at the current step."""
        return self.refines_poses and self._step >= self.config.pose_refinement_kick_in_step

    def set_progress(self, step: int) -> None:
        """Tell the deformation the training step (non-rigid and pose-refinement schedules)."""
        self._step = int(step)
        self.non_rigid.set_progress(step)
        self.body.apply_corrections = self.pose_refinement_active

    def param_groups(self) -> Dict[str, List[nn.Parameter]]:
        """Learnable parameters by role, for the model's optimiser groups."""
        return {
            "skinning": [p for p in self.skinning_field.parameters() if p.requires_grad],
            "non_rigid": list(self.non_rigid.parameters()) if self.config.non_rigid.enabled else [],
        }

    def forward(
        self, points_obs: Float[Tensor, "N 3"], frame_indices: Int[Tensor, "N"]
    ) -> Tuple[Float[Tensor, "N 3"], Dict[str, Tensor]]:
        """Canonical positions of observation-space samples, each in its own frame (row).

        Returns:
            points_canonical: skinned-back points plus the non-rigid offset.
            aux: ``skinning_weights`` [N, 24] (of the last iteration), ``points_skinned`` [N, 3] (before
                the non-rigid offset), ``non_rigid_offset`` [N, 3], ``body_distance`` [N] (distance of the
                observation point to the frame's posed body, from the precomputed grid),
                ``bone_transforms`` [N, 24, 12] (each point's canonical -> observation bone transforms).
        """
        frame_indices = frame_indices.reshape(-1).long()
        initial_weights, body_distance = self.observation_grids.query_with_distance(points_obs, frame_indices)
        table, rows = self.body.bone_transform_table(frame_indices)
        point_transforms = per_point_bone_transforms(table, rows)
        points_skinned, weights = iterative_backward_deformation(
            points_obs, point_transforms, initial_weights, self.skinning_field, self.config.num_iterations
        )
        offset = self.non_rigid(points_skinned, self.body.frame_poses(frame_indices)[:, 3:])
        aux = {
            "skinning_weights": weights,
            "points_skinned": points_skinned,
            "non_rigid_offset": offset,
            "body_distance": body_distance,
            "bone_transforms": point_transforms,
        }
        return points_skinned + offset, aux

    def forward_deform(
        self,
        points_canonical: Float[Tensor, "N 3"],
        frame_index: Union[int, Int[Tensor, "N"]],
        num_offset_iterations: int = 3,
    ) -> Float[Tensor, "N 3"]:
        """Canonical -> observation: the approximate inverse of :meth:`forward` (mesh export, debugging).

        Undoes the non-rigid offset by fixed-point iteration (``x_s = x_c - offset(x_s)``), then skins
        forward with the canonical skinning field: ``x_o = sum_j w_j(x_s) G_j x_s``.
        """
        if isinstance(frame_index, int):
            frame_indices = torch.full((points_canonical.shape[0],), frame_index, device=points_canonical.device)
        else:
            frame_indices = frame_index.reshape(-1).long()
        pose = self.body.frame_poses(frame_indices)[:, 3:]
        points_skinned = points_canonical
        if self.non_rigid.active:
            for _ in range(num_offset_iterations):
                points_skinned = points_canonical - self.non_rigid(points_skinned, pose)
        table, rows = self.body.bone_transform_table(frame_indices)
        blended = blend_point_transforms(self.skinning_field(points_skinned), per_point_bone_transforms(table, rows))
        return (blended[..., :3] @ points_skinned[..., None])[..., 0] + blended[..., 3]


def reject_inconsistent_mapping(
    sdf: Float[Tensor, "N 1"], prior_sdf: Float[Tensor, "N 1"], body_distance: Float[Tensor, "N"], tolerance: float
) -> Float[Tensor, "N 1"]:
    """Empty space where inverse skinning sent a point much closer to the body than it is.

    Backward skinning has spurious solutions: a point beside a shoulder, given arm weights by its
    nearest vertices, lands inside the canonical arm and would render a phantom "wing". Skinning is
    close to an isometry near the body, so a point's distance to the posed body (``body_distance``)
    and its canonical point's distance to the canonical body (``|prior_sdf|``) should agree. Where
    the posed distance exceeds the canonical one by more than ``tolerance`` (metres), the SDF is blended
    (over one more tolerance) towards the posed distance: outside, as the point really is. 0: off.
    """
    if tolerance <= 0:
        return sdf
    distance = body_distance.detach()[:, None]
    excess = distance - prior_sdf.detach().abs() - tolerance
    blend = (excess / tolerance).clamp(0.0, 1.0)
    return (1.0 - blend) * sdf + blend * distance
