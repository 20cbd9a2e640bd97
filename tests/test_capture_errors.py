"""Captures with the errors real pipelines make: the written errors have the asked-for statistics, the
truth stays exact beside them, and the monocular preset's split and motion."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from hfavatar_ns.body.factory import make_body_model
from hfavatar_ns.evaluation.fit_errors import (
    body_orientation,
    fit_errors,
    matrix_angle_deg,
    read_true_fits,
    rotation_angle_deg,
)
from hfavatar_ns.synth import SynthConfig, generate_capture
from hfavatar_ns.synth.capture_errors import (
    FitErrorSpec,
    MaskErrorSpec,
    correlated_noise,
    corrupt_mask,
    jitter_boundary,
    perturb_fits,
)
from hfavatar_ns.synth.motion import walking_motion
from hfavatar_ns.synth.writer import capture_protocol

NOISY = dict(
    fit_joint_noise_deg=3.0, fit_rotation_noise_deg=1.0, fit_translation_noise_m=0.015,
    mask_boundary_jitter_px=1.0, mask_missing_limb_rate=0.5, mask_blob_rate=0.5,
)  # fmt: skip


def lag_correlation(noise: np.ndarray, lag: int) -> float:
    return float(np.mean(noise[:-lag] * noise[lag:]) / np.mean(noise**2))


def test_correlated_noise_has_unit_variance_and_drifts():
    rng = np.random.default_rng(0)
    drifting = correlated_noise(rng, 4000, 6, correlation_frames=8.0, flicker=0.25)
    independent = correlated_noise(rng, 4000, 6, correlation_frames=0.0, flicker=0.25)
    assert drifting.std() == pytest.approx(1.0, abs=0.1) and independent.std() == pytest.approx(1.0, abs=0.05)
    # Neighbouring frames share the drift (0.75 of the variance, nearly all of it one frame apart).
    assert lag_correlation(drifting, 1) > 0.6 and abs(lag_correlation(independent, 1)) < 0.05
    assert lag_correlation(drifting, 40) < 0.15  # ... and it wanders off over several correlation lengths


def test_fit_errors_have_the_asked_for_size():
    count = 600
    rng = np.random.default_rng(1)
    poses = np.zeros((count, 72))
    poses[:, 3:] = rng.normal(0, 0.3, (count, 69))
    Rh, Th, shapes = rng.normal(0, 1, (count, 3)), rng.normal(0, 1, (count, 3)), np.zeros(10)
    spec = FitErrorSpec(joint_deg=3.0, global_rotation_deg=1.0, translation_m=0.015, shape=0.5)
    noisy = perturb_fits(poses, Rh, Th, shapes, spec, seed=3)
    assert np.all(noisy["poses"][:, :3] == 0)  # the root's rotation lives in Rh, as EasyMocap writes it
    angles = rotation_angle_deg(torch.as_tensor(noisy["poses"]).reshape(count, 24, 3), torch.as_tensor(poses).reshape(count, 24, 3))
    assert float(angles[:, 0].max()) == 0.0
    assert float(angles[:, 1:].pow(2).mean().sqrt()) == pytest.approx(3.0, rel=0.15)
    global_angles = rotation_angle_deg(torch.as_tensor(noisy["Rh"]), torch.as_tensor(Rh))
    assert float(global_angles.pow(2).mean().sqrt()) == pytest.approx(1.0, rel=0.2)
    translation_rms = np.sqrt(np.mean(np.sum((noisy["Th"] - Th) ** 2, axis=-1)))
    assert translation_rms == pytest.approx(0.015, rel=0.2)
    assert noisy["shapes"].shape == (10,) and np.std(noisy["shapes"]) == pytest.approx(0.5, rel=0.6)
    same = perturb_fits(poses, Rh, Th, shapes, spec, seed=3)
    assert all(np.array_equal(same[key], noisy[key]) for key in noisy)


def test_rotation_angle_of_a_known_turn():
    first = torch.tensor([[0.0, 0.0, np.radians(30.0)]])
    second = torch.tensor([[0.0, 0.0, np.radians(-15.0)]])
    assert float(rotation_angle_deg(first, second)) == pytest.approx(45.0, abs=1e-4)
    tilted = torch.as_tensor(Rotation.from_euler("xyz", [10, 20, 30], degrees=True).as_rotvec())[None]
    assert float(rotation_angle_deg(tilted, tilted)) == pytest.approx(0.0, abs=1e-3)


def test_the_body_orientation_is_the_same_whether_rh_or_the_root_joint_holds_it():
    turn = torch.as_tensor(Rotation.from_euler("xyz", [5, -40, 12], degrees=True).as_rotvec())[None].float()
    in_rh = body_orientation(torch.zeros(1, 72), turn)
    in_root = body_orientation(torch.cat([turn, torch.zeros(1, 69)], dim=1), torch.zeros(1, 3))
    assert float(matrix_angle_deg(in_rh, in_root)) == pytest.approx(0.0, abs=1e-2)
    # Split between both: Rh after the root's rotation.
    half = torch.tensor([[0.0, np.radians(-20.0), 0.0]])
    split = body_orientation(torch.cat([half, torch.zeros(1, 69)], dim=1), half)
    whole = body_orientation(torch.zeros(1, 72), 2 * half)
    assert float(matrix_angle_deg(split, whole)) == pytest.approx(0.0, abs=1e-2)
    assert float(matrix_angle_deg(split, in_rh)) > 10.0


def person(size: int = 96) -> tuple[np.ndarray, dict]:
    labels = np.zeros((size, size), np.uint8)
    cv2.rectangle(labels, (38, 10), (58, 80), 2, -1)  # torso and legs
    cv2.rectangle(labels, (26, 20), (37, 24), 1, -1)  # an arm, ending in a hand
    hand = np.zeros_like(labels, bool)
    hand[20:25, 26:31] = True
    foot = np.zeros_like(labels, bool)
    foot[76:81, 38:46] = True
    return labels, {"left hand": hand, "right hand": np.zeros_like(hand), "left foot": foot, "right foot": np.zeros_like(hand)}


def test_mask_errors_each_do_what_they_say():
    labels, limbs = person()
    assert np.array_equal(corrupt_mask(labels, limbs, MaskErrorSpec(), np.random.default_rng(0)), labels)
    missing = corrupt_mask(labels, limbs, MaskErrorSpec(missing_limb_rate=1.0), np.random.default_rng(0))
    removed = (labels > 0) & (missing == 0)
    assert removed.any() and (np.array_equal(removed, limbs["left hand"]) or np.array_equal(removed, limbs["left foot"]))
    blob = corrupt_mask(labels, limbs, MaskErrorSpec(blob_rate=1.0, blob_radius=0.1), np.random.default_rng(0))
    added = (blob > 0) & (labels == 0)
    assert added.sum() > 15 and np.all(blob[labels > 0] == labels[labels > 0])
    # The blob touches the person: it grows out of the outline.
    assert (cv2.dilate((labels > 0).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & added).any()


def test_boundary_jitter_moves_the_outline_by_about_the_asked_for_pixels():
    labels = np.zeros((200, 200), np.uint8)
    cv2.circle(labels, (100, 100), 60, 3, -1)
    jittered = jitter_boundary(labels, 2.0, np.random.default_rng(0))
    changed = (labels > 0) != (jittered > 0)
    outline = 2 * np.pi * 60
    # Mean displacement of a Gaussian with RMS 2 px is about 1.6 px: that many changed pixels per unit of outline.
    assert 0.8 < changed.sum() / outline < 2.5
    assert set(np.unique(jittered[jittered > 0])) == {3}  # grown pixels take the nearby label
    small = jitter_boundary(labels, 0.5, np.random.default_rng(0))
    assert ((labels > 0) != (small > 0)).sum() < changed.sum()


@pytest.fixture(scope="module")
def exact_and_noisy(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("capture_errors")
    exact = generate_capture(root / "exact", SynthConfig.from_preset("tiny"), progress=False, workers=2)
    noisy = generate_capture(root / "noisy", SynthConfig.from_preset("tiny", **NOISY), progress=False, workers=2)
    return exact, noisy


def test_noisy_capture_keeps_images_and_truth_exact(exact_and_noisy):
    exact, noisy = exact_and_noisy
    for image in exact.glob("Camera_B*/*.jpg"):
        assert image.read_bytes() == (noisy / image.relative_to(exact)).read_bytes()
    for mesh in (exact / "ground_truth" / "posed").glob("*.ply"):
        assert mesh.read_bytes() == (noisy / mesh.relative_to(exact)).read_bytes()
    for fit in (exact / "ground_truth" / "fits").glob("*.npy"):
        assert fit.read_bytes() == (noisy / fit.relative_to(exact)).read_bytes()
        # Without errors the written fits are the exact ones.
        written = np.load(exact / "new_params" / fit.name, allow_pickle=True).item()
        true = np.load(fit, allow_pickle=True).item()
        assert all(np.array_equal(written[key], true[key]) for key in true)
    for mask in (noisy / "ground_truth" / "mask_cihp").rglob("*.png"):
        assert mask.read_bytes() == (exact / "mask_cihp" / mask.relative_to(noisy / "ground_truth" / "mask_cihp")).read_bytes()
    assert not (exact / "ground_truth" / "mask_cihp").exists()


def test_noisy_capture_fits_and_masks_are_off_by_the_asked_for_amount(exact_and_noisy):
    _, noisy = exact_and_noisy
    frame_ids = list(range(SynthConfig.from_preset("tiny").num_frames))
    truth = read_true_fits(noisy, frame_ids)
    written = {
        key: torch.as_tensor(np.concatenate([np.load(noisy / "new_params" / f"{i}.npy", allow_pickle=True).item()[key] for i in frame_ids]))
        for key in truth
    }
    body_model = make_body_model("free", None, "neutral")
    errors = fit_errors(body_model, written, truth)
    # Six frames of drifting noise: loose bounds around the asked-for RMS figures.
    assert 1.0 < errors.joint_angle_deg < 5.0 and 0.2 < errors.global_rotation_deg < 2.5
    assert 2.0 < errors.translation_mm < 35.0 and errors.vertex_mm > 5.0
    # new_vertices are the written fits' bodies, as a fitting pipeline writes them.
    from hfavatar_ns.body.posing import pose_in_batches

    posed = pose_in_batches(body_model, written["poses"], written["shapes"], written["Rh"], written["Th"]).vertices
    stored = np.stack([np.load(noisy / "new_vertices" / f"{i}.npy") for i in frame_ids])
    assert np.abs(posed.numpy() - stored).max() < 1e-4
    ious = []
    for mask in (noisy / "mask_cihp").rglob("*.png"):
        written_mask = cv2.imread(str(mask), cv2.IMREAD_UNCHANGED) > 0
        true_mask = cv2.imread(str(noisy / "ground_truth" / "mask_cihp" / mask.relative_to(noisy / "mask_cihp")), cv2.IMREAD_UNCHANGED) > 0
        ious.append((written_mask & true_mask).sum() / (written_mask | true_mask).sum())
    assert 0.4 < np.mean(ious) < 0.97 and max(ious) < 1.0


def test_monocular_protocol_trains_one_camera_on_a_full_circle():
    config = SynthConfig.from_preset("mono")
    protocol = capture_protocol(config.num_cameras, config.num_frames, config.monocular)
    assert protocol["train_cameras"] == [0]
    start, stop = protocol["train_frames"]
    assert protocol["novel_pose_frames"] == [stop, config.num_frames] and stop - start >= 24
    motion = walking_motion(config.num_frames, config.frame_step, config.seed, config.gait_period, config.turn_period)
    facing = Rotation.from_rotvec(motion.Rh[start:stop]).apply([0.0, 0.0, 1.0])  # the body's forward axis
    headings = np.unwrap(np.arctan2(facing[:, 1], facing[:, 0]))
    assert np.degrees(np.ptp(headings)) > 330.0  # every side of the person faces the one camera
    multi = capture_protocol(8, 30)
    assert len(multi["train_cameras"]) == 4 and multi["train_frames"] == [0, 20]


def test_pose_refinement_and_estimated_masks_are_decided_by_what_the_capture_declares(exact_and_noisy, tmp_path):
    from dataparsers.zju_mocap.zju_dataparser import ZJUMocapDataParserConfig
    from hfavatar_ns.deformation.backward import BackwardDeformation, BackwardDeformationConfig

    def metadata_of(capture: Path) -> dict:
        config = ZJUMocapDataParserConfig(data=capture, cache_dir=tmp_path / capture.name)
        return config.setup().get_dataparser_outputs(split="train").metadata

    exact, noisy = exact_and_noisy
    real = tmp_path / "real"  # a capture that says nothing about its fits or masks, as every real one
    real.mkdir()
    for item in exact.iterdir():
        if item.name != "body_model.json":
            (real / item.name).symlink_to(item)
    (real / "body_model.json").write_text('{"kind": "free", "gender": "neutral"}')
    captures = {"exact": exact, "noisy": noisy, "real": real}
    metadata = {name: metadata_of(capture) for name, capture in captures.items()}
    decided = {name: BackwardDeformation(BackwardDeformationConfig(), m["body_frames"]).refines_poses
               for name, m in metadata.items()}  # fmt: skip
    assert decided == {"exact": False, "noisy": True, "real": True}
    assert {name: m["masks_estimated"] for name, m in metadata.items()} == {"exact": False, "noisy": True, "real": True}
    forced = BackwardDeformation(BackwardDeformationConfig(pose_refinement=False), metadata_of(noisy)["body_frames"])
    assert not forced.refines_poses and not forced.body.correction_parameters()
