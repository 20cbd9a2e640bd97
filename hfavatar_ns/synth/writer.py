"""Make a synthetic capture and write it in the raw ZJU-MoCap layout, with ground truth beside it.

Layout (``OUT/``)::

    annots.npy                        {"cams": {"K", "R", "T" (mm), "D"}, "ims": [{"ims": [...]}, ...]}
    Camera_B{k}/{i:06d}.jpg           k = 1..num_cameras, i = 0..num_frames-1
    mask_cihp/Camera_B{k}/{i:06d}.png part labels (uint8): 0 background, 1 skin, 2 top, 3 bottom, 4 shoes, 5 hair
    new_params/{i}.npy                {"poses" (1,72), "Rh" (1,3), "Th" (1,3), "shapes" (1,10)}: the fits
                                      (exact, or with the errors the config asks for)
    new_vertices/{i}.npy              the fits' posed body model vertices, world metres
    split.json                        training cameras and frames, held-out frames (see capture_protocol)
    body_model.json                   {"kind", "gender", "generator", "preset", "seed", ...}
    ground_truth/canonical.ply        clothed subject, canonical pose (body model frame), vertex colours
    ground_truth/posed/{i:06d}.ply    clothed subject per frame, world coordinates: the faces some camera
                                      of the capture sees (see hfavatar_ns.synth.visible_surface)
    ground_truth/folds/{i:06d}.npz    the clothed torso's fold-free surface per frame, world coordinates:
                                      ``points`` [N, 3], unit ``normals`` [N, 3] and the folds' true
                                      ``displacement`` [N] along them, metres (hfavatar_ns.evaluation.fold_recovery)
    ground_truth/subject.npz          canonical vertices, faces, skinning weights, materials, skirt flags
    ground_truth/fits/{i}.npy         the exact fits (``new_params`` format)
    ground_truth/mask_cihp/...        the exact masks, when the written ones have errors
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import trimesh
from tqdm import tqdm

from hfavatar_ns.body.base import BodyModel
from hfavatar_ns.body.skinning import linear_blend_skinning
from hfavatar_ns.errors import InputError
from hfavatar_ns.synth import cameras as cam
from hfavatar_ns.synth.capture_errors import corrupt_mask, limb_end_pixels, perturb_fits
from hfavatar_ns.synth.config import LIGHTINGS, SynthConfig
from hfavatar_ns.synth.garment import PART_LABELS, ClothedSubject, build_clothed_subject
from hfavatar_ns.synth.motion import ground_translation, walking_motion
from hfavatar_ns.synth.raycast import embree_intersector, render
from hfavatar_ns.synth.texture import TextureParams, albedo
from hfavatar_ns.synth.visible_surface import fully_visible_vertices, visible_faces, visible_surface

_CHUNK = 16


@dataclass
class Sequence:
    """Everything about the capture except the images."""

    subject: ClothedSubject
    poses: np.ndarray  # (F, 72)
    Rh: np.ndarray  # (F, 3)
    Th: np.ndarray  # (F, 3)
    shapes: np.ndarray  # (10,)
    cameras: cam.RingCameras
    fits: Dict[str, np.ndarray]
    """The fits written to ``new_params``: the truth above, or the truth with errors (poses, Rh, Th, shapes)."""


def camera_name(index: int) -> str:
    """``Camera_B{index + 1}`` (ZJU-MoCap numbers cameras from 1)."""
    return f"Camera_B{index + 1}"


def _pose(body_model: BodyModel, poses, Rh, Th, shapes) -> Tuple[torch.Tensor, torch.Tensor]:
    batch = len(poses)
    posed = body_model.pose(
        torch.as_tensor(poses, dtype=torch.float32),
        torch.as_tensor(np.tile(shapes, (batch, 1)), dtype=torch.float32),
        torch.as_tensor(Rh, dtype=torch.float32),
        torch.as_tensor(Th, dtype=torch.float32),
    )
    return posed.vertices, posed.bone_transforms, posed.joints


def pose_subject(
    subject: ClothedSubject, bone_transforms: torch.Tensor, vertices: Optional[np.ndarray] = None
) -> np.ndarray:
    """Clothed subject vertices (or other canonical ``vertices`` skinned as the subject's) for a batch of
    bone transforms (canonical -> world), float64."""
    vertices = torch.as_tensor(subject.vertices if vertices is None else vertices, dtype=torch.float64)
    weights = torch.as_tensor(subject.skinning_weights, dtype=torch.float64)
    batch = bone_transforms.shape[0]
    posed = linear_blend_skinning(
        vertices.expand(batch, -1, -1), weights.expand(batch, -1, -1), bone_transforms.to(torch.float64)
    )
    return posed.numpy()


def make_sequence(config: SynthConfig, body_model: BodyModel) -> Sequence:
    """Build the subject, the motion (on the ground) and cameras that see all of it."""
    shapes = np.zeros(body_model.num_betas)
    canonical = body_model.canonical(torch.as_tensor(shapes, dtype=torch.float32))
    subject = build_clothed_subject(
        canonical.vertices.numpy(),
        canonical.faces.numpy(),
        canonical.skinning_weights.numpy(),
        canonical.joints.numpy(),
        config.seed,
        outfit=config.outfit,
        with_backpack=config.backpack,
    )
    motion = walking_motion(
        config.num_frames, config.frame_step, config.seed, config.gait_period, config.turn_period, config.path_radius
    )
    num_frames = config.num_frames
    lowest = np.zeros(num_frames)
    pelvis = np.zeros((num_frames, 2))
    samples: List[np.ndarray] = []
    stride = max(1, len(subject.vertices) // 4000)
    for start in range(0, num_frames, _CHUNK):
        frames = slice(start, min(start + _CHUNK, num_frames))
        _, bones, joints = _pose(body_model, motion.poses[frames], motion.Rh[frames], np.zeros((frames.stop - start, 3)), shapes)
        posed = pose_subject(subject, bones)
        lowest[frames] = posed[..., 2].min(axis=1)
        pelvis[frames] = joints[:, 0, :2].numpy()
        samples.append(posed[:, ::stride])
    Th = ground_translation(lowest, pelvis, motion.path)
    points = np.concatenate([s + Th[start : start + len(s), None] for start, s in zip(range(0, num_frames, _CHUNK), samples)])
    points = points.reshape(-1, 3)

    rng = np.random.default_rng([config.seed, 4])
    target = np.array([0.0, 0.0, 0.5 * points[:, 2].max()])
    R, T = cam.ring_extrinsics(config.num_cameras, target, config.camera_distance, config.camera_elevation, rng)
    size = config.resolution
    focal = cam.fit_focal_length(R, T, points, size, size, config.frame_margin)
    K = cam.intrinsics(config.num_cameras, focal, size, size, rng)
    D = cam.random_distortion(config.num_cameras, config.max_distortion, rng)
    cameras = cam.RingCameras(K=K, R=R, T=T, D=D, width=size, height=size)
    errors = config.fit_errors
    if config.body_model == "free":  # no shape space: a shape error would be a no-op passed off as one
        errors = dataclasses.replace(errors, shape=0.0)
    if errors.any:
        fits = perturb_fits(motion.poses, motion.Rh, Th, shapes, errors, config.seed)
    else:
        fits = {"poses": motion.poses, "Rh": motion.Rh, "Th": Th, "shapes": shapes}
    return Sequence(
        subject=subject, poses=motion.poses, Rh=motion.Rh, Th=Th, shapes=shapes, cameras=cameras, fits=fits
    )


def _prepare_output(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise InputError(
            f"The output folder {output_dir} is not empty. Choose a new folder, or pass --overwrite to "
            "write over it."
        )
    output_dir.mkdir(parents=True, exist_ok=True)


def _write_annots(output_dir: Path, cameras: cam.RingCameras, num_frames: int) -> None:
    names = [camera_name(c) for c in range(len(cameras))]
    annots = {
        "cams": {
            "K": [k.astype(np.float64) for k in cameras.K],
            "R": [r.astype(np.float64) for r in cameras.R],
            "T": [(t * 1000.0).reshape(3, 1) for t in cameras.T],
            "D": [d.reshape(5, 1) for d in cameras.D],
        },
        "ims": [{"ims": [f"{name}/{i:06d}.jpg" for name in names]} for i in range(num_frames)],
    }
    np.save(output_dir / "annots.npy", annots, allow_pickle=True)


def _vertex_colours(subject: ClothedSubject, params: TextureParams) -> np.ndarray:
    rgb = albedo(subject.vertices, subject.material, params)
    return np.concatenate([np.round(rgb * 255), np.full((len(rgb), 1), 255)], axis=1).astype(np.uint8)


@dataclass
class _FrameWriter:
    """Writes everything of one frame: body fit, ground-truth mesh, every camera's image and mask."""

    output_dir: Path
    config: SynthConfig
    body_model: BodyModel
    sequence: Sequence
    params: TextureParams
    directions: List[np.ndarray]
    face_bone: np.ndarray
    """The joint each face of the subject is skinned to most (which faces a mask's missing hand removes)."""

    def albedo(self, points, material):
        return albedo(points, material, self.params)

    def write(self, i: int) -> None:
        sequence, size = self.sequence, self.config.resolution
        subject, cameras = sequence.subject, sequence.cameras
        frame = slice(i, i + 1)
        _, bones, _ = _pose(self.body_model, sequence.poses[frame], sequence.Rh[frame], sequence.Th[frame], sequence.shapes)
        posed = pose_subject(subject, bones)[0]
        fits = sequence.fits
        fit_vertices, _, _ = _pose(self.body_model, fits["poses"][frame], fits["Rh"][frame], fits["Th"][frame], fits["shapes"])
        for folder, source in (("new_params", fits), ("ground_truth/fits", None)):
            values = source or {"poses": sequence.poses, "Rh": sequence.Rh, "Th": sequence.Th, "shapes": sequence.shapes}
            params_i = {
                "poses": values["poses"][frame].astype(np.float32),
                "Rh": values["Rh"][frame].astype(np.float32),
                "Th": values["Th"][frame].astype(np.float32),
                "shapes": values["shapes"][None].astype(np.float32),
            }
            np.save(self.output_dir / folder / f"{i}.npy", params_i, allow_pickle=True)
        np.save(self.output_dir / "new_vertices" / f"{i}.npy", fit_vertices[0].numpy().astype(np.float32))
        if self.config.write_posed_meshes:
            seen = visible_faces(posed, subject.faces, cameras.centres)
            visible_vertices, visible_triangles = visible_surface(posed, subject.faces, cameras.centres, seen)
            trimesh.Trimesh(visible_vertices, visible_triangles, process=False).export(
                self.output_dir / "ground_truth" / "posed" / f"{i:06d}.ply"
            )
            if subject.fold_region.any():  # a bare body has no folds to score
                fold_free_posed = pose_subject(subject, bones, subject.fold_free_vertices)[0]
                fold_free = trimesh.Trimesh(fold_free_posed, subject.faces, process=False)
                # Folds are scored where the truth is complete: torso vertices all of whose faces a camera sees.
                region = subject.fold_region & fully_visible_vertices(subject.faces, seen, len(posed))
                np.savez_compressed(
                    self.output_dir / "ground_truth" / "folds" / f"{i:06d}.npz",
                    points=fold_free.vertices[region].astype(np.float32),
                    normals=np.asarray(fold_free.vertex_normals)[region].astype(np.float32),
                    displacement=subject.fold_displacement[region].astype(np.float32),
                )

        intersector = embree_intersector(posed, subject.faces)
        vertex_normals = np.asarray(trimesh.Trimesh(posed, subject.faces, process=False).vertex_normals)
        mask_errors = self.config.mask_errors
        for c in range(len(cameras)):
            dirs = self.directions[c].astype(np.float64)
            origins = np.broadcast_to(cameras.centres[c], dirs.shape)
            colour, material, _, face = render(
                intersector, vertex_normals, subject.vertices, subject.face_material, self.albedo,
                origins, dirs, *LIGHTINGS[self.config.lighting],
            )  # fmt: skip
            image = np.round(colour.reshape(size, size, 3) * 255).astype(np.uint8)
            labels = np.where(material >= 0, PART_LABELS[np.clip(material, 0, None)], 0).astype(np.uint8)
            labels = labels.reshape(size, size)
            name = camera_name(c)
            cv2.imwrite(
                str(self.output_dir / name / f"{i:06d}.jpg"),
                image[..., ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, self.config.jpeg_quality],
            )
            if mask_errors.any:
                cv2.imwrite(str(self.output_dir / "ground_truth" / "mask_cihp" / name / f"{i:06d}.png"), labels)
                rng = np.random.default_rng([self.config.seed, 12, i, c])
                limbs = limb_end_pixels(face.reshape(size, size), self.face_bone)
                labels = corrupt_mask(labels, limbs, mask_errors, rng)
            cv2.imwrite(str(self.output_dir / "mask_cihp" / name / f"{i:06d}.png"), labels)


_FORKED_WRITER: Optional[_FrameWriter] = None
"""The writer forked workers inherit (set only while a pool runs)."""


def _single_threaded() -> None:
    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def _write_forked_frame(i: int) -> int:
    assert _FORKED_WRITER is not None
    _FORKED_WRITER.write(i)
    return i


def write_camera_video(capture_dir: Path, video_path: Path, camera: int = 0, fps: float = 10.0) -> Path:
    """One camera's frames of a written capture as an H.264 video (what a user's phone would give)."""
    from hfavatar_ns.video.frames import write_video

    annots = np.load(Path(capture_dir) / "annots.npy", allow_pickle=True).item()
    frames = (cv2.imread(str(Path(capture_dir) / row["ims"][camera]))[..., ::-1] for row in annots["ims"])
    return write_video(frames, Path(video_path), fps)


def generate_capture(
    output_dir, config: SynthConfig, overwrite: bool = False, progress: bool = True, workers: int = 1
) -> Path:
    """Make the capture described by ``config`` and write it under ``output_dir``; returns the folder.

    Deterministic: the same config (seed included) gives identical files, for any number of ``workers``
    (processes rendering frames in parallel; forked, so Linux and macOS only).
    """
    from hfavatar_ns.body.factory import make_body_model

    output_dir = Path(output_dir)
    _prepare_output(output_dir, overwrite)
    body_model = make_body_model(config.body_model, config.body_model_dir, config.gender)
    sequence = make_sequence(config, body_model)
    subject, cameras = sequence.subject, sequence.cameras
    params = TextureParams(
        seed=config.seed, skirt_axis=subject.skirt.axis, sole_height=subject.sole_height, sleeve_x=subject.sleeve_x
    )
    num_cameras, num_frames, size = len(cameras), config.num_frames, config.resolution

    folders = ["new_params", "new_vertices", "ground_truth/posed", "ground_truth/folds", "ground_truth/fits"]
    for c in range(num_cameras):
        folders += [camera_name(c), f"mask_cihp/{camera_name(c)}"]
        if config.mask_errors.any:
            folders.append(f"ground_truth/mask_cihp/{camera_name(c)}")
    for folder in folders:
        (output_dir / folder).mkdir(parents=True, exist_ok=True)
    _write_annots(output_dir, cameras, num_frames)
    trimesh.Trimesh(subject.vertices, subject.faces, vertex_colors=_vertex_colours(subject, params), process=False).export(
        output_dir / "ground_truth" / "canonical.ply"
    )
    np.savez_compressed(
        output_dir / "ground_truth" / "subject.npz",
        vertices=subject.vertices.astype(np.float32),
        faces=subject.faces.astype(np.int32),
        skinning_weights=subject.skinning_weights.astype(np.float32),
        material=subject.material.astype(np.uint8),
        is_skirt=subject.is_skirt,
    )

    frames = _FrameWriter(
        output_dir=output_dir,
        config=config,
        body_model=body_model,
        sequence=sequence,
        params=params,
        directions=[
            cam.pixel_rays(cameras.K[c], cameras.R[c], cameras.T[c], cameras.D[c], size, size)[1].astype(np.float32)
            for c in range(num_cameras)
        ],
        face_bone=subject.skinning_weights[subject.faces].sum(axis=1).argmax(axis=-1),
    )
    bar = tqdm(total=num_frames * num_cameras, desc="hfavatar-synth", unit="img", disable=not progress)
    workers = max(1, min(workers, num_frames))
    if workers == 1:
        for i in range(num_frames):
            frames.write(i)
            bar.update(num_cameras)
    else:
        # Frames are independent: fork workers that inherit the writer (the body model, the subject and
        # the ray tables are not cheap to pickle), one frame per task.
        global _FORKED_WRITER
        _FORKED_WRITER = frames
        try:
            with multiprocessing.get_context("fork").Pool(workers, initializer=_single_threaded) as pool:
                for _ in pool.imap_unordered(_write_forked_frame, range(num_frames)):
                    bar.update(num_cameras)
        finally:
            _FORKED_WRITER = None
    bar.close()

    info = {
        "kind": config.body_model,
        "gender": config.gender,
        "generator": "hfavatar-synth",
        "preset": config.preset,
        "seed": config.seed,
        "num_cameras": num_cameras,
        "num_frames": num_frames,
        "resolution": [size, size],
        "world_up": "+z",
        "exact_fits": not config.fit_errors.any,
        "exact_masks": not config.mask_errors.any,
        "part_labels": {"0": "background", "1": "skin", "2": "top", "3": "bottom (shorts, skirt)", "4": "shoes", "5": "hair"},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(config).items()},
    }
    (output_dir / "body_model.json").write_text(json.dumps(info, indent=2) + "\n")
    (output_dir / "split.json").write_text(json.dumps(capture_protocol(num_cameras, num_frames, config.monocular), indent=2) + "\n")
    return output_dir


def capture_protocol(num_cameras: int, num_frames: int, monocular: bool = False) -> Dict[str, object]:
    """The capture's train/test protocol, NeuralBody-like: 4 (or half the) cameras spread around the ring
    train on the first two thirds of the frames; the other cameras are the novel views, the last third
    of the frames the novel poses; held-out frames every k-th so each set has about four frames.

    ``monocular``: camera 0 alone trains, on the first three quarters of the frames, as the HumanNeRF
    protocol trains on one ZJU-MoCap camera; the other cameras only score novel views."""
    if monocular:
        train_cameras = [0]
        num_train_frames = max(1, int(round(num_frames * 3 / 4)))
    else:
        num_train_cameras = 4 if num_cameras >= 8 else max(1, num_cameras // 2)
        train_cameras = sorted({int(round(c)) for c in np.linspace(0, num_cameras, num_train_cameras, endpoint=False)})
        num_train_frames = max(1, int(round(num_frames * 2 / 3)))
    return {
        "train_cameras": train_cameras,
        "train_frames": [0, num_train_frames],
        "novel_pose_frames": [num_train_frames, num_frames] if num_train_frames < num_frames else None,
        "test_frame_stride": max(1, num_train_frames // 4),
    }
