"""The per-frame body state of a capture, with one owner: :class:`BodyFrames`.

Two words are kept apart everywhere:

* a **frame id** is the capture's own frame number (the 0-based position in ``annots.npy``); frames of
  a novel motion appended for rendering get ids ``-1, -2, ...``;
* a **row** is a frame's position in the tables here. Rays carry rows (``metadata["frame_idx"]``),
  and every per-frame cache (occupancy grids, weight grids) is indexed by row.

The dataparser builds a :class:`BodyFrames` from the capture's fits, the model adopts it as a
submodule (so it moves with the model and its learnable corrections are checkpointed), and the
deformation, the inner sampler and the weight grids read it: nobody keeps a copy. When the body of a
row changes (pose refinement moved it, or rows were appended) its :meth:`BodyFrames.revision` goes
up, and caches built from the old body rebuild that row on next use.

Spaces: the body model's *rest* pose (zero pose), the *canonical* pose the avatar is learned in (set
by :meth:`BodyFrames.set_canonical_pose`; the rest pose until then) and *observation* (world) space.
"""

from __future__ import annotations

from typing import Dict, Optional, Protocol, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hfavatar_ns.body.base import CanonicalBody, PosedBody
from hfavatar_ns.body.canonical_pose import canonical_pose_transforms, rebase_to_canonical
from hfavatar_ns.body.posing import BodyModelSpec, pose_in_batches
from hfavatar_ns.body.skinning import (
    SMPL_PARENTS,
    forward_kinematics,
    global_transform,
    linear_blend_skinning,
    pose_to_local_rotations,
    transform_points,
)
from hfavatar_ns.errors import InputError

DRIFT_VERTEX_STRIDE = 8
"""Every how many vertices :meth:`BodyFrames.refresh` measures a row's drift on."""
REFRESH_TOLERANCE_M = 0.03
"""How far (metres, the largest move of a vertex) a refined row may drift from the body its caches were
built from before they are rebuilt. The caches tolerate that much: the sampler's shell reaches the
margin (5 cm or more) beyond the body, and the weight grids only start the inverse-skinning iteration."""


class PosedBodies(Protocol):
    """What per-frame caches read: one posed body per row, and when it last changed."""

    faces: Tensor

    @property
    def num_frames(self) -> int: ...

    def posed_vertices(self, row: int) -> Float[Tensor, "V 3"]: ...

    def revision(self, row: int) -> int: ...


class StaticPosedBodies:
    """Fixed posed bodies (e.g. the canonical body alone): a :class:`PosedBodies` that never changes."""

    def __init__(self, vertices: Float[Tensor, "F V 3"], faces: Int[Tensor, "Fc 3"]) -> None:
        self.vertices = vertices.detach().float()
        self.faces = faces.detach().long()

    @property
    def num_frames(self) -> int:
        return int(self.vertices.shape[0])

    def posed_vertices(self, row: int) -> Float[Tensor, "V 3"]:
        return self.vertices[int(row)]

    def revision(self, row: int) -> int:
        return 0


def frame_times(frame_ids: Sequence[int] | Tensor) -> Float[Tensor, "F"]:
    """Each capture frame id's position in ``[min, max]`` of the ids, normalised to [0, 1] (0 for one
    frame); novel-motion ids (negative) get ``inf`` so no time ever selects them."""
    ids = torch.as_tensor(frame_ids, dtype=torch.float64).reshape(-1)
    captured = ids[ids >= 0]
    times = torch.full_like(ids, float("inf"))
    if captured.numel() == 0:
        return times.float()
    low, span = captured.min(), captured.max() - captured.min()
    times[ids >= 0] = (captured - low) / span if span > 0 else torch.zeros_like(captured)
    return times.float()


def fit_kinematics(
    rest_joints: Float[Tensor, "24 3"],
    parents: Sequence[int],
    poses: Float[Tensor, "M 72"],
    global_rotation: Float[Tensor, "M 3"],
    global_translation: Float[Tensor, "M 3"],
) -> Float[Tensor, "M 24 4 4"]:
    """Rest -> observation bone transforms of fits by forward kinematics of the rest joints (``Rh``/``Th`` included)."""
    joints = rest_joints.expand(poses.shape[0], -1, -1)
    transforms, _ = forward_kinematics(pose_to_local_rotations(poses), joints, parents)
    return global_transform(global_rotation, global_translation)[:, None] @ transforms


