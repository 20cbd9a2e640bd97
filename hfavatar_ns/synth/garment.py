"""The clothed subject: the body model's canonical body plus geometry the body model does not have.

* The body mesh is subdivided once (so folds of a few centimetres are resolved) and displaced along
  its normals where it is clothed: a few millimetres of cloth thickness plus wrinkles (sums of
  sinusoidal folds, 2-5 cm wavelength, a few mm amplitude), a hair cap a centimetre thick, shoes.
* A flared, pleated skirt: a closed thin shell (a separate connected component) from the waist to
  above the knees, wider than the legs, skinned by weights blended from nearby body vertices
  (pelvis, spine, hips) and smoothed over the skirt.
* Optionally (``outfit="bare"``) none of that: the body model's own surface, so a body prior is exact;
  and optionally a backpack, a box rigid with the upper spine, which no body model has.

Everything lives in the body model's canonical frame (y up, facing +z, metres) and is posed with the
body's bone transforms by linear blend skinning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np
import trimesh
from jaxtyping import Float, Int
from scipy.ndimage import gaussian_filter1d, maximum_filter1d
from scipy.spatial import cKDTree

from hfavatar_ns.body.skinning import SMPL_JOINT_NAMES

Array = np.ndarray
JOINT = {name: index for index, name in enumerate(SMPL_JOINT_NAMES)}

# Materials (what the texture and the part labels know about).
SKIN, HAIR, TOP, SHORTS, SKIRT, SHOES = range(6)
MATERIAL_NAMES = ("skin", "hair", "top", "shorts", "skirt", "shoes")
PART_LABELS: Int[Array, "6"] = np.array([1, 5, 2, 3, 3, 4], dtype=np.uint8)
"""``mask_cihp`` label per material: 1 skin, 2 top, 3 bottom (shorts and skirt), 4 shoes, 5 hair; 0 background."""

_ARM_JOINTS = [JOINT[f"{s}_{j}"] for s in ("left", "right") for j in ("shoulder", "elbow", "wrist", "hand")]
_FOOT_JOINTS = [JOINT[f"{s}_{j}"] for s in ("left", "right") for j in ("ankle", "foot")]
_TORSO_JOINTS = [JOINT[n] for n in ("spine1", "spine2", "spine3", "left_collar", "right_collar")]


@dataclass
class SkirtShape:
    """Where the skirt sits in canonical space (also used by the plaid texture)."""

    axis: Float[Array, "2"]
    """(x, z) of the skirt's vertical axis."""
    top: float
    """Height (y) of the waistband."""
    hem: float
    """Height (y) of the hem."""


@dataclass
class ClothedSubject:
    """The clothed subject in canonical pose, ready to be skinned."""

    vertices: Float[Array, "V 3"]
    """Canonical positions (the body model's local frame, rest pose)."""
    faces: Int[Array, "F 3"]
    skinning_weights: Float[Array, "V 24"]
    material: Int[Array, "V"]
    face_material: Int[Array, "F"]
    is_skirt: np.ndarray
    """Boolean per vertex: part of the skirt (a separate connected component)."""
    skirt: SkirtShape
    sleeve_x: float
    """Canonical |x| beyond which the top is a sleeve (its stripes run around the arm)."""
    sole_height: float
    """Canonical height below which a shoe is sole."""
    fold_displacement: Float[Array, "V"]
    """The wrinkles' share of each vertex's outward offset from the body (metres; 0 where there are none)."""
    fold_free_vertices: Float[Array, "V 3"]
    """``vertices`` with the wrinkles flattened: the fold-free clothed surface."""
    fold_region: np.ndarray
    """Boolean per vertex: the clothed torso, where fold recovery is scored (the top, sleeves excluded)."""


