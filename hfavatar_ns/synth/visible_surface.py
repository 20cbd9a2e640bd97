"""The part of the synthetic subject's surface that the capture's cameras see, for geometry ground truth.

Under the skirt lie the hips and thighs, and the skirt has an inner wall: no camera of a ring
capture sees them, and no reconstruction from those images can be asked to produce them, yet they
are surface of the clothed mesh. The evaluation mesh keeps the faces visible from at least one of
the capture's cameras (held-out cameras included); images are still rendered from the whole subject.
"""

from __future__ import annotations

from typing import Tuple

import numpy as np
from jaxtyping import Bool, Float, Int
from numpy import ndarray as Array

from hfavatar_ns.synth.raycast import embree_intersector

_SAMPLE_BARYCENTRICS = np.array([[1 / 3, 1 / 3, 1 / 3], [0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6]])
"""Points per triangle tested: the centroid and three points towards the corners (a face counts as
visible when any of them is)."""


def visible_faces(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], camera_centres: Float[Array, "C 3"]
) -> Bool[Array, "F"]:
    """Faces with a point that some camera sees directly: the ray from the camera centre towards the
    point hits this face first."""
    intersector = embree_intersector(vertices, faces)
    triangles = vertices[faces]  # [F,3,3]
    points = np.einsum("sk,fkd->fsd", _SAMPLE_BARYCENTRICS, triangles).reshape(-1, 3)
    owner = np.repeat(np.arange(len(faces)), len(_SAMPLE_BARYCENTRICS))
    visible = np.zeros(len(faces), dtype=bool)
    for centre in np.asarray(camera_centres, dtype=np.float64):
        directions = points - centre
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        origins = np.broadcast_to(centre, points.shape)
        hit_faces, ray_index = intersector.intersects_id(origins, directions, multiple_hits=False)
        visible[owner[ray_index[hit_faces == owner[ray_index]]]] = True
    return visible


def visible_surface(
    vertices: Float[Array, "V 3"],
    faces: Int[Array, "F 3"],
    camera_centres: Float[Array, "C 3"],
    visible: Bool[Array, "F"] | None = None,
) -> Tuple[Float[Array, "W 3"], Int[Array, "H 3"]]:
    """The visible faces (see :func:`visible_faces`; or the ``visible`` ones) with their vertices only."""
    kept = faces[visible_faces(vertices, faces, camera_centres) if visible is None else visible]
    used, inverse = np.unique(kept, return_inverse=True)
    return vertices[used], inverse.reshape(-1, 3)


def fully_visible_vertices(faces: Int[Array, "F 3"], visible: Bool[Array, "F"], num_vertices: int) -> Bool[Array, "V"]:
    """Vertices all of whose faces are visible: the ground truth around them is complete."""
    touches_hidden = np.zeros(num_vertices, dtype=bool)
    touches_hidden[faces[~visible].reshape(-1)] = True
    return ~touches_hidden
