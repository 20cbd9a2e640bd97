"""A small capture in the raw ZJU-MoCap layout, written independently of our reader and converter.

The body is posed with ``smplx`` directly (EasyMocap convention ``V = R(Rh) SMPL(poses, shapes) + Th``),
cameras sit on a ring with known K, R, T (stored in millimetres) and D, triangles are projected with
``cv2.projectPoints`` and the mask is the union of the projected triangles, filled one by one with
``cv2.fillPoly``. Nothing here imports ``dataparsers``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

CAMERA_NAMES_313 = [str(k) for k in list(range(1, 20)) + [22, 23]]
TIMESTAMP_313 = "2019-08-23_16-08-50.592"


def look_at(centre: np.ndarray, target: np.ndarray, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV world->camera rotation (rows: right, down, forward) of a camera at ``centre`` looking at ``target``."""
    forward = (target - centre) / np.linalg.norm(target - centre)
    right = np.cross(forward, np.asarray(up))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward])


def ring_cameras(num_cameras: int, size: Tuple[int, int], seed: int = 0, radius: float = 3.0) -> Dict[str, np.ndarray]:
    """K [N,3,3], R [N,3,3], T [N,3] (metres), D [N,5] for cameras on a ring around the origin (z up)."""
    rng = np.random.default_rng(seed)
    height, width = size
    K, R, T, D = [], [], [], []
    for index in range(num_cameras):
        angle = 2 * np.pi * index / num_cameras
        centre = np.array([radius * np.cos(angle), radius * np.sin(angle), 1.0 + 0.2 * rng.uniform(-1, 1)])
        rotation = look_at(centre, np.array([0.0, 0.0, 0.8]))
        focal = 0.95 * height * radius / 2.0
        K.append([[focal * (1 + 0.02 * rng.uniform(-1, 1)), 0, width / 2 + rng.uniform(-3, 3)],
                  [0, focal, height / 2 + rng.uniform(-3, 3)], [0, 0, 1]])  # fmt: skip
        R.append(rotation)
        T.append(-rotation @ centre)
        D.append([0.08 * rng.uniform(-1, 1), 0.03 * rng.uniform(-1, 1), 0.004 * rng.uniform(-1, 1),
                  0.004 * rng.uniform(-1, 1), 0.01 * rng.uniform(-1, 1)])  # fmt: skip
    return {key: np.asarray(value, dtype=np.float64) for key, value in dict(K=K, R=R, T=T, D=D).items()}


def smplx_world_vertices(smpl_file: Path, poses: np.ndarray, shapes: np.ndarray, Rh: np.ndarray, Th: np.ndarray):
    """World vertices [F,V,3] and faces via smplx: ``V = R(Rh) SMPL(poses, shapes) + Th``."""
    import smplx
    import torch

    model = smplx.SMPL(str(smpl_file), num_betas=10)
    with torch.no_grad():
        out = model(
            betas=torch.as_tensor(shapes, dtype=torch.float32),
            global_orient=torch.as_tensor(poses[:, :3], dtype=torch.float32),
            body_pose=torch.as_tensor(poses[:, 3:], dtype=torch.float32),
            transl=torch.zeros(len(poses), 3),
        )
    local = out.vertices.numpy().astype(np.float64)
    rotations = np.stack([cv2.Rodrigues(r.reshape(3, 1))[0] for r in Rh])
    return np.einsum("fij,fvj->fvi", rotations, local) + Th[:, None], np.asarray(model.faces, dtype=np.int64)


