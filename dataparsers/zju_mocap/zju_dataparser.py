"""nerfstudio dataparser for raw ZJU-MoCap captures (entry point ``zju-mocap``).

Imports only nerfstudio's ``base_dataparser``, ``cameras`` and ``scene_box`` (never datamanagers,
pipelines or method configs): nerfstudio loads this module while its datamanager module is still
initialising, and anything more makes a circular import (shared/reference/nerfstudio-1.1.5.md §1).

What the outputs hold:

* ``image_filenames`` / ``mask_filenames``: one entry per (frame, camera) of the split, frame-major;
  masks are the foreground masks (``mask_cihp``, ``mask`` or their union), not painted into images
  (``metadata["mask_color"]`` is never set; ``alpha_color`` is None).
* ``cameras``: OpenGL camera-to-world in the capture's world frame, with OpenCV distortion; per image
  ``times`` [N,1] (frame id normalised to [0,1] over the table frames) and
  ``metadata["frame_idx"]`` [N,1] (the row of the image's frame in the per-frame tables) and
  ``metadata["camera_idx"]`` [N,1] (index into annots.npy's cameras).
* ``metadata["body_frames"]``: the per-frame body state (:class:`~hfavatar_ns.body.body_frames.BodyFrames`),
  posed once here with the body model. Its rows are the *table frames*: the sorted union of the frames of every split the preset defines
  (train, novel view and novel pose), so a ``frame_idx`` means the same frame in every split.
* ``metadata["body_model_name"]``: "smpl" or "free".
* ``metadata["masks_estimated"]``: False only where the capture declares its masks exact
  (``"exact_masks": true`` in ``body_model.json``); every real capture's masks are a segmentation's.
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

from dataparsers.zju_mocap.camera_conversion import make_cameras, opencv_to_nerfstudio_c2w
from dataparsers.zju_mocap.capture import (
    MasksChoice,
    ParamsChoice,
    ZJUCapture,
    check_camera_indices,
    check_capture_files,
    load_annots,
    read_capture,
    read_capture_mask,
    read_mask_values,
)
from dataparsers.zju_mocap.image_cache import resized_size, write_mask, write_resized_image
from dataparsers.zju_mocap.splits import Preset, SplitOverrides, TestSplit, select_split, table_frames
from hfavatar_ns.body.body_frames import BodyFrames
from hfavatar_ns.body.factory import capture_declares_exact_fits, capture_declares_exact_masks
from hfavatar_ns.body.posing import BodyModelSpec
from hfavatar_ns.errors import InputError, install_excepthook

VERTEX_MISMATCH_WARN_M = 0.02


@dataclass
class ZJUMocapDataParserConfig(DataParserConfig):
    """Raw ZJU-MoCap subject folder (``CoreView_<id>`` with annots.npy) -> images, masks, cameras, body."""

    _target: Type = field(default_factory=lambda: ZJUMocapDataParser)
    data: Path = Path("data/zju_mocap/CoreView_377")
    """The subject folder holding annots.npy, the camera folders, new_params/ and mask_cihp/."""
    body_model: Literal["auto", "free", "smpl"] = "auto"
    """Body model posed by the parameters. auto: the capture's body_model.json ({"kind", "gender"}) or else smpl."""
    body_model_dir: Optional[Path] = None
    """Folder with the SMPL model files (e.g. smpl/SMPL_NEUTRAL.pkl); needed for smpl."""
    gender: Literal["neutral", "male", "female"] = "neutral"
    """SMPL gender (ZJU-MoCap was fitted with the neutral model). With body_model auto, body_model.json's wins."""
    split_preset: Preset = "auto"
    """auto (the capture's split.json, else neuralbody for a known subject), capture (split.json), neuralbody
    (cameras 0,6,12,18; per-subject frames), humannerf (monocular camera 0) or custom."""
    train_cameras: Optional[Tuple[int, ...]] = None
    """Training camera indices into annots.npy (0 = Camera_B1 / Camera (1)); replaces the preset's."""
    test_cameras: Optional[Tuple[int, ...]] = None
    """Held-out camera indices; default: every camera that does not train."""
    train_frames: Optional[Tuple[int, ...]] = None
    """Training frame ids (0-based positions in annots.npy), used as given; replaces the preset's."""
    test_frames: Optional[Tuple[int, ...]] = None
    """Novel-pose frame ids, used as given; replaces the preset's."""
    train_frame_range: Optional[Tuple[int, int]] = None
    """Training frames as a half-open range BEGIN END; replaces the preset's."""
    test_frame_range: Optional[Tuple[int, int]] = None
    """Novel-pose frames as a half-open range BEGIN END (taken every test_frame_stride-th)."""
    frame_stride: int = 1
    """Use every n-th training frame."""
    test_frame_stride: Optional[int] = None
    """Use every n-th frame of the held-out frame ranges; default: the preset's (NeuralBody: 30)."""
    test_split: TestSplit = "novel_view"
    """What nerfstudio's "val" and "test" splits evaluate: novel_view or novel_pose."""
    downscale_factor: int = 1
    """Hand out images downscaled by this factor (copies are written once under cache_dir)."""
    params: ParamsChoice = "auto"
    """SMPL parameter folder: new_params (refit with pose blend shapes), params, or auto (new_params if present)."""
    masks: MasksChoice = "auto"
    """Mask folder: mask_cihp (NeuralBody), mask, union (both OR-ed, HumanNeRF) or auto (mask_cihp if present)."""
    scene_margin: float = 0.2
    """Metres added on every side of the box around all posed bodies."""
    check_masks: bool = True
    """Read every mask of the split at parse time and refuse empty or wrongly sized ones."""
    cache_dir: Optional[Path] = None
    """Where resized images and merged masks are written; default: DATA/hfavatar_cache."""


