"""Train/test protocols for ZJU-MoCap, as pure functions of the subject and the capture's size.

Split names:

* ``"train"``: the training images;
* ``"novel_view"``: held-out cameras on the training frames (every ``test_frame_stride``-th);
* ``"novel_pose"``: held-out cameras on unseen frames (every ``test_frame_stride``-th);
* ``"val"`` and ``"test"`` (what nerfstudio asks for) both mean the configured ``test_split``, so the
  numbers watched during training are the ones ``ns-eval`` reports; on a capture whose every camera trains
  (one camera: a user's video) and that names novel-pose frames, they mean those frames, same camera.

Presets:

* ``neuralbody``: NeuralBody's protocol (shared/reference/data-formats.md §1): training cameras 0, 6, 12, 18;
  per-subject frame ranges; novel views = the other cameras every 30th training frame; novel poses =
  the unseen-pose frames every 30th, on the other cameras. ARAH uses the same.
* ``humannerf``: HumanNeRF's monocular protocol: camera 0, frames ``[0, max_frames)``. Its held-out sets
  (ours, HumanNeRF defines none on raw ZJU): novel views = the other cameras every 30th training frame;
  novel poses = the frames after ``max_frames``, every 30th, on the other cameras.
* ``custom``: cameras and frames given explicitly.
* ``capture``: the capture's own protocol from its ``split.json`` (hfavatar-synth writes one).
* ``auto``: ``capture`` when ``split.json`` exists, else ``neuralbody`` for a known ZJU-MoCap subject.

Overrides (:class:`SplitOverrides`) apply to every preset: explicit camera/frame lists replace the
preset's; ``*_frame_range`` (half-open ``[begin, end)``) replace its ranges. ``frame_stride`` subsamples the
training frames whatever their origin; ``test_frame_stride`` subsamples the novel-view frames and
novel-pose *ranges* (explicit ``test_frames`` are used as given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Literal, Optional, Sequence, Tuple

from hfavatar_ns.errors import InputError

SplitName = Literal["train", "val", "test", "novel_view", "novel_pose"]
TestSplit = Literal["novel_view", "novel_pose"]
Preset = Literal["auto", "capture", "neuralbody", "humannerf", "custom"]
CAPTURE_SPLIT_FILE = "split.json"
"""A capture's own protocol (hfavatar-synth writes one): ``{"train_cameras": [...], "train_frames":
[begin, end], "novel_pose_frames": [begin, end] or null, "test_frame_stride": k}``."""
FrameRange = Tuple[int, int]


@dataclass(frozen=True)
class NeuralBodySubject:
    train_frames: FrameRange
    """Half-open range of training frames."""
    novel_pose_frames: Optional[FrameRange]
    """Half-open range of unseen-pose frames (None: not defined for this subject)."""


NEURALBODY_TRAIN_CAMERAS: Tuple[int, ...] = (0, 6, 12, 18)
NEURALBODY_TEST_STRIDE = 30
NEURALBODY_SUBJECTS: Dict[str, NeuralBodySubject] = {
    "313": NeuralBodySubject((0, 60), (60, 1060)),
    "315": NeuralBodySubject((0, 400), (400, 1400)),
    "377": NeuralBodySubject((0, 300), (300, 617)),
    "386": NeuralBodySubject((0, 300), (300, 646)),
    "387": NeuralBodySubject((0, 300), (300, 654)),
    "390": NeuralBodySubject((700, 1000), (0, 700)),
    "392": NeuralBodySubject((0, 300), (300, 556)),
    "393": NeuralBodySubject((0, 300), (300, 658)),
    "394": NeuralBodySubject((0, 300), (300, 859)),
    "395": NeuralBodySubject((0, 300), None),
    "396": NeuralBodySubject((810, 1350), None),
}
HUMANNERF_TRAIN_CAMERA = 0
HUMANNERF_MAX_FRAMES: Dict[str, int] = {
    "313": 1000, "315": 2000, "377": 570, "386": 540, "387": 540, "394": 475, "390": -1, "392": -1, "393": -1,
}  # fmt: skip


@dataclass(frozen=True)
class SplitOverrides:
    """User choices that replace a preset's cameras or frames (``None``: keep the preset's)."""

    train_cameras: Optional[Tuple[int, ...]] = None
    test_cameras: Optional[Tuple[int, ...]] = None
    train_frames: Optional[Tuple[int, ...]] = None
    test_frames: Optional[Tuple[int, ...]] = None
    train_frame_range: Optional[FrameRange] = None
    test_frame_range: Optional[FrameRange] = None
    frame_stride: int = 1
    test_frame_stride: Optional[int] = None
    """Held-out frames are every k-th; ``None``: the preset's (30 for ZJU-MoCap, the capture's own)."""

    @property
    def gives_frames(self) -> bool:
        return self.train_frames is not None or self.train_frame_range is not None


@dataclass(frozen=True)
class SplitSelection:
    """The cameras (indices into annots cams) and frames (0-based ids) of a split: every pair is an image."""

    cameras: Tuple[int, ...]
    frames: Tuple[int, ...]


def resolve_split_name(split: str, test_split: TestSplit = "novel_view") -> str:
    """``"train"``, ``"novel_view"`` or ``"novel_pose"`` for any split name nerfstudio or a user may ask for."""
    if split in ("val", "test"):
        return test_split
    if split in ("train", "novel_view", "novel_pose"):
        return split
    raise InputError(f"Unknown split {split!r}; choose train, val, test, novel_view or novel_pose.")


def subject_id(folder) -> Optional[str]:
    """The subject id of a capture folder named ``CoreView_<id>`` (or ``<id>``), else None."""
    match = re.fullmatch(r"(?:CoreView_|my_)?(\d+)", Path(str(folder)).name)
    return match.group(1) if match else None


# ----------------------------------------------------------------------------------------------
# presets


def neuralbody_split(
    split: str,
    subject: Optional[str],
    num_cameras: int,
    num_frames: int,
    overrides: SplitOverrides = SplitOverrides(),
    test_split: TestSplit = "novel_view",
) -> SplitSelection:
    """NeuralBody's protocol for ``subject`` (e.g. ``"377"``) on a capture of the given size."""
    if subject in NEURALBODY_SUBJECTS:
        table = NEURALBODY_SUBJECTS[subject]
        train_range, pose_range = table.train_frames, table.novel_pose_frames
    elif overrides.gives_frames:
        train_range, pose_range = None, None
    else:
        raise InputError(
            "The neuralbody split preset knows the subjects "
            f"{', '.join('CoreView_' + s for s in NEURALBODY_SUBJECTS)}, "
            f"not {('CoreView_' + subject) if subject else 'this folder'}. Name the folder after its subject, or give "
            "the frames yourself (--train-frame-range BEGIN END and --test-frame-range BEGIN END), or use "
            "--split-preset custom."
        )
    return _select(
        split, num_cameras, num_frames, NEURALBODY_TRAIN_CAMERAS, train_range, pose_range, overrides, test_split
    )