def subdivide(
    vertices: Float[Array, "V 3"], faces: Int[Array, "F 3"], skinning_weights: Float[Array, "V J"]
) -> Tuple[Float[Array, "V2 3"], Int[Array, "F2 3"], Float[Array, "V2 J"]]:
    """One midpoint subdivision (each triangle into four); new vertices average their edge's weights."""
    new_vertices, new_faces, attributes = trimesh.remesh.subdivide(
        vertices, faces, vertex_attributes={"weights": skinning_weights}
    )
    return new_vertices, new_faces, attributes["weights"]


def body_materials(
    vertices: Float[Array, "V 3"], skinning_weights: Float[Array, "V 24"], joints: Float[Array, "24 3"], skirt: SkirtShape
) -> Int[Array, "V"]:
    """Material of each body vertex from its dominant bone and canonical position.

    A short-sleeved top from the waistband (hidden under the skirt) to a crew neck, shorts under the
    skirt, shoes on the feet, hair on the crown and back of the head, skin elsewhere.
    """
    dominant = skinning_weights.argmax(axis=1)
    x, y, z = vertices.T
    material = np.full(len(vertices), SKIN, dtype=np.int64)

    shoulder_x = np.abs(joints[[JOINT["left_shoulder"], JOINT["right_shoulder"]], 0]).mean()
    waist = skirt.top - 0.04
    neck = joints[JOINT["neck"], 1] - 0.025
    sleeve = np.isin(dominant, [JOINT["left_shoulder"], JOINT["right_shoulder"]]) & (np.abs(x) < shoulder_x + 0.13)
    torso = np.isin(dominant, _TORSO_JOINTS) | ((dominant == JOINT["pelvis"]) & (y > waist))
    material[(torso | sleeve) & (y > waist) & (y < neck)] = TOP

    hips = np.isin(dominant, [JOINT["pelvis"], JOINT["left_hip"], JOINT["right_hip"], JOINT["spine1"]])
    material[hips & (y <= waist) & (y > skirt.hem + 0.04)] = SHORTS

    ankle = joints[[JOINT["left_ankle"], JOINT["right_ankle"]], 1].mean()
    material[np.isin(dominant, _FOOT_JOINTS) & (y < ankle + 0.04)] = SHOES

    head = joints[JOINT["head"]]
    crown = y.max()
    on_head = np.isin(dominant, [JOINT["head"], JOINT["neck"]])
    hair = (y > crown - 0.075) | ((z < head[2] - 0.015) & (y > head[1] - 0.02))
    material[on_head & hair] = HAIR
    return material


def fold_displacement(
    points: Float[Array, "N 3"], axis: Float[Array, "3"], rng: np.random.Generator, count: int = 4
) -> Float[Array, "N"]:
    """Wrinkles: a sum of sinusoidal folds, their crests across ``axis`` (2-5 cm wavelength, a few mm).

    Each fold runs along a direction tilted up to ~30 degrees from ``axis`` and its strength varies
    slowly over the surface, so the folds come and go like real ones.
    """
    displacement = np.zeros(len(points))
    for _ in range(count):
        tilt = rng.normal(size=3) * 0.35
        direction = axis + tilt - np.dot(tilt, axis) * axis
        direction /= np.linalg.norm(direction)
        wavelength = rng.uniform(0.02, 0.05)
        amplitude = rng.uniform(0.002, 0.0035)
        envelope_dir = rng.normal(size=3)
        envelope_dir /= np.linalg.norm(envelope_dir)
        envelope = 0.5 + 0.5 * np.sin(points @ envelope_dir * (2 * np.pi / rng.uniform(0.15, 0.3)) + rng.uniform(0, 6.3))
        fold = np.sin(points @ direction * (2 * np.pi / wavelength) + rng.uniform(0, 2 * np.pi))
        displacement += amplitude * envelope * fold
    return displacement


TOP_THICKNESS = 0.005
"""Metres between the body and the top's fold-free surface."""