def rasterise_silhouette(pixels: np.ndarray, faces: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Union of the projected triangles (each filled on its own: one fillPoly call per triangle)."""
    mask = np.zeros(size, dtype=np.uint8)
    fixed = np.round(pixels * 16).astype(np.int32)  # 4 fractional bits
    for triangle in fixed[faces]:
        cv2.fillPoly(mask, [triangle], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def write_independent_zju_capture(
    root: Path,
    smpl_file: Path,
    variant: str = "B",
    num_cameras: Optional[int] = None,
    num_frames: int = 3,
    render_cameras: Optional[Sequence[int]] = None,
    render_frames: Optional[Sequence[int]] = None,
    size: Tuple[int, int] = (160, 120),
    masks: str = "mask_cihp",
    params: str = "new_params",
    seed: int = 0,
) -> Dict[str, object]:
    """Write a raw ZJU-MoCap capture at ``root`` and return its ground truth.

    Args:
        root: the subject folder to create (name it ``CoreView_<id>`` for the presets).
        smpl_file: an SMPL .pkl that ``smplx.SMPL`` reads.
        variant: "B" (``Camera_B{k}/{i:06d}.jpg``, 0-based parameter files) or "313"
            (``Camera (k)/CoreView_313_Camera_(k)_{i+1:04d}_<time>.jpg``, cameras 1..19, 22, 23, 1-based files).
        num_cameras: cameras listed in annots.npy (default: 23 for "B", 21 for "313").
        num_frames: frames listed in annots.npy and parameter files written.
        render_cameras / render_frames: the (camera index, frame) pairs whose image and mask files are
            written (default: all); the others are listed in annots.npy but absent, to keep tests fast.
        size: image (height, width).
        masks: mask folder name ("mask_cihp" or "mask"); params: "new_params" or "params".

    Returns: dict with ``K, R, T`` (metres), ``D``, ``poses, shapes, Rh, Th``, ``vertices`` [F,V,3],
    ``faces``, ``image_names`` [F][C] and ``camera_names``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if variant == "B":
        num_cameras = num_cameras or 23
        camera_names = [f"Camera_B{k + 1}" for k in range(num_cameras)]
        image_names = [[f"{camera}/{i:06d}.jpg" for camera in camera_names] for i in range(num_frames)]
        param_names = list(range(num_frames))
    elif variant == "313":
        num_cameras = num_cameras or 21
        camera_names = [f"Camera ({k})" for k in CAMERA_NAMES_313[:num_cameras]]
        image_names = [
            [
                f"Camera ({k})/CoreView_313_Camera_({k})_{i + 1:04d}_{TIMESTAMP_313}.jpg"
                for k in CAMERA_NAMES_313[:num_cameras]
            ]
            for i in range(num_frames)
        ]
        param_names = [i + 1 for i in range(num_frames)]
    else:
        raise ValueError(f"unknown variant {variant!r}")

    cameras = ring_cameras(num_cameras, size, seed)
    poses = rng.normal(scale=0.15, size=(num_frames, 72))
    poses[:, :3] = 0.0  # EasyMocap keeps the root rotation in Rh
    shapes = np.repeat(rng.normal(scale=0.5, size=(1, 10)), num_frames, axis=0)
    # a y-up body in a z-up world, turning a little from frame to frame
    upright = cv2.Rodrigues(np.array([np.pi / 2, 0.0, 0.0]))[0]
    turns = [cv2.Rodrigues(np.array([0.0, 0.3 * i, 0.0]))[0] for i in range(num_frames)]
    Rh = np.stack([cv2.Rodrigues(upright @ turn)[0][:, 0] for turn in turns])
    Th = np.concatenate([rng.uniform(-0.1, 0.1, size=(num_frames, 2)), np.full((num_frames, 1), 1.1)], axis=1)
    vertices, faces = smplx_world_vertices(smpl_file, poses, shapes, Rh, Th)

    for folder in (params, "new_vertices" if params == "new_params" else "vertices"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(param_names):
        record = {"poses": poses[i : i + 1], "Rh": Rh[i : i + 1], "Th": Th[i : i + 1], "shapes": shapes[i : i + 1]}
        np.save(root / params / f"{name}.npy", record)
        np.save(
            root / ("new_vertices" if params == "new_params" else "vertices") / f"{name}.npy",
            vertices[i].astype(np.float32),
        )

    annots = {
        "cams": {
            "K": [k for k in cameras["K"]],
            "R": [r for r in cameras["R"]],
            "T": [t.reshape(3, 1) * 1000.0 for t in cameras["T"]],  # millimetres
            "D": [d.reshape(5, 1) for d in cameras["D"]],
        },
        "ims": [{"ims": list(names), "kpts2d": np.zeros((num_cameras, 25, 3))} for names in image_names],
    }
    np.save(root / "annots.npy", annots)

    render_cameras = range(num_cameras) if render_cameras is None else render_cameras
    render_frames = range(num_frames) if render_frames is None else render_frames
    for c in render_cameras:
        rvec = cv2.Rodrigues(cameras["R"][c])[0]
        for i in render_frames:
            pixels, _ = cv2.projectPoints(vertices[i], rvec, cameras["T"][c], cameras["K"][c], cameras["D"][c])
            mask = rasterise_silhouette(pixels[:, 0], faces, size)
            image_path = root / image_names[i][c]
            mask_path = (root / masks / image_names[i][c]).with_suffix(".png")
            image_path.parent.mkdir(parents=True, exist_ok=True)
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            grey = (mask.astype(np.uint8) * 200)[..., None].repeat(3, axis=-1)
            cv2.imwrite(str(image_path), grey)
            cv2.imwrite(str(mask_path), mask.astype(np.uint8) * 13)  # a CIHP-like label value
    return dict(
        cameras,
        poses=poses,
        shapes=shapes,
        Rh=Rh,
        Th=Th,
        vertices=vertices,
        faces=faces,
        image_names=image_names,
        camera_names=camera_names,
        param_names=param_names,
    )