class ZJUMocapDataParser(DataParser):
    """Parses a raw ZJU-MoCap capture. See the module docstring for what the outputs hold."""

    config: ZJUMocapDataParserConfig
    includes_time: bool = True

    def __init__(self, config: ZJUMocapDataParserConfig):
        super().__init__(config=config)
        self.downscale_factor = config.downscale_factor

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        """Images, masks and cameras of ``split``, with the per-frame body tables of the whole capture.

        The outputs stay in the capture's world frame, in metres: ``dataparser_scale`` 1 and an identity
        ``dataparser_transform``, so fitted meshes, body vertices and cameras overlay the capture directly
        (and exported geometry compares with ground truth without undoing a normalisation). The scene box
        bounds every posed body of the table frames plus ``scene_margin``.
        """
        config = self.config
        root = Path(config.data)
        cams, names = load_annots(root)
        num_cameras, num_frames = len(cams["K"]), len(names)
        camera_names = [Path(name).parts[0] for name in names[0]]
        for chosen in (config.train_cameras, config.test_cameras):
            if chosen is not None:
                check_camera_indices(chosen, camera_names, root / "annots.npy")
        overrides = SplitOverrides(
            train_cameras=config.train_cameras,
            test_cameras=config.test_cameras,
            train_frames=config.train_frames,
            test_frames=config.test_frames,
            train_frame_range=config.train_frame_range,
            test_frame_range=config.test_frame_range,
            frame_stride=config.frame_stride,
            test_frame_stride=config.test_frame_stride,
        )
        selection = select_split(
            config.split_preset, split, root, num_cameras, num_frames, overrides, config.test_split
        )
        frames = table_frames(config.split_preset, root, num_cameras, num_frames, overrides)
        capture = read_capture(
            root, list(selection.cameras), list(frames), params=config.params, masks=config.masks, check_files=False
        )
        row_of_frame = {frame: row for row, frame in enumerate(capture.frame_indices)}
        images = [(row_of_frame[f], c) for f in selection.frames for c in range(len(selection.cameras))]
        check_capture_files(capture, images, config.masks)

        downscale = float(self.downscale_factor or 1)
        sizes = [resized_size(*capture.image_size(c, f), downscale) for f, c in images]
        image_filenames = self._image_files(capture, images, sizes, downscale)
        mask_filenames = self._mask_files(capture, images, sizes, downscale)
        cameras = make_cameras(capture, [f for f, _ in images], [c for _, c in images], image_sizes=sizes)

        kind, gender = self._body_model_choice(root)
        training = select_split(config.split_preset, "train", root, num_cameras, num_frames, overrides)
        body = capture_body_frames(capture, kind, config.body_model_dir, gender, training.frames)
        if len(training.cameras) == 1:
            lone = training.cameras[0]
            centre = opencv_to_nerfstudio_c2w(cams["R"][lone], cams["T"][lone])[0, :, 3]
            body.lone_training_camera = torch.as_tensor(centre, dtype=torch.float32)
        aabb = body.posed_bounds(margin=float(config.scene_margin))
        return DataparserOutputs(
            image_filenames=image_filenames,
            cameras=cameras,
            alpha_color=None,
            scene_box=SceneBox(aabb=aabb),
            mask_filenames=mask_filenames,
            dataparser_scale=1.0,
            dataparser_transform=torch.eye(4)[:3, :],
            metadata={
                "body_frames": body, "body_model_name": kind, "masks_estimated": not capture_declares_exact_masks(root)
            },  # fmt: skip
        )

    # ------------------------------------------------------------------------------------------

    def _body_model_choice(self, root: Path) -> Tuple[str, str]:
        from hfavatar_ns.body.factory import capture_body_model_choice

        return capture_body_model_choice(root, self.config.body_model, self.config.gender)

    def _cache_root(self) -> Path:
        return (
            Path(self.config.cache_dir)
            if self.config.cache_dir is not None
            else Path(self.config.data) / "hfavatar_cache"
        )

    def _image_files(self, capture: ZJUCapture, images, sizes, downscale: float) -> List[Path]:
        paths = [capture.image_paths[f][c] for f, c in images]
        if downscale == 1.0:
            return paths
        folder = self._cache_root() / f"images_{self.downscale_factor}"
        return [
            write_resized_image(path, folder / path.relative_to(capture.root).with_suffix(".png"), size)
            for path, size in zip(paths, sizes)
        ]

    def _mask_files(self, capture: ZJUCapture, images, sizes, downscale: float) -> List[Path]:
        """Mask files as nerfstudio will read them; checks (and, if needed, converts) each mask of the split."""
        copy_all = downscale != 1.0 or capture.mask_dir == "union"
        folder = self._cache_root() / f"{capture.mask_dir}_{self.downscale_factor}"
        out = []
        for (f, c), size in zip(images, sizes):
            source = capture.mask_paths[f][c]
            if not (self.config.check_masks or copy_all):
                out.append(source)
                continue
            mask = read_capture_mask(capture, f, c)
            full = capture.image_size(c, f)
            if mask.shape != full:
                raise InputError(
                    f"The mask {source} is {mask.shape[1]}x{mask.shape[0]} but its image {capture.image_paths[f][c]} "
                    f"is {full[1]}x{full[0]}. Masks must match their images pixel for pixel."
                )
            if not mask.any():
                raise InputError(
                    f"The mask {source} is empty (all zero) for an image of the {capture.camera_names[c]} camera "
                    f"in the selected split. Repair the mask, pick another mask folder with --masks, or leave out "
                    f"frame {capture.frame_indices[f]} (--train-frames / --test-frames)."
                )
            if copy_all or read_mask_values(source).ndim == 3:
                target = folder / source.relative_to(capture.root / capture.mask_dirs[0])
                out.append(write_mask(mask, target, size))
            else:
                out.append(source)
        return out