def clothing_offsets(
    vertices: Float[Array, "V 3"], material: Int[Array, "V"], joints: Float[Array, "24 3"], rng: np.random.Generator
) -> Tuple[Float[Array, "V"], Float[Array, "V"]]:
    """Outward offset (metres) of each body vertex: cloth thickness plus wrinkles; hair and shoes. Also
    returns the wrinkles' share of it (the offset minus the fold-free cloth's)."""
    offsets = np.zeros(len(vertices))
    shoulder_x = np.abs(joints[[JOINT["left_shoulder"], JOINT["right_shoulder"]], 0]).mean()
    # Folds run around the torso (crests horizontal) and around the sleeves (crests along the arm's girth).
    torso_folds = fold_displacement(vertices, np.array([0.0, 1.0, 0.0]), rng)
    sleeve_folds = fold_displacement(vertices, np.array([1.0, 0.0, 0.0]), rng)
    on_sleeve = np.clip((np.abs(vertices[:, 0]) - (shoulder_x - 0.03)) / 0.06, 0.0, 1.0)
    top_folds = (1 - on_sleeve) * torso_folds + on_sleeve * sleeve_folds
    on_top = material == TOP
    offsets[on_top] = np.maximum(0.001, TOP_THICKNESS + top_folds[on_top])  # cloth rests on the body
    offsets[material == SHORTS] = 0.003
    offsets[material == SHOES] = 0.006
    hair = material == HAIR
    offsets[hair] = 0.010 + 0.002 * np.sin(vertices[hair, 0] * 2 * np.pi / 0.015 + 3 * vertices[hair, 1] / 0.05)
    folds = np.where(on_top, offsets - TOP_THICKNESS, 0.0)
    return offsets, folds


def skirt_shape(body_vertices: Float[Array, "V 3"], joints: Float[Array, "24 3"]) -> SkirtShape:
    """Waistband just above spine1, hem 12 cm above the knees, axis at the waist's centre."""
    top = float(joints[JOINT["spine1"], 1] + 0.02)
    knee = float(joints[[JOINT["left_knee"], JOINT["right_knee"]], 1].mean())
    hem = knee + 0.12
    waist = body_vertices[np.abs(body_vertices[:, 1] - top) < 0.02]
    centre = 0.5 * (waist.min(axis=0) + waist.max(axis=0))
    return SkirtShape(axis=centre[[0, 2]], top=top, hem=hem)