def humannerf_split(
    split: str,
    subject: Optional[str],
    num_cameras: int,
    num_frames: int,
    overrides: SplitOverrides = SplitOverrides(),
    test_split: TestSplit = "novel_view",
) -> SplitSelection:
    """HumanNeRF's monocular protocol: camera 0, frames ``[0, max_frames)`` of the subject."""
    if subject in HUMANNERF_MAX_FRAMES:
        max_frames = HUMANNERF_MAX_FRAMES[subject]
        end = num_frames if max_frames < 0 else min(max_frames, num_frames)
        train_range, pose_range = (0, end), ((end, num_frames) if end < num_frames else None)
    elif overrides.gives_frames:
        train_range, pose_range = None, None
    else:
        raise InputError(
            "The humannerf split preset knows the subjects "
            f"{', '.join('CoreView_' + s for s in HUMANNERF_MAX_FRAMES)}, "
            f"not {('CoreView_' + subject) if subject else 'this folder'}. Give the frames yourself "
            "(--train-frame-range BEGIN END) or use --split-preset custom."
        )
    return _select(
        split, num_cameras, num_frames, (HUMANNERF_TRAIN_CAMERA,), train_range, pose_range, overrides, test_split
    )


def custom_split(
    split: str,
    num_cameras: int,
    num_frames: int,
    overrides: SplitOverrides,
    test_split: TestSplit = "novel_view",
) -> SplitSelection:
    """Cameras and frames given explicitly (``train_cameras`` and training frames are required)."""
    if overrides.train_cameras is None or not overrides.gives_frames:
        raise InputError(
            "The custom split preset needs --train-cameras and --train-frames (or --train-frame-range BEGIN END); "
            "held-out images come from --test-cameras (default: the others) and --test-frames / --test-frame-range."
        )
    return _select(split, num_cameras, num_frames, (), None, None, overrides, test_split)


