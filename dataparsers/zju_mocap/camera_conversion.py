"""OpenCV (ZJU-MoCap) cameras <-> nerfstudio cameras, and OpenCV point projection.

Conventions:

* OpenCV / ZJU: ``x_cam = R x_world + T`` (world->camera), camera looks along +z, y down; pixel
  ``u = fx * x_distorted + cx`` with pixel centres at integer coordinates.
* nerfstudio: ``camera_to_worlds`` [N,3,4] in OpenGL axes (x right, y up, looks along -z); the centre
  of pixel (row i, col j) is at ``(i + 0.5, j + 0.5)``, so ``cx_ns = cx_cv + 0.5``. With that shift,
  resizing an image by ``s`` scales ``fx, fy, cx, cy`` by exactly ``s``.
* Distortion: ZJU ``D = (k1, k2, p1, p2, k3)``; nerfstudio ``(k1, k2, k3, k4, p1, p2)`` with ``k4 = 0``.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch

from dataparsers.zju_mocap.capture import ZJUCapture
from hfavatar_ns.body.body_frames import frame_times

PIXEL_CENTRE_SHIFT = 0.5
_OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])


def opencv_to_nerfstudio_c2w(R: np.ndarray, T: np.ndarray) -> np.ndarray:
    """[N,3,4] OpenGL camera->world matrices from OpenCV world->camera ``R`` [N,3,3] and ``T`` [N,3] (metres)."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    T = np.asarray(T, dtype=np.float64).reshape(-1, 3)
    rotation = np.transpose(R, (0, 2, 1))  # camera->world, OpenCV axes
    centre = -(rotation @ T[..., None])[..., 0]
    return np.concatenate([rotation @ _OPENCV_TO_OPENGL, centre[..., None]], axis=-1)


def nerfstudio_c2w_to_opencv(c2w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`opencv_to_nerfstudio_c2w`: ``(R [N,3,3], T [N,3])`` world->camera, OpenCV axes."""
    c2w = np.asarray(c2w, dtype=np.float64).reshape(-1, 3, 4)
    rotation = c2w[:, :, :3] @ _OPENCV_TO_OPENGL
    R = np.transpose(rotation, (0, 2, 1))
    T = -(R @ c2w[:, :, 3:])[..., 0]
    return R, T


def zju_distortion_to_nerfstudio(D: np.ndarray) -> np.ndarray:
    """[N,6] nerfstudio ``(k1, k2, k3, k4=0, p1, p2)`` from [N,5] OpenCV ``(k1, k2, p1, p2, k3)``."""
    D = np.asarray(D, dtype=np.float64).reshape(-1, 5)
    zeros = np.zeros(len(D))
    return np.stack([D[:, 0], D[:, 1], D[:, 4], zeros, D[:, 2], D[:, 3]], axis=-1)


def nerfstudio_distortion_to_zju(params: np.ndarray) -> np.ndarray:
    """[N,5] OpenCV ``(k1, k2, p1, p2, k3)`` from nerfstudio's [N,6] (``k4`` must be 0: OpenCV has no r^8 term)."""
    params = np.asarray(params, dtype=np.float64).reshape(-1, 6)
    if np.abs(params[:, 3]).max(initial=0.0) > 0:
        raise ValueError("k4 (r^8 radial term) has no counterpart in OpenCV's 5-parameter model.")
    return np.stack([params[:, 0], params[:, 1], params[:, 4], params[:, 5], params[:, 2]], axis=-1)


def opencv_to_nerfstudio_intrinsics(K: np.ndarray, scale_x: float = 1.0, scale_y: float = 1.0) -> np.ndarray:
    """[N,4] ``fx, fy, cx, cy`` in nerfstudio's pixel convention for images resized by ``scale_x, scale_y``."""
    K = np.asarray(K, dtype=np.float64).reshape(-1, 3, 3)
    return np.stack(
        [
            K[:, 0, 0] * scale_x,
            K[:, 1, 1] * scale_y,
            (K[:, 0, 2] + PIXEL_CENTRE_SHIFT) * scale_x,
            (K[:, 1, 2] + PIXEL_CENTRE_SHIFT) * scale_y,
        ],
        axis=-1,
    )


def nerfstudio_to_opencv_intrinsics(fx, fy, cx, cy) -> np.ndarray:
    """[N,3,3] OpenCV ``K`` from nerfstudio ``fx, fy, cx, cy`` (each [N] or [N,1])."""
    fx, fy, cx, cy = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (fx, fy, cx, cy))
    K = np.zeros((len(fx), 3, 3))
    K[:, 0, 0], K[:, 1, 1] = fx, fy
    K[:, 0, 2], K[:, 1, 2] = cx - PIXEL_CENTRE_SHIFT, cy - PIXEL_CENTRE_SHIFT
    K[:, 2, 2] = 1.0
    return K