def flared_skirt(
    body_vertices: Float[Array, "V 3"],
    body_is_arm: np.ndarray,
    shape: SkirtShape,
    rng: np.random.Generator,
    thickness: float = 0.012,
    flare: float = 0.09,
    clearance: float = 0.01,
    spacing: float = 0.01,
) -> Tuple[Float[Array, "S 3"], Int[Array, "G 3"], Float[Array, "ny nt 3"]]:
    """A closed pleated shell around the body between the waistband and the hem.

    The inner surface follows the body's widest extent per angle (plus ``clearance``) at the waist
    and flares by ``flare`` metres towards the hem; pleats add up to 1.5 cm. The outer surface is
    ``thickness`` further out; the two are joined at the waistband and the hem.

    Returns:
        vertices: inner grid then outer grid, ``ny * nt`` each.
        faces: outward-facing triangles (watertight).
        mid_surface: the grid halfway between inner and outer, ``(ny, nt, 3)``.
    """
    length = shape.top - shape.hem
    ny = max(12, int(round(length / spacing)) + 1)
    nt = 160
    heights = np.linspace(shape.top, shape.hem, ny)
    angles = np.arange(nt) * (2 * np.pi / nt)
    t = (shape.top - heights) / length  # 0 at the waist, 1 at the hem

    # Widest extent of the body (arms excluded) per height and angle.
    dx = body_vertices[:, 0] - shape.axis[0]
    dz = body_vertices[:, 2] - shape.axis[1]
    radius = np.hypot(dx, dz)
    angle_bin = (np.floor(np.arctan2(dz, dx) % (2 * np.pi) / (2 * np.pi) * nt).astype(np.int64)) % nt
    extent = np.zeros((ny, nt))
    for k, height in enumerate(heights):
        near = (~body_is_arm) & (np.abs(body_vertices[:, 1] - height) < 0.025)
        np.maximum.at(extent[k], angle_bin[near], radius[near])
    extent = maximum_filter1d(extent, size=7, axis=1, mode="wrap") + clearance
    running = np.maximum.accumulate(extent, axis=0)  # never narrower than the body above

    waist = gaussian_filter1d(extent[0], sigma=4, mode="wrap")
    profile = waist[None, :] + flare * t[:, None] ** 1.2
    inner = np.maximum(profile, running)
    inner = gaussian_filter1d(gaussian_filter1d(inner, sigma=4, axis=1, mode="wrap"), sigma=1.5, axis=0, mode="nearest")
    inner = np.maximum(inner, extent)
    pleats = int(rng.integers(10, 15))
    inner = inner + 0.015 * t[:, None] ** 1.5 * (0.5 + 0.5 * np.sin(pleats * angles[None, :] + rng.uniform(0, 2 * np.pi)))

    def grid(radii: Array) -> Array:
        return np.stack(
            [
                shape.axis[0] + radii * np.cos(angles)[None, :],
                np.broadcast_to(heights[:, None], radii.shape),
                shape.axis[1] + radii * np.sin(angles)[None, :],
            ],
            axis=-1,
        )

    inner_grid, outer_grid = grid(inner), grid(inner + thickness)
    mid_surface = grid(inner + thickness / 2)
    vertices = np.concatenate([inner_grid.reshape(-1, 3), outer_grid.reshape(-1, 3)])
    return vertices, shell_faces(ny, nt), mid_surface


def shell_faces(ny: int, nt: int) -> Int[Array, "G 3"]:
    """Triangles of a closed thin shell made of an inner and an outer ``ny x nt`` grid (rows top to bottom).

    Angles increase counter-clockwise seen from above (+y), rows go down; all faces point outwards.
    """
    k, j = np.meshgrid(np.arange(ny - 1), np.arange(nt), indexing="ij")
    k, j = k.ravel(), j.ravel()
    jn = (j + 1) % nt

    def inner(kk, jj):
        return kk * nt + jj

    def outer(kk, jj):
        return ny * nt + kk * nt + jj

    a, b, c, d = outer(k, j), outer(k + 1, j), outer(k, jn), outer(k + 1, jn)
    outer_faces = np.concatenate([np.stack([a, c, b], -1), np.stack([c, d, b], -1)])
    a, b, c, d = inner(k, j), inner(k + 1, j), inner(k, jn), inner(k + 1, jn)
    inner_faces = np.concatenate([np.stack([a, b, c], -1), np.stack([c, b, d], -1)])
    j = np.arange(nt)
    jn = (j + 1) % nt
    top, bottom = 0, ny - 1
    ia, ic, oa, oc = inner(top, j), inner(top, jn), outer(top, j), outer(top, jn)
    top_faces = np.concatenate([np.stack([ia, ic, oa], -1), np.stack([ic, oc, oa], -1)])
    ia, ic, oa, oc = inner(bottom, j), inner(bottom, jn), outer(bottom, j), outer(bottom, jn)
    bottom_faces = np.concatenate([np.stack([ia, oa, ic], -1), np.stack([ic, oa, oc], -1)])
    return np.concatenate([outer_faces, inner_faces, top_faces, bottom_faces]).astype(np.int64)