def capture_split(
    split: str,
    folder,
    num_cameras: int,
    num_frames: int,
    overrides: SplitOverrides = SplitOverrides(),
    test_split: TestSplit = "novel_view",
) -> SplitSelection:
    """The protocol written in the capture's ``split.json``."""
    import json

    path = Path(folder) / CAPTURE_SPLIT_FILE
    try:
        described = json.loads(path.read_text())
        train_cameras = tuple(int(c) for c in described["train_cameras"])
        train_range = tuple(int(f) for f in described["train_frames"])
        pose = described.get("novel_pose_frames")
        pose_range = tuple(int(f) for f in pose) if pose else None
        stride = int(described.get("test_frame_stride", NEURALBODY_TEST_STRIDE))
    except FileNotFoundError as error:
        raise InputError(f"The capture split preset needs {path}; use another --split-preset.") from error
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(
            f'{path} must be JSON like {{"train_cameras": [0, 2], "train_frames": [0, 20], '
            f'"novel_pose_frames": [20, 30], "test_frame_stride": 5}} ({error}). Fix it or use another --split-preset.'
        ) from error
    if overrides.test_frame_stride is None:
        overrides = replace(overrides, test_frame_stride=stride)
    return _select(split, num_cameras, num_frames, train_cameras, train_range, pose_range, overrides, test_split)  # type: ignore[arg-type]


def resolve_preset(preset: Preset, folder) -> str:
    """The concrete preset ``auto`` stands for in ``folder``."""
    if preset != "auto":
        return preset
    if (Path(folder) / CAPTURE_SPLIT_FILE).is_file():
        return "capture"
    if subject_id(folder) in NEURALBODY_SUBJECTS:
        return "neuralbody"
    raise InputError(
        f"Cannot tell which train/test protocol fits {folder}: it has no {CAPTURE_SPLIT_FILE} and is not a known "
        f"ZJU-MoCap subject ({', '.join('CoreView_' + s for s in NEURALBODY_SUBJECTS)}). Choose one: "
        "--split-preset neuralbody with --train-frame-range BEGIN END (and --test-frame-range), "
        "or --split-preset custom with --train-cameras and --train-frames."
    )


PRESETS = {"auto", "capture", "neuralbody", "humannerf", "custom"}


def select_split(
    preset: Preset,
    split: str,
    folder,
    num_cameras: int,
    num_frames: int,
    overrides: SplitOverrides = SplitOverrides(),
    test_split: TestSplit = "novel_view",
) -> SplitSelection:
    """The cameras and frames of ``split`` under ``preset`` for the capture in ``folder``."""
    preset = resolve_preset(preset, folder)  # type: ignore[assignment]
    if preset == "capture":
        return capture_split(split, folder, num_cameras, num_frames, overrides, test_split)
    if preset == "neuralbody":
        return neuralbody_split(split, subject_id(folder), num_cameras, num_frames, overrides, test_split)
    if preset == "humannerf":
        return humannerf_split(split, subject_id(folder), num_cameras, num_frames, overrides, test_split)
    if preset == "custom":
        return custom_split(split, num_cameras, num_frames, overrides, test_split)
    raise InputError(f"Unknown split preset {preset!r}; choose one of {', '.join(sorted(PRESETS))}.")


def table_frames(
    preset: Preset, folder, num_cameras: int, num_frames: int, overrides: SplitOverrides = SplitOverrides()
) -> Tuple[int, ...]:
    """Sorted union of the frames of every split the preset defines: the rows of the per-frame tables.

    Using the union of train, novel-view and novel-pose frames makes a frame's row the same in every
    split and whatever ``test_split`` is chosen later (e.g. at ``ns-eval`` time).
    """
    frames = set(select_split(preset, "train", folder, num_cameras, num_frames, overrides).frames)
    for split in ("novel_view", "novel_pose"):
        try:
            frames |= set(select_split(preset, split, folder, num_cameras, num_frames, overrides).frames)
        except InputError:
            pass  # a split this capture does not define
    return tuple(sorted(frames))