def _repose_after_loading(body: "BodyFrames", incompatible_keys) -> None:
    """Loaded corrections move the bodies the caches see."""
    body.refresh(tolerance=0.0)


class BodyFrames(nn.Module):
    """Every frame's body (poses, ``Rh``/``Th``, bone transforms, posed vertices) and the body itself.

    Build it with :meth:`from_parameters` (or :meth:`from_posed`). Tables are non-persistent buffers:
    they come from the capture each time a run is set up, never from a checkpoint. The learnable
    per-frame corrections of pose refinement (:meth:`enable_refinement`) are parameters and are saved.

    Args:
        rest_body: the shaped body in its rest pose.
        shape: the shape coefficients of ``rest_body`` (posing new motions reuses them).
        frame_ids: capture frame id of each row.
        poses: each row's 72-d pose.
        global_rotation: each row's ``Rh``.
        global_translation: each row's ``Th`` (metres).
        rest_bone_transforms: each row's rest -> observation bone transforms.
        posed_vertices: each row's posed body (observation space), correctives included.
        body_model: which body model posed them.
        training_frame_ids: the frames with training images (``None``: every frame).
        parents: the kinematic tree.
    """

    def __init__(
        self,
        rest_body: CanonicalBody,
        shape: Float[Tensor, "B"],
        frame_ids: Int[Tensor, "F"],
        poses: Float[Tensor, "F 72"],
        global_rotation: Float[Tensor, "F 3"],
        global_translation: Float[Tensor, "F 3"],
        rest_bone_transforms: Float[Tensor, "F 24 4 4"],
        posed_vertices: Float[Tensor, "F V 3"],
        body_model: BodyModelSpec,
        training_frame_ids: Optional[Sequence[int]] = None,
        parents: Sequence[int] = SMPL_PARENTS,
    ) -> None:
        super().__init__()
        count = int(poses.shape[0])
        sizes = {
            "frame ids": frame_ids.shape[0],
            "Rh": global_rotation.shape[0],
            "Th": global_translation.shape[0],
            "bone transforms": rest_bone_transforms.shape[0],
            "posed bodies": posed_vertices.shape[0],
        }
        if any(size != count for size in sizes.values()):
            listed = ", ".join(f"{size} {name}" for name, size in sizes.items())
            raise InputError(f"The per-frame body tables disagree on the number of frames: {count} poses, {listed}.")
        self.body_model = body_model
        self.parents = tuple(parents)

        def buffer(name: str, value: Tensor) -> None:
            self.register_buffer(name, value, persistent=False)

        buffer("rest_vertices", rest_body.vertices.detach().float())
        buffer("rest_joints", rest_body.joints.detach().float())
        buffer("faces", rest_body.faces.detach().long())
        buffer("skinning_weights", rest_body.skinning_weights.detach().float())
        buffer("shape", shape.detach().float().reshape(-1))
        buffer("frame_ids", frame_ids.detach().long().reshape(-1))
        buffer("times", frame_times(self.frame_ids))
        trained = torch.ones(count, dtype=torch.bool)
        if training_frame_ids is not None:
            trained = torch.isin(self.frame_ids, torch.as_tensor(list(training_frame_ids), dtype=torch.long))
        buffer("trained", trained)
        buffer("poses", poses.detach().float().reshape(count, -1))
        buffer("global_rotation", global_rotation.detach().float().reshape(count, 3))
        buffer("global_translation", global_translation.detach().float().reshape(count, 3))
        buffer("rest_bone_transforms", rest_bone_transforms.detach().float())
        buffer("given_vertices", posed_vertices.detach().float())
        buffer("rest_to_canonical", torch.eye(4).expand(len(self.parents), 4, 4).clone())
        self._revisions = np.zeros(count, dtype=np.int64)
        self.apply_corrections = False
        """Whether the refinement corrections are applied (the model switches this on at the kick-in step)."""
        self.fits_estimated = False
        """Whether the fits are estimates with errors (a real capture's); pose refinement is on by default then."""
        self.lone_training_camera: Optional[Float[Tensor, "3"]] = None
        """World position of the only camera the training images come from (a monocular capture), else None."""
        buffer("held_depth_axes", torch.zeros(count, 3))
        self._derive_canonical()
        self.register_load_state_dict_post_hook(_repose_after_loading)

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_parameters(
        cls,
        body_model: BodyModelSpec,
        frame_ids: Sequence[int] | Tensor,
        poses: Float[Tensor, "F 72"],
        shapes: Float[Tensor, "F B"],
        global_rotation: Float[Tensor, "F 3"],
        global_translation: Float[Tensor, "F 3"],
        training_frame_ids: Optional[Sequence[int]] = None,
    ) -> "BodyFrames":
        """Pose every frame with the body model (each frame with its own shape; the body itself takes
        the first frame's)."""
        model = body_model.make()
        posed = pose_in_batches(model, poses, shapes, global_rotation, global_translation)
        with torch.no_grad():
            rest_body = model.canonical(shapes[0].float())
        return cls.from_posed(
            rest_body, shapes[0], frame_ids, poses, global_rotation, global_translation, posed, body_model,
            training_frame_ids,
        )  # fmt: skip

    @classmethod
    def from_posed(
        cls,
        rest_body: CanonicalBody,
        shape: Float[Tensor, "B"],
        frame_ids: Sequence[int] | Tensor,
        poses: Float[Tensor, "F 72"],
        global_rotation: Float[Tensor, "F 3"],
        global_translation: Float[Tensor, "F 3"],
        posed: PosedBody,
        body_model: BodyModelSpec,
        training_frame_ids: Optional[Sequence[int]] = None,
    ) -> "BodyFrames":
        return cls(
            rest_body, shape, torch.as_tensor(frame_ids, dtype=torch.long), poses, global_rotation,
            global_translation, posed.bone_transforms, posed.vertices, body_model, training_frame_ids,
        )  # fmt: skip

    def set_canonical_pose(self, pose: Float[Tensor, "72"]) -> None:
        """Learn the avatar in this pose (a pose vector) instead of the rest pose."""
        self.rest_to_canonical = canonical_pose_transforms(self.rest_joints, self.parents, pose.to(self.rest_joints))
        self._derive_canonical()

    def _derive_canonical(self) -> None:
        canonical_vertices, bone_transforms = rebase_to_canonical(
            self.rest_vertices, self.skinning_weights, self.rest_to_canonical, self.rest_bone_transforms
        )
        self.register_buffer("canonical_vertices", canonical_vertices, persistent=False)
        self.register_buffer("given_bone_transforms", bone_transforms, persistent=False)
        """Canonical -> observation bone transforms of the given fits."""
        self.register_buffer("beyond_kinematics", self._beyond_kinematics(bone_transforms, None), persistent=False)
        self.register_buffer("published_bone_transforms", bone_transforms.clone(), persistent=False)
        self.register_buffer("published_vertices", self.given_vertices.clone(), persistent=False)
        self._revisions += 1

    def _beyond_kinematics(self, bone_transforms: Tensor, rows: Optional[slice]) -> Float[Tensor, "F 24 4 4"]:
        """``K^-1 G`` per row: what the given canonical -> observation transforms ``G`` hold beyond the fit's
        forward kinematics ``K`` (the canonical rebasing, per-frame shapes). A corrected fit's transforms are
        ``K(corrected) K^-1 G``: the given ones when the corrections are zero. Made once, not per step."""
        rows = slice(None) if rows is None else rows
        kinematics = fit_kinematics(
            self.rest_joints, self.parents, self.poses[rows], self.global_rotation[rows], self.global_translation[rows]
        )
        return torch.linalg.inv(kinematics) @ bone_transforms

    # ------------------------------------------------------------------ rows and frame ids

    @property
    def num_frames(self) -> int:
        return int(self.frame_ids.shape[0])

    def row_of(self, frame_id: int) -> int:
        """The row of a capture frame id (``InputError`` naming the known ids if it has none)."""
        matches = (self.frame_ids == int(frame_id)).nonzero().reshape(-1)
        if matches.numel() == 0:
            known = [int(i) for i in self.frame_ids.tolist() if i >= 0]
            shown = ", ".join(str(i) for i in known[:20]) + (" ..." if len(known) > 20 else "")
            raise InputError(f"Frame {frame_id} is not one of the avatar's frames ({len(known)} frames: {shown}).")
        return int(matches[0])

    def rows_of(self, frame_ids: Sequence[int]) -> list[int]:
        return [self.row_of(frame_id) for frame_id in frame_ids]

    def frame_id(self, row: int) -> int:
        return int(self.frame_ids[int(row)])

    def capture_rows(self) -> list[int]:
        """Rows of the capture's own frames (novel-motion rows left out)."""
        return [row for row, frame_id in enumerate(self.frame_ids.tolist()) if frame_id >= 0]

    def training_rows(self) -> list[int]:
        """Rows of the frames that have training images."""
        return self.trained.nonzero().reshape(-1).tolist()

    def row_at_time(self, time: float) -> int:
        """The capture row whose normalised time is nearest to ``time``."""
        return int((self.times - float(time)).abs().argmin())

    def rows_at_times(self, times: Float[Tensor, "N"]) -> Int[Tensor, "N"]:
        return (times.reshape(-1, 1).to(self.times) - self.times[None]).abs().argmin(dim=-1)

    # ------------------------------------------------------------------ the body

    def canonical_body(self) -> CanonicalBody:
        """The body in the canonical pose."""
        joints = transform_points(self.rest_to_canonical, self.rest_joints)
        return CanonicalBody(self.canonical_vertices, self.faces, joints, self.skinning_weights)

    def canonical_bounds(self, margin: float) -> Float[Tensor, "2 3"]:
        """The canonical body's bounding box grown by ``margin`` metres."""
        vertices = self.canonical_vertices
        return torch.stack([vertices.amin(0) - margin, vertices.amax(0) + margin])

    def posed_bounds(self, rows: Optional[Sequence[int]] = None, margin: float = 0.0) -> Float[Tensor, "2 3"]:
        """The box around the posed bodies of ``rows`` (all rows when ``None``), grown by ``margin``."""
        vertices = self.published_vertices if rows is None else self.published_vertices[list(rows)]
        vertices = vertices.reshape(-1, 3)
        return torch.stack([vertices.amin(0) - margin, vertices.amax(0) + margin])

    # ------------------------------------------------------------------ per-frame state

    def posed_vertices(self, row: int) -> Float[Tensor, "V 3"]:
        """The posed body of a row as the caches see it (corrected when refinement is on; no gradient)."""
        return self.published_vertices[int(row)]

    def revision(self, row: int) -> int:
        """Goes up each time the row's posed body changes."""
        return int(self._revisions[int(row)])

    @property
    def refining(self) -> bool:
        """Whether corrections exist and are applied."""
        return self.apply_corrections and hasattr(self, "pose_correction")

    def frame_poses(self, rows: Int[Tensor, "N"]) -> Float[Tensor, "N 72"]:
        """The pose of each row (corrected when refining)."""
        poses = self.poses[rows]
        if self.refining:
            poses = poses + self.pose_correction[rows].flatten(-2)
        return poses

    @torch.no_grad()
    def fit_parameters(self, rows: Sequence[int], refined: bool = True) -> Dict[str, Tensor]:
        """The fits of ``rows`` as a capture writes them (``poses`` ``[N, 72]``, ``Rh``, ``Th``, ``shapes``):
        with ``refined``, the given fits plus any learned corrections, else the given fits."""
        index = torch.as_tensor(list(rows), dtype=torch.long, device=self.poses.device)
        poses, rotation, translation = self.poses[index], self.global_rotation[index], self.global_translation[index]
        if refined and hasattr(self, "pose_correction"):
            poses = poses + self.pose_correction[index].flatten(-2)
            rotation = rotation + self.rotation_correction[index]
            translation = translation + self.translation_corrections(index)
        shapes = self.shape.expand(index.numel(), -1)
        return {"poses": poses.clone(), "Rh": rotation.clone(), "Th": translation.clone(), "shapes": shapes.clone()}

    def bone_transform_table(self, rows: Int[Tensor, "N"]) -> Tuple[Float[Tensor, "M 24 4 4"], Int[Tensor, "N"]]:
        """Canonical -> observation bone transforms for a batch: a table and each entry's row in it.

        Without refinement: the given table and ``rows``. With it: the corrected transforms of only
        the rows present (differentiable in the corrections).
        """
        if not self.refining:
            return self.given_bone_transforms, rows
        unique_rows, index = torch.unique(rows, return_inverse=True)
        return self.corrected_bone_transforms(unique_rows), index

    def corrected_bone_transforms(self, rows: Int[Tensor, "M"]) -> Float[Tensor, "M 24 4 4"]:
        if not self.refining:
            return self.given_bone_transforms[rows]
        corrected = fit_kinematics(
            self.rest_joints, self.parents, self.poses[rows] + self.pose_correction[rows].flatten(-2),
            self.global_rotation[rows] + self.rotation_correction[rows],
            self.global_translation[rows] + self.translation_corrections(rows),
        )  # fmt: skip
        return corrected @ self.beyond_kinematics[rows]

    # ------------------------------------------------------------------ pose refinement

    def enable_refinement(self) -> None:
        """Add learnable per-row corrections of the pose, ``Rh`` and ``Th`` (all zero: the given fits)."""
        if hasattr(self, "pose_correction"):
            return
        count, device = self.num_frames, self.poses.device
        self.pose_correction = nn.Parameter(torch.zeros(count, len(self.parents), 3, device=device))
        self.rotation_correction = nn.Parameter(torch.zeros(count, 3, device=device))
        self.translation_correction = nn.Parameter(torch.zeros(count, 3, device=device))

    def hold_depth(self, camera_centre: Float[Tensor, "3"]) -> None:
        """Keep each row's translation correction off the line of sight from ``camera_centre`` to its
        body: the given fit's depth stays. Images from one camera barely constrain depth, and refinement
        would move the body along the ray as freely as it fixes a real error."""
        centres = self.given_vertices.mean(dim=1)
        sight = centres - camera_centre.to(centres)
        self.held_depth_axes = sight / sight.norm(dim=-1, keepdim=True).clamp_min(1e-9)

    def translation_corrections(self, rows: Int[Tensor, "N"]) -> Float[Tensor, "N 3"]:
        """The learned ``Th`` corrections of ``rows``, less any component along a held depth axis."""
        correction, axis = self.translation_correction[rows], self.held_depth_axes[rows]
        return correction - (correction * axis).sum(-1, keepdim=True) * axis

    def correction_parameters(self) -> list[nn.Parameter]:
        if not hasattr(self, "pose_correction"):
            return []
        return [self.pose_correction, self.rotation_correction, self.translation_correction]

    def correction_magnitudes(self) -> Dict[str, Tensor]:
        """Mean squared corrections (radians^2 per joint, radians^2 and metres^2 globally): a prior
        towards the given fits."""
        if not hasattr(self, "pose_correction"):
            return {}
        return {
            "pose": (self.pose_correction**2).sum(-1).mean(),
            "rotation": (self.rotation_correction**2).sum(-1).mean(),
            "translation": (self.translation_correction**2).sum(-1).mean(),
        }

    @torch.no_grad()
    def refresh(self, tolerance: float = REFRESH_TOLERANCE_M) -> list[int]:
        """Re-pose the rows whose corrected body drifted more than ``tolerance`` metres from the one the
        caches hold; returns those rows (their revisions went up).

        The drift of a row is the largest move of its body's vertices (every ``DRIFT_VERTEX_STRIDE``-th,
        which on a body of thousands of vertices is within millimetres of the largest over all of them):
        a bound over the bones alone (``|dA| r + |dt|`` with ``r`` the body's radius) counts a hand's
        degree as a 3 cm move and would rebuild every cache many times over while refinement learns.
        Posing is the given body moved by the blended correction transforms, so correctives stay.
        """
        rows_all = torch.arange(self.num_frames, device=self.poses.device)
        target = self.corrected_bone_transforms(rows_all) if self.refining else self.given_bone_transforms
        drift = self._largest_vertex_move(target, self.published_bone_transforms)
        stale = (drift > max(tolerance, 1e-6)).nonzero().reshape(-1)  # a micrometre: float round-off, no move
        if stale.numel() == 0:
            return []
        moves = target[stale] @ torch.linalg.inv(self.given_bone_transforms[stale])
        self.published_vertices[stale] = linear_blend_skinning(
            self.given_vertices[stale], self.skinning_weights.expand(stale.numel(), -1, -1), moves
        )
        self.published_bone_transforms[stale] = target[stale]
        rows = stale.tolist()
        self._revisions[rows] += 1
        return rows

    def _largest_vertex_move(self, target: Float[Tensor, "F 24 4 4"], current: Float[Tensor, "F 24 4 4"]) -> Float[Tensor, "F"]:
        """Per row, the largest distance a (subsampled) canonical vertex moves between the two sets of transforms."""
        vertices = self.canonical_vertices[::DRIFT_VERTEX_STRIDE]
        weights = self.skinning_weights[::DRIFT_VERTEX_STRIDE]
        change = (target - current)[..., :3, :].flatten(-2)  # [F, 24, 12]
        blended = (weights @ change).unflatten(-1, (3, 4))  # [F, V, 3, 4]
        moves = (blended[..., :3] @ vertices[None, :, :, None])[..., 0] + blended[..., 3]
        return moves.norm(dim=-1).amax(dim=-1)

    # ------------------------------------------------------------------ frames beyond the capture

    @torch.no_grad()
    def append(
        self,
        posed: PosedBody,
        poses: Float[Tensor, "N 72"],
        global_rotation: Float[Tensor, "N 3"],
        global_translation: Float[Tensor, "N 3"],
    ) -> Int[Tensor, "N"]:
        """Append the frames of a novel motion (posed with this body's model and shape, e.g. by
        :func:`hfavatar_ns.body.motion.pose_motion`); returns their rows.

        New rows get frame ids ``-1, -2, ...`` (continuing any earlier motion), no time, and zero
        corrections. For rendering only: they have no images to learn from.
        """
        count, device = int(poses.shape[0]), self.poses.device
        first = self.num_frames
        next_id = -1 - int((self.frame_ids < 0).sum())
        ids = torch.arange(next_id, next_id - count, -1, device=device)
        _, bone_transforms = rebase_to_canonical(
            self.rest_vertices, self.skinning_weights, self.rest_to_canonical, posed.bone_transforms.to(device).float()
        )
        vertices = posed.vertices.to(device).float()
        for name, value in (
            ("frame_ids", ids),
            ("trained", torch.zeros(count, dtype=torch.bool, device=device)),
            ("poses", poses.to(device).float().reshape(count, -1)),
            ("global_rotation", global_rotation.to(device).float().reshape(count, 3)),
            ("global_translation", global_translation.to(device).float().reshape(count, 3)),
            ("rest_bone_transforms", posed.bone_transforms.to(device).float()),
            ("given_bone_transforms", bone_transforms),
            ("published_bone_transforms", bone_transforms.clone()),
            ("given_vertices", vertices),
            ("published_vertices", vertices.clone()),
            ("held_depth_axes", torch.zeros(count, 3, device=device)),
        ):
            setattr(self, name, torch.cat([getattr(self, name), value]))
        appended = self._beyond_kinematics(bone_transforms, slice(first, None))
        self.beyond_kinematics = torch.cat([self.beyond_kinematics, appended])
        self.times = frame_times(self.frame_ids).to(device)
        for parameter in self.correction_parameters():
            parameter.data = torch.cat([parameter.data, parameter.data.new_zeros(count, *parameter.shape[1:])])
        self._revisions = np.concatenate([self._revisions, np.zeros(count, dtype=np.int64)])
        return torch.arange(first, self.num_frames, device=device)
