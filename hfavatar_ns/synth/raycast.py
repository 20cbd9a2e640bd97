"""Ray-cast rendering of a triangle mesh: first hit per ray (embree), barycentric interpolation, Lambert.

One functional entry point, :func:`render`: rays in, colour / part label / depth per ray out. The
caller supplies the rays (see :func:`hfavatar_ns.synth.cameras.pixel_rays`), so lens distortion,
pixel conventions and camera models stay out of this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

import numpy as np
import trimesh
from jaxtyping import Float, Int

Array = np.ndarray
AlbedoFn = Callable[[Float[Array, "M 3"], Int[Array, "M"]], Float[Array, "M 3"]]


@dataclass
class RayHits:
    """The first intersection of each ray that hits the mesh."""

    ray_index: Int[Array, "M"]
    face_index: Int[Array, "M"]
    barycentric: Float[Array, "M 3"]
    location: Float[Array, "M 3"]


def embree_intersector(vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"]):
    """trimesh's embree-backed intersector for a mesh (raises if embree is unavailable)."""
    if not trimesh.ray.has_embree:
        raise ImportError(
            "hfavatar-synth ray casts with embree: install `embreex` (pip install embreex) so that "
            "trimesh.ray.has_embree is True."
        )
    from trimesh.ray.ray_pyembree import RayMeshIntersector

    mesh = trimesh.Trimesh(vertices, faces, process=False)
    return RayMeshIntersector(mesh)


def first_hits(
    intersector, origins: Float[Array, "R 3"], directions: Float[Array, "R 3"]
) -> RayHits:
    """First hit of every ray with the intersector's mesh, with the barycentrics of the hit point."""
    face_index, ray_index, location = intersector.intersects_id(
        origins, directions, multiple_hits=False, return_locations=True
    )
    triangles = intersector.mesh.triangles[face_index]
    barycentric = trimesh.triangles.points_to_barycentric(triangles, location)
    barycentric = np.clip(barycentric, 0.0, 1.0)
    barycentric /= barycentric.sum(axis=1, keepdims=True)
    return RayHits(ray_index=ray_index, face_index=face_index, barycentric=barycentric, location=location)


def interpolate(
    values: Float[Array, "V C"], faces: Int[Array, "F 3"], hits: RayHits
) -> Float[Array, "M C"]:
    """Per-vertex ``values`` interpolated at the hits."""
    return np.einsum("mk,mkc->mc", hits.barycentric, values[faces[hits.face_index]])


Light = Tuple[Float[Array, "3"], float]
"""A distant light: the direction towards it (world space, any length) and its strength."""


def lambert(
    albedo: Float[Array, "M 3"],
    normals: Float[Array, "M 3"],
    ambient: float,
    lights: Sequence[Light],
) -> Float[Array, "M 3"]:
    """``albedo * (ambient + sum_k strength_k * max(0, n . l_k))`` (clipped to 1)."""
    irradiance = np.full(len(normals), ambient, dtype=np.float64)
    for direction, strength in lights:
        towards = np.asarray(direction, dtype=np.float64)
        irradiance += strength * np.clip(normals @ (towards / np.linalg.norm(towards)), 0.0, None)
    return np.clip(albedo * irradiance[:, None], 0.0, 1.0)


def render(
    intersector,
    vertex_normals: Float[Array, "V 3"],
    canonical_positions: Float[Array, "V 3"],
    face_material: Int[Array, "F"],
    albedo_fn: AlbedoFn,
    origins: Float[Array, "R 3"],
    directions: Float[Array, "R 3"],
    ambient: float,
    lights: Sequence[Light],
) -> Tuple[Float[Array, "R 3"], Int[Array, "R"], Float[Array, "R"], Int[Array, "R"]]:
    """Render rays against a posed mesh.

    Args:
        intersector: :func:`embree_intersector` of the posed mesh (world space).
        vertex_normals: unit normals of the posed mesh (interpolated at hits, flipped to face the ray).
        canonical_positions: each vertex's canonical position; the texture is evaluated at the
            interpolated canonical position of every hit.
        face_material: material id per face.
        albedo_fn: ``(canonical points, materials) -> colour in [0, 1]``.
        origins, directions: the rays (world space, unit directions).
        ambient: strength of the ambient light.
        lights: the distant lights (see :data:`Light`).

    Returns:
        colour: shaded colour in [0, 1] per ray (0 where nothing is hit).
        material: material id of the hit face per ray, ``-1`` where nothing is hit.
        distance: distance along the ray to the hit, ``inf`` where nothing is hit.
        face: index of the hit face per ray, ``-1`` where nothing is hit.
    """
    faces = intersector.mesh.faces
    hits = first_hits(intersector, origins, directions)
    num_rays = len(origins)
    colour = np.zeros((num_rays, 3))
    material = np.full(num_rays, -1, dtype=np.int64)
    distance = np.full(num_rays, np.inf)
    face = np.full(num_rays, -1, dtype=np.int64)
    if len(hits.ray_index) == 0:
        return colour, material, distance, face

    normals = interpolate(vertex_normals, faces, hits)
    normals /= np.clip(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12, None)
    ray_dirs = directions[hits.ray_index]
    facing_away = np.einsum("mc,mc->m", normals, ray_dirs) > 0
    normals[facing_away] *= -1.0
    canonical = interpolate(canonical_positions, faces, hits)
    hit_material = face_material[hits.face_index]

    colour[hits.ray_index] = lambert(albedo_fn(canonical, hit_material), normals, ambient, lights)
    material[hits.ray_index] = hit_material
    distance[hits.ray_index] = np.einsum("mc,mc->m", hits.location - origins[hits.ray_index], ray_dirs)
    face[hits.ray_index] = hits.face_index
    return colour, material, distance, face