# ----------------------------------------------------------------------------------------------


def _select(
    split: str,
    num_cameras: int,
    num_frames: int,
    preset_train_cameras: Sequence[int],
    train_range: Optional[FrameRange],
    pose_range: Optional[FrameRange],
    overrides: SplitOverrides,
    test_split: TestSplit,
) -> SplitSelection:
    name = resolve_split_name(split, test_split)
    if overrides.test_frame_stride is None:
        overrides = replace(overrides, test_frame_stride=NEURALBODY_TEST_STRIDE)
    if overrides.frame_stride < 1 or overrides.test_frame_stride < 1:
        raise InputError(
            f"Frame strides must be >= 1 (got {overrides.frame_stride} and {overrides.test_frame_stride})."
        )
    train_cameras = tuple(overrides.train_cameras if overrides.train_cameras is not None else preset_train_cameras)
    _check_cameras(train_cameras, num_cameras, "training")
    if overrides.test_cameras is not None:
        test_cameras = tuple(overrides.test_cameras)
    else:
        test_cameras = tuple(c for c in range(num_cameras) if c not in train_cameras)
    _check_cameras(test_cameras, num_cameras, "held-out")

    if overrides.train_frames is not None:
        train_frames = tuple(overrides.train_frames)
    else:
        begin, end = overrides.train_frame_range or train_range  # type: ignore[misc]
        if end > num_frames and overrides.train_frame_range is None:
            raise InputError(
                f"The preset's training frames are {begin}..{end - 1}, but the capture has only {num_frames} frames. "
                "Give the frames yourself with --train-frame-range BEGIN END."
            )
        train_frames = tuple(range(begin, end))
    _check_frames(train_frames, num_frames, "training")
    train_frames = train_frames[:: overrides.frame_stride]

    if name == "train":
        return SplitSelection(train_cameras, train_frames)
    held_out_frames = pose_range is not None or overrides.test_frames is not None or overrides.test_frame_range is not None
    if not test_cameras and held_out_frames and (name == "novel_pose" or split in ("val", "test")):
        # A capture whose every camera trains (one camera: a user's video): only later frames are held out,
        # seen by the same cameras.
        test_cameras, name = train_cameras, "novel_pose"
    if not test_cameras:
        raise InputError(
            f"The {name} split has no held-out cameras: every camera trains. Pass --test-cameras"
            + (", or evaluate held-out frames with --test-split novel_pose." if name == "novel_view" else ".")
        )
    if name == "novel_view":
        return SplitSelection(test_cameras, train_frames[:: overrides.test_frame_stride])
    if overrides.test_frames is not None:
        pose_frames = tuple(overrides.test_frames)
    elif overrides.test_frame_range is not None or pose_range is not None:
        begin, end = overrides.test_frame_range or pose_range  # type: ignore[misc]
        if overrides.test_frame_range is None:
            end = min(end, num_frames)  # the table's ranges end where the capture does
        pose_frames = tuple(range(begin, end, overrides.test_frame_stride))
    else:
        pose_frames = ()
    if not pose_frames:
        raise InputError(
            "The novel_pose split has no frames for this capture; give them with --test-frames or "
            "--test-frame-range BEGIN END, or evaluate --test-split novel_view."
        )
    _check_frames(pose_frames, num_frames, "novel-pose")
    return SplitSelection(test_cameras, pose_frames)


def _check_cameras(cameras: Sequence[int], num_cameras: int, what: str) -> None:
    bad = [c for c in cameras if not 0 <= c < num_cameras]
    if bad:
        raise InputError(
            f"The {what} camera index {bad[0]} does not exist: the capture has {num_cameras} cameras (indices "
            f"0..{num_cameras - 1} into annots.npy). Choose cameras with --train-cameras / --test-cameras."
        )


def _check_frames(frames: Sequence[int], num_frames: int, what: str) -> None:
    if not frames:
        raise InputError(f"The {what} frame list is empty; give frames with --train-frames / --train-frame-range.")
    bad = [f for f in frames if not 0 <= f < num_frames]
    if bad:
        raise InputError(
            f"The {what} frame {bad[0]} is out of range: the capture has {num_frames} frames (ids 0..{num_frames - 1})."
        )