def skirt_skinning_weights(
    mid_surface: Float[Array, "ny nt 3"],
    body_vertices: Float[Array, "V 3"],
    body_weights: Float[Array, "V 24"],
    neighbours: int = 24,
) -> Float[Array, "ny nt 24"]:
    """Skinning weights of the skirt blended from nearby pelvis / hip / thigh vertices, then smoothed.

    Only the pelvis, spine1 and the hips drive the skirt (knee weight goes to its hip), a quarter is
    pinned to the pelvis so the skirt does not stretch between the legs, and the weights are smoothed
    around (sigma ~6 cm) and down (sigma ~2 cm) the skirt.
    """
    dominant = body_weights.argmax(axis=1)
    lower = [JOINT[n] for n in ("pelvis", "spine1", "left_hip", "right_hip", "left_knee", "right_knee")]
    candidates = np.isin(dominant, lower)
    tree = cKDTree(body_vertices[candidates])
    points = mid_surface.reshape(-1, 3)
    distance, index = tree.query(points, k=neighbours)
    kernel = np.exp(-((distance / (distance[:, :1] + 0.03)) ** 2))
    kernel /= kernel.sum(axis=1, keepdims=True)
    weights = np.einsum("pk,pkj->pj", kernel, body_weights[candidates][index])

    keep = np.zeros_like(weights)
    moves = {
        "pelvis": "pelvis", "spine1": "spine1", "spine2": "spine1", "spine3": "spine1",
        "left_hip": "left_hip", "left_knee": "left_hip", "left_ankle": "left_hip",
        "right_hip": "right_hip", "right_knee": "right_hip", "right_ankle": "right_hip",
    }  # fmt: skip
    for source, target in moves.items():
        keep[:, JOINT[target]] += weights[:, JOINT[source]]
    keep = 0.75 * keep / np.clip(keep.sum(axis=1, keepdims=True), 1e-8, None)
    keep[:, JOINT["pelvis"]] += 0.25
    grid = keep.reshape(*mid_surface.shape[:2], -1)
    grid = gaussian_filter1d(grid, sigma=6, axis=1, mode="wrap")
    grid = gaussian_filter1d(grid, sigma=2, axis=0, mode="nearest")
    return grid / grid.sum(axis=-1, keepdims=True)


BACKPACK_SIZE = (0.30, 0.36, 0.14)
"""Width, height and depth of the backpack (metres)."""


def backpack(
    body_vertices: Float[Array, "V 3"], joints: Float[Array, "24 3"], gap: float = 0.01, edge: float = 0.02
) -> Tuple[Float[Array, "B 3"], Int[Array, "G 3"], Float[Array, "B 24"]]:
    """A closed box on the canonical body's back (the body faces +z), ``gap`` behind the back's farthest point
    over the box's footprint, its faces split to edges of at most ``edge`` metres (so the posed ground truth
    keeps the camera-seen part of each face), rigid with ``spine3``."""
    width, height, depth = BACKPACK_SIZE
    spine2, spine3 = joints[JOINT["spine2"]], joints[JOINT["spine3"]]
    centre_x, centre_y = spine3[0], 0.5 * (spine2[1] + spine3[1])
    x, y, z = body_vertices.T
    behind = (np.abs(x - centre_x) < width / 2) & (np.abs(y - centre_y) < height / 2) & (z < spine3[2])
    back_z = float(body_vertices[behind, 2].min())
    box = trimesh.creation.box(extents=BACKPACK_SIZE)
    box.apply_translation([centre_x, centre_y, back_z - gap - depth / 2])
    vertices, faces = trimesh.remesh.subdivide_to_size(box.vertices, box.faces, max_edge=edge)
    weights = np.zeros((len(vertices), 24))
    weights[:, JOINT["spine3"]] = 1.0
    return vertices, faces, weights


