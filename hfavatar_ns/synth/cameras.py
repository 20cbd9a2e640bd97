"""A ring of OpenCV cameras around the subject, and the rays / projections through them.

Conventions are ZJU-MoCap's (OpenCV): ``x_cam = R x_world + T``, camera looking along +z with x right
and y down, pixel ``(u, v)`` centred at integer coordinates (what ``cv2.projectPoints`` returns), and
lens distortion ``D = (k1, k2, p1, p2, k3)``. ``T`` is in metres here; the writer stores it in mm.
The world is z-up (the ground is ``z = 0``), as in ZJU-MoCap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import cv2
import numpy as np
from jaxtyping import Float

Array = np.ndarray
WORLD_UP = np.array([0.0, 0.0, 1.0])


@dataclass
class RingCameras:
    """``N`` calibrated cameras (numpy, float64)."""

    K: Float[Array, "N 3 3"]
    R: Float[Array, "N 3 3"]
    T: Float[Array, "N 3"]
    """World-to-camera translation in metres."""
    D: Float[Array, "N 5"]
    width: int
    height: int

    def __len__(self) -> int:
        return len(self.R)

    @property
    def centres(self) -> Float[Array, "N 3"]:
        """Camera centres in world coordinates, ``-R^T T``."""
        return -np.einsum("nji,nj->ni", self.R, self.T)


def look_at_rotations(centres: Float[Array, "N 3"], target: Float[Array, "3"]) -> Float[Array, "N 3 3"]:
    """World-to-camera rotations (OpenCV axes) of cameras at ``centres`` looking at ``target``, z-up world."""
    forward = target[None] - centres
    forward /= np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, WORLD_UP[None])
    right /= np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def ring_extrinsics(
    num_cameras: int,
    target: Float[Array, "3"],
    distance: float,
    elevation: float,
    rng: np.random.Generator,
) -> Tuple[Float[Array, "N 3 3"], Float[Array, "N 3"]]:
    """Rotations and translations (metres) of ``num_cameras`` evenly spaced around ``target``.

    Cameras sit on a horizontal circle of radius ``distance`` about the vertical axis through
    ``target``, ``elevation`` metres above it, with small random jitter in angle, radius and height.
    """
    angles = np.arange(num_cameras) * (2 * np.pi / num_cameras) + rng.uniform(-0.04, 0.04, num_cameras)
    radii = distance * (1.0 + rng.uniform(-0.03, 0.03, num_cameras))
    heights = target[2] + elevation + rng.uniform(-0.08, 0.08, num_cameras)
    centres = np.stack([target[0] + radii * np.cos(angles), target[1] + radii * np.sin(angles), heights], axis=-1)
    aim = target[None] + np.concatenate([rng.uniform(-0.03, 0.03, (num_cameras, 3))], axis=0)
    rotations = np.stack([look_at_rotations(c[None], a)[0] for c, a in zip(centres, aim)])
    translations = -np.einsum("nij,nj->ni", rotations, centres)
    return rotations, translations


def random_distortion(num_cameras: int, max_k1: float, rng: np.random.Generator) -> Float[Array, "N 5"]:
    """Small OpenCV distortion coefficients ``(k1, k2, p1, p2, k3)``: ``|k1| <= max_k1``, ``|p| ~ 1e-4``."""
    k1 = rng.uniform(-max_k1, max_k1, num_cameras)
    k2 = rng.uniform(-0.2, 0.2, num_cameras) * max_k1
    p = rng.uniform(-2e-4, 2e-4, (num_cameras, 2))
    return np.concatenate([k1[:, None], k2[:, None], p, np.zeros((num_cameras, 1))], axis=-1)


def fit_focal_length(
    R: Float[Array, "N 3 3"],
    T: Float[Array, "N 3"],
    points: Float[Array, "P 3"],
    width: int,
    height: int,
    margin: float,
) -> float:
    """The largest focal length (pixels) that keeps every point inside every (centred pinhole) image.

    ``margin`` is the fraction of the half image left free on each side.
    """
    cam = np.einsum("nij,pj->npi", R, points) + T[:, None]
    if np.any(cam[..., 2] <= 0.1):
        raise ValueError("A subject point is behind or too close to a camera; increase the camera distance.")
    x = np.abs(cam[..., 0] / cam[..., 2]).max()
    y = np.abs(cam[..., 1] / cam[..., 2]).max()
    return float(min((1 - margin) * width / 2 / x, (1 - margin) * height / 2 / y))


def intrinsics(
    num_cameras: int, focal: float, width: int, height: int, rng: np.random.Generator
) -> Float[Array, "N 3 3"]:
    """Pixel intrinsics: focal up to 3% shorter than ``focal`` (never longer), principal point jittered."""
    K = np.zeros((num_cameras, 3, 3))
    f = focal * (1.0 - rng.uniform(0.0, 0.03, num_cameras))
    K[:, 0, 0] = f * (1.0 + rng.uniform(-0.002, 0.002, num_cameras))
    K[:, 1, 1] = f
    K[:, 0, 2] = (width - 1) / 2 + rng.uniform(-0.01, 0.01, num_cameras) * width
    K[:, 1, 2] = (height - 1) / 2 + rng.uniform(-0.01, 0.01, num_cameras) * height
    K[:, 2, 2] = 1.0
    return K


def undistorted_directions(
    K: Float[Array, "3 3"], D: Float[Array, "5"], width: int, height: int
) -> Float[Array, "HW 3"]:
    """Camera-frame ray directions ``(x, y, 1)`` through every pixel centre, row-major, lens distortion removed.

    Pixel ``(u, v)`` is the point ``(u, v)`` of OpenCV's image coordinates; ``cv2.undistortPointsIter``
    inverts the distortion model iteratively to high accuracy.
    """
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([u.ravel(), v.ravel()], axis=-1)[:, None, :]
    criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12)
    if hasattr(cv2, "undistortPointsIter"):
        normalized = cv2.undistortPointsIter(pixels, K, D, None, None, criteria)[:, 0, :]
    else:  # OpenCV 5 dropped undistortPointsIter; its undistortPoints may take the criteria
        try:
            normalized = cv2.undistortPoints(pixels, K, D, R=None, P=None, criteria=criteria)[:, 0, :]
        except (cv2.error, TypeError):
            normalized = cv2.undistortPoints(pixels, K, D)[:, 0, :]
    return np.concatenate([normalized, np.ones((len(normalized), 1))], axis=-1)


def pixel_rays(
    K: Float[Array, "3 3"], R: Float[Array, "3 3"], T: Float[Array, "3"], D: Float[Array, "5"], width: int, height: int
) -> Tuple[Float[Array, "HW 3"], Float[Array, "HW 3"]]:
    """World-space origins and unit directions of the rays through every pixel centre (row-major)."""
    directions = undistorted_directions(K, D, width, height) @ R  # R^T d for each row d
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origin = -R.T @ T
    return np.broadcast_to(origin, directions.shape).copy(), directions


def project_points(
    points: Float[Array, "P 3"], K: Float[Array, "3 3"], R: Float[Array, "3 3"], T: Float[Array, "3"], D: Float[Array, "5"]
) -> Float[Array, "P 2"]:
    """Pixel coordinates of world points through a distorted camera (``cv2.projectPoints``)."""
    rvec, _ = cv2.Rodrigues(R)
    pixels, _ = cv2.projectPoints(points.astype(np.float64), rvec, T.astype(np.float64), K, D)
    return pixels[:, 0, :]
