"""Pictures of meshes seen through a capture's cameras (grey clay shading, ray-cast with embree)."""

from __future__ import annotations

from typing import List

import numpy as np
import trimesh

from hfavatar_ns.synth.cameras import pixel_rays
from hfavatar_ns.synth.raycast import embree_intersector, first_hits


def clay_render(
    mesh: trimesh.Trimesh, K: np.ndarray, R: np.ndarray, T: np.ndarray, D: np.ndarray, width: int, height: int
) -> np.ndarray:
    """An ``[H,W,3]`` uint8 picture of ``mesh`` through an OpenCV camera (T in metres), lit from the camera."""
    origins, directions = pixel_rays(K, R, np.asarray(T).reshape(3), np.asarray(D).reshape(-1), width, height)
    hits = first_hits(embree_intersector(np.asarray(mesh.vertices), np.asarray(mesh.faces)), origins, directions)
    normals = np.asarray(mesh.face_normals)[hits.face_index]
    cosine = np.abs((normals * directions[hits.ray_index]).sum(axis=-1))
    image = np.zeros((height * width, 3), dtype=np.float64)
    image[hits.ray_index] = (0.15 + 0.8 * cosine)[:, None] * np.array([0.85, 0.82, 0.78])
    return (image.reshape(height, width, 3).clip(0, 1) * 255).astype(np.uint8)


def side_by_side(pictures: List[np.ndarray]) -> np.ndarray:
    return np.concatenate(pictures, axis=1)
