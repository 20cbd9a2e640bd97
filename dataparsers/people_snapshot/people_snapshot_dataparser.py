"""nerfstudio dataparser for PeopleSnapshot subjects as released (entry point ``people-snapshot``).

Imports only nerfstudio's ``base_dataparser``, ``scene_box`` and the plugin registry (and the ZJU-MoCap
parser's helpers, which import no more), like the ZJU-MoCap parser: nerfstudio loads this module while
its datamanager module is still initialising (shared/reference/nerfstudio-1.1.5.md §1).

The outputs hold exactly what :class:`~dataparsers.zju_mocap.zju_dataparser.ZJUMocapDataParser`'s do,
so the model cannot tell the two apart:

* ``image_filenames`` / ``mask_filenames``: one decoded video frame and its foreground mask (0/255 PNG)
  per frame of the split, from the frame cache (:mod:`.frame_cache`), downscaled copies when asked;
* ``cameras``: the one video camera (OpenGL camera-to-world in the camera.pkl world frame, OpenCV
  distortion) repeated per image, with ``times`` [N,1], ``metadata["frame_idx"]`` [N,1] (the row of
  the image's frame in the per-frame tables) and ``metadata["camera_idx"]`` [N,1] (always 0);
* ``metadata["body_frames"]``: the per-frame body state, posed once here; its rows are the sorted
  union of the train, validation and test frames; the fits are marked as estimates, so pose
  refinement is on by default;
* ``metadata["body_model_name"]``: "smpl" (or "free");
* ``metadata["masks_estimated"]``: True (the release's masks are a segmentation's).

World frame: the one ``camera.pkl`` describes, in metres (``dataparser_scale`` 1, identity transform).
videoavatars' ``create_camera.py`` puts the camera at the origin (``camera_rt = camera_t = 0``) and its
pose fitting assumes it there, so in practice the world is the camera's OpenCV frame: y down, z forward.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Sequence, Tuple, Type

import numpy as np
import torch
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from dataparsers.people_snapshot.frame_cache import FrameCache, ImageFormat, cache_frames
from dataparsers.people_snapshot.release import (
    BetasSource,
    PeopleSnapshotRelease,
    check_fitted,
    common_frame_count,
    read_release,
    subject_gender,
)
from dataparsers.people_snapshot.splits import FrameOverrides, Preset, split_frames, table_frames
from dataparsers.zju_mocap.camera_conversion import opencv_cameras, opencv_to_nerfstudio_c2w
from dataparsers.zju_mocap.capture import read_mask
from dataparsers.zju_mocap.image_cache import is_fresh, resized_size, write_mask, write_resized_image
from hfavatar_ns.body.body_frames import BodyFrames, frame_times
from hfavatar_ns.body.posing import BodyModelSpec, pose_in_batches
from hfavatar_ns.body.smpl_convention import smpl_to_easymocap
from hfavatar_ns.errors import InputError, install_excepthook


@dataclass
class PeopleSnapshotDataParserConfig(DataParserConfig):
    """PeopleSnapshot subject folder (``<subject>.mp4``, camera.pkl, masks.hdf5, reconstructed_poses.hdf5)
    -> images, masks, cameras, body."""

    _target: Type = field(default_factory=lambda: PeopleSnapshotDataParser)
    data: Path = Path("data/people_snapshot/male-3-casual")
    """The subject folder, named after its subject (male-3-casual, ...) for the standard split."""
    body_model: Literal["smpl", "free"] = "smpl"
    """Body model posed by the fits. smpl: what PeopleSnapshot was fitted with (needs --body-model-dir);
    free: the licence-free SMPL-compatible body (an approximation: its shape ignores the betas)."""
    body_model_dir: Optional[Path] = None
    """Folder with the SMPL model files (e.g. smpl/SMPL_MALE.pkl)."""
    gender: Literal["auto", "neutral", "male", "female"] = "auto"
    """SMPL gender. auto: from the subject's name (PeopleSnapshot was fitted with the gendered models), else neutral."""
    betas_from: BetasSource = "poses"
    """Body shape: poses (the betas in reconstructed_poses.hdf5 the poses were fitted with) or consensus
    (consensus.pkl's refined shape)."""
    split_preset: Preset = "auto"
    """auto (anim_nerf for a subject in the table, else default), anim_nerf (the per-subject cut of
    Anim-NeRF / InstantAvatar / 3DGS-Avatar) or default (first two thirds train, the rest test, every 4th frame)."""
    train_frame_range: Optional[Tuple[int, int]] = None
    """Training frames as a half-open range BEGIN END (0-based video frames); replaces the preset's."""
    val_frame_range: Optional[Tuple[int, int]] = None
    """Validation frames (what training evaluates on) as a half-open range BEGIN END."""
    test_frame_range: Optional[Tuple[int, int]] = None
    """Test (novel-pose) frames as a half-open range BEGIN END."""
    frame_stride: Optional[int] = None
    """Train on every n-th frame of the range; default: the preset's (4, or 6 for male-4-casual)."""
    test_frame_stride: Optional[int] = None
    """Validate and test on every n-th frame of their ranges; default: the preset's."""
    downscale_factor: int = 1
    """Hand out images downscaled by this factor (copies are written once in the cache)."""
    image_format: ImageFormat = "png"
    """Format of the decoded frames: png (lossless, ~1.5 MB per 1080p frame) or jpg (quality 95, ~10x smaller)."""
    scene_margin: float = 0.2
    """Metres added on every side of the box around all posed bodies."""
    check_masks: bool = True
    """Refuse frames of the split whose mask is empty."""
    cache_dir: Optional[Path] = None
    """Where decoded frames (and downscaled copies) go: DATA/hfavatar_cache by default, else CACHE_DIR/<subject>."""