def project_points(
    K: np.ndarray, R: np.ndarray, T: np.ndarray, D: np.ndarray, points: np.ndarray
) -> Tuple[np.ndarray, np.ndarray]:
    """Project world points through OpenCV cameras (the model of ``cv2.projectPoints``).

    Args:
        K: [N,3,3] intrinsics (pixels), or [3,3] for one camera.
        R: [N,3,3] world->camera rotations.
        T: [N,3] world->camera translations (same unit as ``points``).
        D: [N,5] distortion ``k1, k2, p1, p2, k3``.
        points: [P,3] world points shared by all cameras, or [N,P,3] per camera.

    Returns:
        pixels: [N,P,2] ``(u, v)`` OpenCV pixel coordinates (centres at integers), [P,2] for one camera.
        depth: [N,P] camera-space z (negative: behind the camera, where the pixels mean nothing).
    """
    single = np.asarray(K).ndim == 2
    K, R = np.asarray(K, np.float64).reshape(-1, 3, 3), np.asarray(R, np.float64).reshape(-1, 3, 3)
    T, D = np.asarray(T, np.float64).reshape(-1, 3), np.asarray(D, np.float64).reshape(-1, 5)
    points = np.asarray(points, np.float64)
    if points.ndim == 2:
        points = np.broadcast_to(points, (len(K), *points.shape))
    camera = np.einsum("nij,npj->npi", R, points) + T[:, None]
    depth = camera[..., 2]
    x, y = camera[..., 0] / depth, camera[..., 1] / depth
    k1, k2, p1, p2, k3 = (D[:, i : i + 1] for i in range(5))
    r2 = x * x + y * y
    radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3))
    xd = x * radial + 2.0 * p1 * x * y + p2 * (r2 + 2.0 * x * x)
    yd = y * radial + p1 * (r2 + 2.0 * y * y) + 2.0 * p2 * x * y
    u = K[:, 0:1, 0] * xd + K[:, 0:1, 2]  # skew ignored, like cv2.projectPoints and nerfstudio
    v = K[:, 1:2, 1] * yd + K[:, 1:2, 2]
    pixels = np.stack([u, v], axis=-1)
    return (pixels[0], depth[0]) if single else (pixels, depth)


