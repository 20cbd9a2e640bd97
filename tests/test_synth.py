"""hfavatar-synth: the synthetic capture is complete, self-consistent and deterministic."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

from hfavatar_ns.synth import SynthConfig, generate_capture
from hfavatar_ns.synth import cameras as cam
from hfavatar_ns.synth.garment import shell_faces
from hfavatar_ns.synth.motion import walking_motion
from hfavatar_ns.synth.raycast import embree_intersector, first_hits, lambert

TINY = SynthConfig.from_preset("tiny")


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return generate_capture(tmp_path_factory.mktemp("synth") / "tiny", TINY, progress=False)


def _cameras(capture: Path):
    annots = np.load(capture / "annots.npy", allow_pickle=True).item()
    cams = annots["cams"]
    return annots, [np.array(cams[key], dtype=np.float64) for key in ("K", "R", "T", "D")]


# --- pure functions -------------------------------------------------------------------------------


def test_rays_and_projection_round_trip_with_distortion():
    rng = np.random.default_rng(0)
    R, T = cam.ring_extrinsics(3, np.array([0.0, 0.0, 0.9]), 3.5, 0.4, rng)
    K = cam.intrinsics(3, 300.0, 64, 48, rng)
    D = np.array([[0.02, -0.004, 1e-4, -1e-4, 0.0]] * 3)
    for c in range(3):
        assert np.allclose(R[c] @ R[c].T, np.eye(3)) and np.isclose(np.linalg.det(R[c]), 1.0)
        origins, directions = cam.pixel_rays(K[c], R[c], T[c], D[c], 64, 48)
        points = origins + 2.7 * directions
        pixels = cam.project_points(points, K[c], R[c], T[c], D[c])
        v, u = np.mgrid[0:48, 0:64]
        assert np.abs(pixels - np.stack([u.ravel(), v.ravel()], -1)).max() < 1e-6
        # The optical axis points at the target; the image's "up" (-y) is the world's up (+z).
        assert R[c][2] @ (np.array([0.0, 0.0, 0.9]) - origins[0]) > 0.99 * np.linalg.norm(origins[0] - [0, 0, 0.9])
        assert R[c][1, 2] < -0.9


def test_embree_first_hit_and_barycentrics():
    assert trimesh.ray.has_embree
    box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    intersector = embree_intersector(np.asarray(box.vertices), np.asarray(box.faces))
    assert type(intersector).__module__ == "trimesh.ray.ray_pyembree"
    hits = first_hits(intersector, np.array([[0.1, 0.2, 5.0], [3.0, 3.0, 5.0]]), np.array([[0.0, 0.0, -1.0]] * 2))
    assert hits.ray_index.tolist() == [0]
    assert np.allclose(hits.location, [[0.1, 0.2, 0.5]], atol=1e-5)
    corners = box.triangles[hits.face_index[0]]
    assert np.allclose(hits.barycentric[0] @ corners, hits.location[0], atol=1e-5)


def test_skirt_shell_is_closed_and_outward():
    angles = np.arange(16) * 2 * np.pi / 16
    rings = [np.stack([r * np.cos(angles), np.full(16, y), r * np.sin(angles)], -1) for r in (0.2, 0.21) for y in (0.0, -0.1, -0.2)]
    vertices = np.concatenate([np.concatenate(rings[:3]), np.concatenate(rings[3:])])
    mesh = trimesh.Trimesh(vertices, shell_faces(3, 16), process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0


def test_motion_is_deterministic_and_root_free():
    a, b = walking_motion(12, 2, seed=3), walking_motion(12, 2, seed=3)
    c = walking_motion(12, 2, seed=4)
    assert np.array_equal(a.poses, b.poses) and np.array_equal(a.Rh, b.Rh)
    assert not np.allclose(a.poses, c.poses)
    assert a.poses.shape == (12, 72) and np.all(a.poses[:, :3] == 0)
    assert np.abs(a.poses).max() < 1.5


# --- the tiny capture -----------------------------------------------------------------------------


def test_layout_complete(capture: Path):
    annots, (K, R, T, D) = _cameras(capture)
    cams, frames, size = TINY.num_cameras, TINY.num_frames, TINY.resolution
    assert K.shape == (cams, 3, 3) and R.shape == (cams, 3, 3) and T.shape == (cams, 3, 1) and D.shape == (cams, 5, 1)
    assert len(annots["ims"]) == frames
    for i, entry in enumerate(annots["ims"]):
        assert entry["ims"] == [f"Camera_B{k + 1}/{i:06d}.jpg" for k in range(cams)]
        for relative in entry["ims"]:
            image = cv2.imread(str(capture / relative))
            mask = cv2.imread(str(capture / "mask_cihp" / relative.replace(".jpg", ".png")), cv2.IMREAD_UNCHANGED)
            assert image.shape == (size, size, 3) and mask.shape == (size, size) and mask.dtype == np.uint8
            assert (mask != 0).sum() > 100 and set(np.unique(mask)) <= {0, 1, 2, 3, 4, 5}
        params = np.load(capture / "new_params" / f"{i}.npy", allow_pickle=True).item()
        assert {k: v.shape for k, v in params.items()} == {"poses": (1, 72), "Rh": (1, 3), "Th": (1, 3), "shapes": (1, 10)}
        assert np.all(params["poses"][:, :3] == 0)
        assert np.load(capture / "new_vertices" / f"{i}.npy").shape[1] == 3
        assert (capture / "ground_truth" / "posed" / f"{i:06d}.ply").is_file()
    assert len(list((capture / "new_params").iterdir())) == frames
    assert len(list(capture.glob("Camera_B*"))) == cams
    assert (capture / "ground_truth" / "canonical.ply").is_file()
    info = json.loads((capture / "body_model.json").read_text())
    assert info["kind"] == "free" and info["generator"] == "hfavatar-synth" and info["preset"] == "tiny"


def test_translation_in_millimetres_and_distortion(capture: Path):
    _, (K, R, T, D) = _cameras(capture)
    centres = -np.einsum("nji,njk->nik", R, T / 1000.0)[..., 0]
    distance = np.linalg.norm(centres[:, :2], axis=1)
    assert np.all((distance > 3.0) & (distance < 4.5))
    assert np.all((centres[:, 2] > 0.8) & (centres[:, 2] < 2.5))  # z-up world, cameras above the ground
    assert np.all(np.abs(D[:, 0, 0]) > 0) and np.all(np.abs(D[:, 0, 0]) <= 0.02)


def test_body_vertices_project_into_masks(capture: Path):
    """Body model vertices lie on or under the clothed surface, so they project into the silhouette.

    A point on the surface near the silhouette may fall between pixel centres that miss the surface,
    so a vertex counts as inside when one of the four pixel centres around it is foreground.
    """
    annots, (K, R, T, D) = _cameras(capture)
    for i in range(TINY.num_frames):
        vertices = np.load(capture / "new_vertices" / f"{i}.npy").astype(np.float64)
        for c in range(TINY.num_cameras):
            mask = cv2.imread(str(capture / "mask_cihp" / f"Camera_B{c + 1}" / f"{i:06d}.png"), cv2.IMREAD_UNCHANGED) != 0
            pixels = cam.project_points(vertices, K[c], R[c], T[c, :, 0] / 1000.0, D[c, :, 0])
            assert np.all((pixels > 0) & (pixels < TINY.resolution - 1)), "the subject leaves the image"
            lo = np.floor(pixels).astype(int)
            inside = mask[lo[:, 1], lo[:, 0]] | mask[lo[:, 1] + 1, lo[:, 0]] | mask[lo[:, 1], lo[:, 0] + 1]
            inside |= mask[lo[:, 1] + 1, lo[:, 0] + 1]
            assert inside.mean() > 0.95
            nearest = np.round(pixels).astype(int)
            assert mask[nearest[:, 1], nearest[:, 0]].mean() > 0.8


def test_ground_truth_differs_from_body_and_skirt_is_separate(capture: Path):
    for i in (0, TINY.num_frames - 1):
        posed = np.asarray(trimesh.load(capture / "ground_truth" / "posed" / f"{i:06d}.ply", process=False).vertices)
        body = np.load(capture / "new_vertices" / f"{i}.npy")
        distance, _ = cKDTree(body).query(posed)
        assert distance.max() > 0.03  # the skirt
        assert np.median(distance) < 0.02  # the rest hugs the body
        assert -1e-3 < posed[:, 2].min() < 0.02  # standing on the ground (soles face down, unseen)
    subject = np.load(capture / "ground_truth" / "subject.npz")
    labels = trimesh.graph.connected_component_labels(
        trimesh.Trimesh(subject["vertices"], subject["faces"], process=False).face_adjacency, len(subject["faces"])
    )
    skirt_faces = subject["is_skirt"][subject["faces"]].all(axis=1)
    assert skirt_faces.any() and not np.any(subject["is_skirt"][subject["faces"]].any(axis=1) & ~skirt_faces)
    assert len(set(labels[skirt_faces])) == 1 and not set(labels[skirt_faces]) & set(labels[~skirt_faces])
    skirt = trimesh.Trimesh(subject["vertices"], subject["faces"][skirt_faces])
    assert skirt.is_watertight


def test_deterministic_for_a_seed_and_any_number_of_workers(capture: Path, tmp_path: Path):
    again = generate_capture(tmp_path / "again", TINY, progress=False, workers=3)
    files = sorted(path.relative_to(capture) for path in capture.rglob("*") if path.is_file())
    assert len(files) > 6 * 6 * 2 and files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for relative in files:
        assert (capture / relative).read_bytes() == (again / relative).read_bytes(), relative


def test_options_override_the_preset():
    config = SynthConfig.from_preset("zju", num_cameras=5, seed=7, resolution=None)
    assert (config.num_cameras, config.num_frames, config.resolution, config.seed) == (5, 300, 1024, 7)


def test_fold_ground_truth_describes_the_true_surface(capture: Path):
    from hfavatar_ns.evaluation.fold_recovery import fold_recovery, read_folds

    for i in (0, TINY.num_frames - 1):
        points, normals, displacement = read_folds(capture, i)
        assert points.shape == normals.shape == (len(displacement), 3) and len(displacement) > 500
        assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-3)
        assert 0.001 < displacement.std() < 0.006  # folds a few millimetres deep
        truth = trimesh.load(capture / "ground_truth" / "posed" / f"{i:06d}.ply", process=False)
        # The true surface lies the true displacement away from the fold-free one: it recovers its own folds.
        assert fold_recovery(truth, points, normals, displacement) > 0.95


def test_bare_body_with_a_backpack_is_the_body_model_plus_a_box(tmp_path: Path):
    """``outfit="bare"``: the truth is the fits' own body wherever the box is not, so a body prior is exact
    there; ``backpack``: a box behind the back, moving with it, that no body model has."""
    from hfavatar_ns.body.factory import make_body_model
    from hfavatar_ns.synth.garment import BACKPACK_SIZE

    faces = make_body_model("free").canonical().faces.numpy()
    config = SynthConfig.from_preset("tiny", num_frames=2, outfit="bare", backpack=True)
    capture = generate_capture(tmp_path / "pack", config, progress=False)
    assert not (capture / "ground_truth" / "folds" / "000000.npz").exists()  # nothing to score folds on
    for i in range(2):
        posed = np.asarray(trimesh.load(capture / "ground_truth" / "posed" / f"{i:06d}.ply", process=False).vertices)
        body = trimesh.Trimesh(np.load(capture / "new_vertices" / f"{i}.npy"), faces, process=False)
        distance = np.abs(trimesh.proximity.signed_distance(body, posed))
        off_body = distance > 0.002
        assert 0.05 < off_body.mean() < 0.5  # the box's seen faces; the rest lies on the body
        assert distance.max() > BACKPACK_SIZE[2]  # the box's far side
        box = posed[off_body]
        extent = np.sort(box.max(axis=0) - box.min(axis=0))
        assert np.all(extent < np.sort(BACKPACK_SIZE) * 1.5 + 0.05)  # one box, not scattered pieces


def test_command_line_outfit_and_backpack_reach_the_config(tmp_path: Path):
    import tyro

    from hfavatar_ns.synth.cli import SynthCommand

    args = [str(tmp_path), "--outfit", "bare", "--backpack", "--lighting", "three_lights"]
    config = tyro.cli(SynthCommand, args=args).config()
    assert (config.outfit, config.backpack, config.lighting, config.preset) == ("bare", True, "three_lights", "default")
    plain = tyro.cli(SynthCommand, args=[str(tmp_path)]).config()
    assert (plain.outfit, plain.backpack, plain.lighting) == ("clothed", False, "one_light")


def test_lambert_adds_the_ambient_and_every_light_facing_the_surface():
    albedo = np.full((3, 3), 0.5)
    normals = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    lights = ((np.array([0.0, 0.0, 2.0]), 0.6), (np.array([1.0, 0.0, 1.0]), 0.4))
    shaded = lambert(albedo, normals, 0.2, lights)
    cosine = np.sqrt(0.5)
    assert np.allclose(shaded[:, 0], 0.5 * np.array([0.2 + 0.6 + 0.4 * cosine, 0.2 + 0.4 * cosine, 0.2]))
    assert lambert(np.ones((1, 3)), normals[:1], 0.9, lights).max() == 1.0  # clipped to what an image holds


def test_three_lights_light_the_same_capture_otherwise(capture: Path, tmp_path: Path):
    config = SynthConfig.from_preset("tiny", num_frames=1, lighting="three_lights")
    lit = generate_capture(tmp_path / "three", config, progress=False)
    info = json.loads((lit / "body_model.json").read_text())
    assert info["config"]["lighting"] == "three_lights"
    name = Path("Camera_B1") / "000000.jpg"
    one, three = (cv2.imread(str(root / name)).astype(np.float64) for root in (capture, lit))
    person = cv2.imread(str(capture / "mask_cihp" / "Camera_B1" / "000000.png"), cv2.IMREAD_GRAYSCALE) > 0
    background, lit_person = np.abs(one[~person] - three[~person]).mean(), np.abs(one[person] - three[person]).mean()
    assert background < 1.0 < 5.0 < lit_person  # the same black background (up to JPEG ringing), another light