class PeopleSnapshotDataParser(DataParser):
    """Parses a PeopleSnapshot subject. See the module docstring for what the outputs hold."""

    config: PeopleSnapshotDataParserConfig
    includes_time: bool = True

    def __init__(self, config: PeopleSnapshotDataParserConfig):
        super().__init__(config=config)
        self.downscale_factor = config.downscale_factor

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        """Images, masks and cameras of ``split``, with the per-frame body tables of every split's frames.

        Frames pair up by position across the video, the masks and the fits; where their counts
        differ (a known quirk of the release) only the common prefix is used, with a warning.
        """
        config = self.config
        release = read_release(Path(config.data), config.betas_from)
        cache = cache_frames(release, self._cache_root(release), config.image_format)
        num_frames, note = common_frame_count(cache.video_frames, release)
        if note:
            warnings.warn(note)
        overrides = FrameOverrides(
            train_frame_range=config.train_frame_range,
            val_frame_range=config.val_frame_range,
            test_frame_range=config.test_frame_range,
            frame_stride=config.frame_stride,
            test_frame_stride=config.test_frame_stride,
        )
        frames = split_frames(config.split_preset, split, release.subject, num_frames, overrides)
        table = table_frames(config.split_preset, release.subject, num_frames, overrides)
        training = split_frames(config.split_preset, "train", release.subject, num_frames, overrides)
        check_fitted(release.fits, list(table))
        if config.check_masks:
            self._check_masks(cache, frames)

        row_of_frame = {frame: row for row, frame in enumerate(table)}
        rows = [row_of_frame[f] for f in frames]
        full = (release.camera.height, release.camera.width)
        size = resized_size(*full, float(self.downscale_factor or 1))
        image_filenames, mask_filenames = self._files(cache, frames, size)
        cameras = snapshot_cameras(release, table, rows, size)

        kind = config.body_model
        gender = config.gender if config.gender != "auto" else (subject_gender(release.subject) or "neutral")
        spec = BodyModelSpec(kind, gender, None if config.body_model_dir is None else Path(config.body_model_dir))
        body = snapshot_body_frames(release, table, spec, training)
        return DataparserOutputs(
            image_filenames=image_filenames,
            cameras=cameras,
            alpha_color=None,
            scene_box=SceneBox(aabb=body.posed_bounds(margin=float(config.scene_margin))),
            mask_filenames=mask_filenames,
            dataparser_scale=1.0,
            dataparser_transform=torch.eye(4)[:3, :],
            metadata={"body_frames": body, "body_model_name": kind, "masks_estimated": True},
        )

    # ------------------------------------------------------------------------------------------

    def _cache_root(self, release: PeopleSnapshotRelease) -> Path:
        if self.config.cache_dir is None:
            return release.root / "hfavatar_cache"
        return Path(self.config.cache_dir) / release.subject

    def _check_masks(self, cache: FrameCache, frames: Sequence[int]) -> None:
        empty = sorted(set(frames) & set(cache.empty_masks))
        if empty:
            shown = ", ".join(map(str, empty[:10])) + (" ..." if len(empty) > 10 else "")
            raise InputError(
                f"The masks of frame(s) {shown} in {self.config.data / 'masks.hdf5'} are empty (no person). "
                "Leave those frames out with --train-frame-range / --test-frame-range, or pass --check-masks False."
            )

    def _files(self, cache: FrameCache, frames: Sequence[int], size: Tuple[int, int]) -> Tuple[List[Path], List[Path]]:
        """The cached frames and masks, or copies downscaled to ``size`` (written once, reused while fresh)."""
        images = [cache.image_path(f) for f in frames]
        masks = [cache.mask_path(f) for f in frames]
        if self.downscale_factor in (None, 1):
            return images, masks
        factor = self.downscale_factor
        small_images = [
            write_resized_image(path, cache.folder / f"images_{factor}" / path.with_suffix(".png").name, size)
            for path in images
        ]
        small_masks = []
        for path in masks:
            target = cache.folder / f"masks_{factor}" / path.name
            small_masks.append(target if is_fresh(target, [path]) else write_mask(read_mask(path), target, size))
        return small_images, small_masks