def cameras_to_opencv(cameras) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(K, R, T, D)`` in OpenCV conventions from flat nerfstudio ``Cameras`` (inverse of :func:`make_cameras`)."""
    K = nerfstudio_to_opencv_intrinsics(cameras.fx.numpy(), cameras.fy.numpy(), cameras.cx.numpy(), cameras.cy.numpy())
    R, T = nerfstudio_c2w_to_opencv(cameras.camera_to_worlds.numpy())
    if cameras.distortion_params is None:
        D = np.zeros((len(K), 5))
    else:
        D = nerfstudio_distortion_to_zju(cameras.distortion_params.numpy())
    return K, R, T, D


def opencv_cameras(
    K: np.ndarray,
    R: np.ndarray,
    T: np.ndarray,
    D: np.ndarray,
    full_sizes: Sequence[Tuple[int, int]],
    image_sizes: Sequence[Tuple[int, int]],
    times: np.ndarray,
    frame_rows: Sequence[int],
    camera_indices: Sequence[int],
):
    """nerfstudio ``Cameras`` for N images from their OpenCV cameras: the one place both dataparsers
    (ZJU-MoCap, PeopleSnapshot) turn OpenCV calibrations into what the model reads.

    Args:
        K: [N,3,3] intrinsics of the full-resolution images (OpenCV: pixel centres at integers).
        R: [N,3,3] world->camera rotations.
        T: [N,3] world->camera translations (metres).
        D: [N,5] distortion ``k1, k2, p1, p2, k3``.
        full_sizes: per image, ``(height, width)`` that ``K`` describes.
        image_sizes: per image, ``(height, width)`` of the file handed out (intrinsics scale by the ratio).
        times: [N] normalised frame time of each image (``Cameras.times``).
        frame_rows: per image, the row of its frame in the per-frame body tables (``metadata["frame_idx"]``).
        camera_indices: per image, the capture's index of its camera (``metadata["camera_idx"]``).
    """
    from nerfstudio.cameras.cameras import Cameras, CameraType

    scale_x = np.array([size[1] / full[1] for size, full in zip(image_sizes, full_sizes)])
    scale_y = np.array([size[0] / full[0] for size, full in zip(image_sizes, full_sizes)])
    intrinsics = opencv_to_nerfstudio_intrinsics(K, scale_x, scale_y)
    c2w = opencv_to_nerfstudio_c2w(R, T)
    distortion = zju_distortion_to_nerfstudio(D)

    def column(values, dtype=torch.float32):
        return torch.as_tensor(np.asarray(values), dtype=dtype).reshape(-1, 1)

    return Cameras(
        camera_to_worlds=torch.as_tensor(c2w, dtype=torch.float32),
        fx=column(intrinsics[:, 0]),
        fy=column(intrinsics[:, 1]),
        cx=column(intrinsics[:, 2]),
        cy=column(intrinsics[:, 3]),
        width=column([size[1] for size in image_sizes], torch.long),
        height=column([size[0] for size in image_sizes], torch.long),
        distortion_params=torch.as_tensor(distortion, dtype=torch.float32),
        camera_type=CameraType.PERSPECTIVE,
        times=column(times),
        metadata={
            "frame_idx": column(list(frame_rows), torch.long),
            "camera_idx": column(list(camera_indices), torch.long),
        },
    )


def make_cameras(
    capture: ZJUCapture,
    frame_rows: Sequence[int],
    camera_rows: Sequence[int],
    image_sizes: Sequence[Tuple[int, int]] | None = None,
    downscale: float = 1.0,
):
    """nerfstudio ``Cameras`` for a list of images, one image = (frame row, camera row) of ``capture``.

    Args:
        capture: the capture whose per-frame tables the rows index.
        frame_rows: per image, the row into ``capture.frame_indices`` (and every per-frame table);
            stored as ``metadata["frame_idx"]`` [N,1].
        camera_rows: per image, the row into the capture's cameras; the annots index is stored as
            ``metadata["camera_idx"]`` [N,1].
        image_sizes: per image ``(height, width)`` of the files the dataparser hands out; ``None``: the
            full-resolution size divided by ``downscale`` (rounded).
        downscale: full-resolution size / handed-out size (intrinsics scale by the actual size ratio).

    ``times`` [N,1] is the image's frame id normalised to [0, 1] over the capture's frame range.
    """
    frame_rows, camera_rows = list(frame_rows), list(camera_rows)
    full = [capture.image_size(c, f) for f, c in zip(frame_rows, camera_rows)]
    if image_sizes is None:
        image_sizes = [(int(round(h / downscale)), int(round(w / downscale))) for h, w in full]
    times = frame_times(capture.frame_indices).numpy()[frame_rows] if frame_rows else np.zeros(0)
    return opencv_cameras(
        capture.K[camera_rows], capture.R[camera_rows], capture.T[camera_rows], capture.D[camera_rows],
        full, image_sizes, times, frame_rows, [capture.camera_indices[c] for c in camera_rows],
    )  # fmt: skip