def build_clothed_subject(
    vertices: Float[Array, "V 3"],
    faces: Int[Array, "F 3"],
    skinning_weights: Float[Array, "V 24"],
    joints: Float[Array, "24 3"],
    seed: int,
    outfit: str = "clothed",
    with_backpack: bool = False,
) -> ClothedSubject:
    """The clothed subject from a canonical body (the body model's rest vertices, faces, weights, joints).

    ``outfit="bare"`` leaves the body's surface as the body model has it (materials still paint it);
    ``with_backpack`` adds :func:`backpack` (material ``TOP``)."""
    if outfit not in ("clothed", "bare"):
        raise ValueError(f"Unknown outfit {outfit!r}; choose clothed or bare.")
    rng = np.random.default_rng([seed, 2])
    vertices, faces, skinning_weights, joints = (np.asarray(a, dtype=np.float64) for a in (vertices, faces, skinning_weights, joints))
    faces = faces.astype(np.int64)
    shape = skirt_shape(vertices, joints)

    body_vertices, body_faces, body_weights = subdivide(vertices, faces, skinning_weights)
    body_material = body_materials(body_vertices, body_weights, joints, shape)
    normals = trimesh.Trimesh(body_vertices, body_faces, process=False).vertex_normals
    shoulder_x = float(np.abs(joints[[JOINT["left_shoulder"], JOINT["right_shoulder"]], 0]).mean())
    if outfit == "clothed":
        offsets, folds = clothing_offsets(body_vertices, body_material, joints, rng)
        body_vertices = body_vertices + offsets[:, None] * normals
        torso = (body_material == TOP) & (np.abs(body_vertices[:, 0]) < shoulder_x - 0.03)  # where the torso's folds are
    else:
        folds, torso = np.zeros(len(body_vertices)), np.zeros(len(body_vertices), bool)
    fold_free_body = body_vertices - folds[:, None] * normals

    if outfit == "clothed":
        is_arm = np.isin(body_weights.argmax(axis=1), _ARM_JOINTS)
        skirt_vertices, skirt_faces, mid_surface = flared_skirt(body_vertices, is_arm, shape, rng)
        grid_weights = skirt_skinning_weights(mid_surface, body_vertices, body_weights).reshape(-1, 24)
        skirt_weights = np.concatenate([grid_weights, grid_weights])
    else:
        skirt_vertices, skirt_faces, skirt_weights = np.zeros((0, 3)), np.zeros((0, 3), np.int64), np.zeros((0, 24))
    # Everything beyond the body's own surface: the skirt, then the backpack.
    added_vertices, added_faces, added_weights = skirt_vertices, skirt_faces, skirt_weights
    added_material = np.full(len(skirt_vertices), SKIRT)
    if with_backpack:
        pack_vertices, pack_faces, pack_weights = backpack(body_vertices, joints)
        added_faces = np.concatenate([added_faces, pack_faces + len(added_vertices)])
        added_vertices = np.concatenate([added_vertices, pack_vertices])
        added_weights = np.concatenate([added_weights, pack_weights])
        added_material = np.concatenate([added_material, np.full(len(pack_vertices), TOP)])
    is_skirt = np.concatenate([np.zeros(len(body_vertices), bool), np.arange(len(added_vertices)) < len(skirt_vertices)])

    all_vertices = np.concatenate([body_vertices, added_vertices])
    all_faces = np.concatenate([body_faces, added_faces + len(body_vertices)])
    material = np.concatenate([body_material, added_material])
    corner = material[all_faces]
    face_material = np.where(corner[:, 1] == corner[:, 2], corner[:, 1], corner[:, 0])  # majority of three
    not_torso = np.zeros(len(added_vertices), bool)
    sole = float(vertices[:, 1].min() + 0.025)
    return ClothedSubject(
        vertices=all_vertices,
        faces=all_faces,
        skinning_weights=np.concatenate([body_weights, added_weights]),
        material=material,
        face_material=face_material,
        is_skirt=is_skirt,
        skirt=shape,
        sleeve_x=float(np.abs(joints[[JOINT["left_shoulder"], JOINT["right_shoulder"]], 0]).mean() - 0.02),
        sole_height=sole,
        fold_displacement=np.concatenate([folds, np.zeros(len(added_vertices))]),
        fold_free_vertices=np.concatenate([fold_free_body, added_vertices]),
        fold_region=np.concatenate([torso, not_torso]),
    )