def capture_body_frames(
    capture: ZJUCapture,
    kind: str,
    body_model_dir: Optional[Path],
    gender: str,
    training_frame_ids: Optional[Sequence[int]] = None,
) -> BodyFrames:
    """The per-frame body state of every frame of ``capture``, posed once with the body model.

    Warns when the shape changes between frames (the body takes the first frame's) and when the posed
    body strays from fitted vertices stored beside the parameters (a wrong ``--params`` or gender).
    """
    params = {key: torch.as_tensor(value, dtype=torch.float32) for key, value in capture.params.items()}
    shapes = params["shapes"]
    if (shapes - shapes[:1]).abs().max() > 1e-5:
        warnings.warn(
            f"The shape parameters in {capture.params_dir} change between frames; the canonical body uses "
            f"frame {capture.frame_indices[0]}'s shape."
        )
    body = BodyFrames.from_parameters(
        BodyModelSpec(kind, gender, None if body_model_dir is None else Path(body_model_dir)),
        capture.frame_indices, params["poses"], shapes, params["Rh"], params["Th"], training_frame_ids,
    )  # fmt: skip
    body.fits_estimated = not capture_declares_exact_fits(capture.root)
    posed_vertices = body.given_vertices
    if capture.vertices is not None and capture.vertices.shape[1:] == posed_vertices.shape[1:]:
        error = float(np.abs(capture.vertices - posed_vertices.numpy()).max())
        if error > VERTEX_MISMATCH_WARN_M:
            warnings.warn(
                f"The {kind} body posed from {capture.params_dir} is up to {error * 100:.1f} cm away from the fitted "
                f"vertices next to it; check --params (new_params pairs with new_vertices) and --gender."
            )
    return body


install_excepthook()  # ns-* commands print our input errors as messages, not tracebacks

zju_mocap_dataparser = DataParserSpecification(
    config=ZJUMocapDataParserConfig(),
    description="Raw ZJU-MoCap captures (NeuralBody layout) with per-frame SMPL/free body state for HF-Avatar.",
)
