"""How far body fits are from the truth: joint-rotation angles and posed-vertex distances.

Used by ``hfavatar-check`` (a capture's written fits against ``ground_truth/fits``) and by the
robustness benchmark (given and refined fits against the truth).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.body.skinning import axis_angle_to_matrix

FIT_KEYS = ("poses", "Rh", "Th", "shapes")


def rotation_angle_deg(first: Float[Tensor, "*b 3"], second: Float[Tensor, "*b 3"]) -> Float[Tensor, "*b"]:
    """Angle of the rotation taking axis-angle ``second`` to ``first`` (degrees, in [0, 180])."""
    return matrix_angle_deg(axis_angle_to_matrix(first.double()), axis_angle_to_matrix(second.double()))


def matrix_angle_deg(first: Float[Tensor, "*b 3 3"], second: Float[Tensor, "*b 3 3"]) -> Float[Tensor, "*b"]:
    """Angle of the rotation taking matrix ``second`` to ``first`` (degrees, in [0, 180])."""
    relative = first.double() @ second.double().transpose(-1, -2)
    cosine = ((relative.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cosine))


def body_orientation(poses: Float[Tensor, "F 72"], global_rotation: Float[Tensor, "F 3"]) -> Float[Tensor, "F 3 3"]:
    """The body's orientation in the world: ``Rh`` after the root joint's own rotation. Fits may put the
    orientation in either (EasyMocap keeps the root's pose at zero; pose refinement may move either)."""
    return axis_angle_to_matrix(global_rotation.double()) @ axis_angle_to_matrix(poses[:, :3].double())


@dataclass
class FitErrors:
    """Mean errors of fits against the truth over the frames compared."""

    joint_angle_deg: float
    """Mean rotation error of the 23 body joints (the root's rotation is ``Rh``)."""
    global_rotation_deg: float
    """Mean error of the body's orientation (``Rh`` after the root joint's rotation)."""
    translation_mm: float
    """Mean error of ``Th``."""
    vertex_mm: float
    """Mean distance of the posed body's vertices from the true posed body's."""
    vertex_max_mm: float
    """Largest vertex distance over every frame compared."""
    frames: int

    def as_dict(self) -> Dict[str, float]:
        return asdict(self)


def fit_errors(
    body_model,
    fits: Dict[str, Float[Tensor, "F D"]],
    truth: Dict[str, Float[Tensor, "F D"]],
) -> FitErrors:
    """Compare fits with the true ones frame by frame (``poses`` ``[F, 72]``, ``Rh``/``Th`` ``[F, 3]``,
    ``shapes`` ``[F, B]``); both are posed with ``body_model``."""
    from hfavatar_ns.body.posing import pose_in_batches

    fits = {key: torch.as_tensor(fits[key]).float() for key in FIT_KEYS}
    truth = {key: torch.as_tensor(truth[key]).float() for key in FIT_KEYS}
    count = fits["poses"].shape[0]
    joints = rotation_angle_deg(fits["poses"].reshape(count, 24, 3)[:, 1:], truth["poses"].reshape(count, 24, 3)[:, 1:])
    global_rotation = matrix_angle_deg(
        body_orientation(fits["poses"], fits["Rh"]), body_orientation(truth["poses"], truth["Rh"])
    )
    translation = (fits["Th"] - truth["Th"]).norm(dim=-1) * 1000.0
    with torch.no_grad():
        posed = pose_in_batches(body_model, fits["poses"], fits["shapes"], fits["Rh"], fits["Th"]).vertices
        true_posed = pose_in_batches(body_model, truth["poses"], truth["shapes"], truth["Rh"], truth["Th"]).vertices
    vertex = (posed - true_posed).norm(dim=-1) * 1000.0
    return FitErrors(
        joint_angle_deg=float(joints.mean()),
        global_rotation_deg=float(global_rotation.mean()),
        translation_mm=float(translation.mean()),
        vertex_mm=float(vertex.mean()),
        vertex_max_mm=float(vertex.max()),
        frames=count,
    )


def read_true_fits(capture_root: Path, frame_ids: Sequence[int]) -> Dict[str, Tensor] | None:
    """hfavatar-synth's exact fits (``ground_truth/fits/{id}.npy``) of the frames, or ``None`` without them."""
    folder = Path(capture_root) / "ground_truth" / "fits"
    paths = [folder / f"{int(frame_id)}.npy" for frame_id in frame_ids]
    if not paths or not all(path.is_file() for path in paths):
        return None
    loaded = [np.load(path, allow_pickle=True).item() for path in paths]
    return {key: torch.as_tensor(np.concatenate([np.asarray(p[key]).reshape(1, -1) for p in loaded])) for key in FIT_KEYS}
