"""Which frames of a PeopleSnapshot video train, validate and test: pure functions of the subject and its length.

PeopleSnapshot has one camera, so every held-out image shows an unseen *pose*: the protocol is a cut
of the video in time. Frame ids are 0-based positions in the video (= rows of ``masks.hdf5`` and
``reconstructed_poses.hdf5``); ranges are half-open ``[begin, end)`` taken every ``stride``-th frame.

Presets:

* ``anim_nerf``: the per-subject cut Anim-NeRF introduced (its configs count frames from 1) and
  InstantAvatar and 3DGS-Avatar reuse, in :data:`ANIM_NERF_PROTOCOL`. Validation is the one frame
  where the test range starts.
* ``default``: any other subject: the first two thirds train, the rest tests (novel poses), both
  every 4th frame; validation is the first test frame.
* ``auto``: ``anim_nerf`` for a subject in the table, else ``default``.

Overrides replace a preset's pieces: ``train_frame_range`` / ``val_frame_range`` / ``test_frame_range``
its ranges, ``frame_stride`` / ``test_frame_stride`` its strides. Overriding the test range alone
moves validation to its first frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Literal, Optional, Tuple

from hfavatar_ns.errors import InputError

Preset = Literal["auto", "anim_nerf", "default"]
FrameRange = Tuple[int, int]


@dataclass(frozen=True)
class StridedRange:
    """Frames ``begin, begin + stride, ... < end``."""

    begin: int
    end: int
    stride: int

    def frames(self) -> Tuple[int, ...]:
        return tuple(range(self.begin, self.end, self.stride))


@dataclass(frozen=True)
class SnapshotProtocol:
    train: StridedRange
    val: StridedRange
    test: StridedRange


def _protocol(train: Tuple[int, int, int], val: Tuple[int, int, int], test: Tuple[int, int, int]) -> SnapshotProtocol:
    return SnapshotProtocol(StridedRange(*train), StridedRange(*val), StridedRange(*test))


ANIM_NERF_PROTOCOL: Dict[str, SnapshotProtocol] = {
    # subject:                 train (begin, end, stride)  val            test (novel poses)
    "male-3-casual": _protocol((0, 456, 4), (456, 457, 4), (456, 676, 4)),
    "male-4-casual": _protocol((0, 660, 6), (660, 661, 6), (660, 873, 6)),
    "female-3-casual": _protocol((0, 446, 4), (446, 447, 4), (446, 648, 4)),
    "female-4-casual": _protocol((0, 336, 4), (335, 336, 4), (335, 524, 4)),
}
"""Anim-NeRF ``configs/people_snapshot/*.yaml`` (1-based ids), InstantAvatar
``confs/dataset/peoplesnapshot/*.yaml`` (inclusive ends) and 3DGS-Avatar ``configs/dataset/ps_*.yaml``
(Python slices) give these same frames once written 0-based and half-open."""
DEFAULT_TRAIN_FRACTION = 2.0 / 3.0
DEFAULT_STRIDE = 4


@dataclass(frozen=True)
class FrameOverrides:
    """User choices that replace a preset's ranges or strides (``None``: keep the preset's)."""

    train_frame_range: Optional[FrameRange] = None
    val_frame_range: Optional[FrameRange] = None
    test_frame_range: Optional[FrameRange] = None
    frame_stride: Optional[int] = None
    test_frame_stride: Optional[int] = None


def resolve_preset(preset: Preset, subject: str) -> str:
    """The concrete preset ``auto`` stands for."""
    if preset == "auto":
        return "anim_nerf" if subject in ANIM_NERF_PROTOCOL else "default"
    if preset == "anim_nerf" and subject not in ANIM_NERF_PROTOCOL:
        raise InputError(
            f"The anim_nerf split preset knows the subjects {', '.join(ANIM_NERF_PROTOCOL)}, not {subject!r}. "
            "Name the folder after its subject, or use --split-preset default (first two thirds train), "
            "or give --train-frame-range BEGIN END and --test-frame-range BEGIN END."
        )
    if preset not in ("anim_nerf", "default"):
        raise InputError(f"Unknown split preset {preset!r}; choose auto, anim_nerf or default.")
    return preset


def default_protocol(num_frames: int) -> SnapshotProtocol:
    """First two thirds train, the rest test, every 4th frame; validation is the first test frame."""
    cut = min(num_frames, max(1, int(round(num_frames * DEFAULT_TRAIN_FRACTION))))
    return SnapshotProtocol(
        train=StridedRange(0, cut, DEFAULT_STRIDE),
        val=StridedRange(cut, min(cut + 1, num_frames), DEFAULT_STRIDE),
        test=StridedRange(cut, num_frames, DEFAULT_STRIDE),
    )


def subject_protocol(
    preset: Preset, subject: str, num_frames: int, overrides: FrameOverrides = FrameOverrides()
) -> SnapshotProtocol:
    """The preset's protocol for ``subject`` with the overrides applied, checked against the video's length.

    The preset's training range must fit in the video; its validation and test ranges end where the
    video does. Ranges the user gives must lie inside the video.
    """
    concrete = resolve_preset(preset, subject)
    base = ANIM_NERF_PROTOCOL[subject] if concrete == "anim_nerf" else default_protocol(num_frames)
    for stride in (overrides.frame_stride, overrides.test_frame_stride):
        if stride is not None and stride < 1:
            raise InputError(f"Frame strides must be >= 1 (got {stride}).")

    if overrides.train_frame_range is not None:
        train = _given(overrides.train_frame_range, base.train.stride, num_frames, "training", "--train-frame-range")
    elif base.train.end > num_frames:
        raise InputError(
            f"The {concrete} preset trains on frames {base.train.begin}..{base.train.end - 1} of {subject}, but only "
            f"{num_frames} frames are usable. Give the frames yourself with --train-frame-range BEGIN END."
        )
    else:
        train = base.train
    train = StridedRange(train.begin, train.end, overrides.frame_stride or train.stride)

    test_stride = overrides.test_frame_stride or base.test.stride
    if overrides.test_frame_range is not None:
        test = _given(overrides.test_frame_range, test_stride, num_frames, "test", "--test-frame-range")
    else:
        test = StridedRange(base.test.begin, min(base.test.end, num_frames), test_stride)
    if overrides.val_frame_range is not None:
        val = _given(overrides.val_frame_range, test_stride, num_frames, "validation", "--val-frame-range")
    elif overrides.test_frame_range is not None:
        val = StridedRange(test.begin, min(test.begin + 1, test.end), test_stride)
    else:
        val = StridedRange(base.val.begin, min(base.val.end, num_frames), test_stride)
    return SnapshotProtocol(train=train, val=val, test=test)


def split_frames(
    preset: Preset, split: str, subject: str, num_frames: int, overrides: FrameOverrides = FrameOverrides()
) -> Tuple[int, ...]:
    """The frames of ``split`` (``train``, ``val``, or ``test`` / ``novel_pose``), never empty."""
    protocol = subject_protocol(preset, subject, num_frames, overrides)
    ranges = {"train": protocol.train, "val": protocol.val, "test": protocol.test, "novel_pose": protocol.test}
    if split not in ranges:
        raise InputError(f"Unknown split {split!r}; choose train, val or test.")
    frames = ranges[split].frames()
    if not frames:
        option = {"train": "--train-frame-range", "val": "--val-frame-range"}.get(split, "--test-frame-range")
        raise InputError(
            f"The {split} split of {subject} has no frames: only {num_frames} frames are usable. "
            f"Give them with {option} BEGIN END."
        )
    return frames


def table_frames(
    preset: Preset, subject: str, num_frames: int, overrides: FrameOverrides = FrameOverrides()
) -> Tuple[int, ...]:
    """Sorted union of the train, validation and test frames: the rows of the per-frame body tables.

    The union keeps a frame's row the same whichever split nerfstudio parses.
    """
    protocol = subject_protocol(preset, subject, num_frames, overrides)
    frames = set(protocol.train.frames()) | set(protocol.val.frames()) | set(protocol.test.frames())
    return tuple(sorted(frames))


def _given(frame_range: FrameRange, stride: int, num_frames: int, what: str, option: str) -> StridedRange:
    begin, end = (int(v) for v in frame_range)
    if not 0 <= begin < end <= num_frames:
        raise InputError(
            f"The {what} frame range {begin} {end} ({option}, half-open) must satisfy "
            f"0 <= BEGIN < END <= {num_frames}: {num_frames} frames are usable."
        )
    return StridedRange(begin, end, stride)