def snapshot_cameras(
    release: PeopleSnapshotRelease, table: Sequence[int], rows: Sequence[int], image_size: Tuple[int, int]
):
    """nerfstudio ``Cameras`` for the images of the frames at ``rows`` of ``table``: the video's one
    camera repeated, each with its frame's time and row."""
    count = len(rows)
    camera = release.camera

    def repeat(value: np.ndarray) -> np.ndarray:
        return np.repeat(value[None], count, axis=0)

    times = frame_times(list(table)).numpy()[list(rows)] if count else np.zeros(0)
    full = (camera.height, camera.width)
    return opencv_cameras(
        repeat(camera.K), repeat(camera.R), repeat(camera.T), repeat(camera.D),
        [full] * count, [image_size] * count, times, rows, [0] * count,
    )  # fmt: skip


def snapshot_body_frames(
    release: PeopleSnapshotRelease,
    frames: Sequence[int],
    body_model: BodyModelSpec,
    training_frames: Optional[Sequence[int]] = None,
) -> BodyFrames:
    """The per-frame body state of ``frames``, posed once from the release's SMPL fits.

    The fits place the body the SMPL way (``pose[:3]`` turns it about the root joint, then ``trans``);
    hfavatar poses the EasyMocap way (``Rh`` about the model origin, then ``Th``), so each fit is
    converted with the shaped body's root joint (:func:`~hfavatar_ns.body.smpl_convention.smpl_to_easymocap`).
    The fits are estimates (``fits_estimated``), which turns pose refinement on by default.
    """
    model = body_model.make()
    index = list(frames)
    shape = torch.as_tensor(release.betas, dtype=torch.float32)
    with torch.no_grad():
        rest_body = model.canonical(shape)
    smpl_poses = torch.as_tensor(release.fits.poses[index], dtype=torch.float32)
    transl = torch.as_tensor(release.fits.trans[index], dtype=torch.float32)
    poses, Rh, Th = smpl_to_easymocap(smpl_poses, transl, rest_body.joints[0])
    shapes = shape.expand(len(index), -1)
    posed = pose_in_batches(model, poses, shapes, Rh, Th)
    body = BodyFrames.from_posed(rest_body, shape, index, poses, Rh, Th, posed, body_model, training_frames)
    body.fits_estimated = True
    centre = opencv_to_nerfstudio_c2w(release.camera.R, release.camera.T)[0, :, 3]
    body.lone_training_camera = torch.as_tensor(centre, dtype=torch.float32)
    return body


install_excepthook()  # ns-* commands print our input errors as messages, not tracebacks

people_snapshot_dataparser = DataParserSpecification(
    config=PeopleSnapshotDataParserConfig(),
    description="PeopleSnapshot monocular videos as released (mp4, camera.pkl, masks and poses HDF5) with "
    "per-frame SMPL body state for HF-Avatar.",
)
