"""hfavatar-check on a capture written by someone else (tests/zju_fixture.py, not hfavatar-synth), and on
hfavatar-synth's captures, whose ground truth it compares the written fits and masks with."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from hfavatar_ns.scripts.check_capture import CheckCaptureConfig, check_capture, evenly_spaced
from zju_fixture import write_independent_zju_capture


@pytest.fixture(scope="module")
def independent_capture(tmp_path_factory, synthetic_smpl_dir):
    root = tmp_path_factory.mktemp("captures") / "CoreView_377"
    write_independent_zju_capture(
        root, synthetic_smpl_dir / "smpl" / "SMPL_NEUTRAL.pkl", variant="B", num_cameras=4, num_frames=2, size=(200, 160)
    )
    return root


@pytest.fixture(scope="module")
def synth_capture(tmp_path_factory):
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture

    root = tmp_path_factory.mktemp("synth") / "capture"
    return generate_capture(root, SynthConfig.from_preset("tiny"), progress=False)


def test_consistent_capture_passes(independent_capture, synthetic_smpl_dir, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    check_capture(
        CheckCaptureConfig(
            data=independent_capture,
            body_model="smpl",
            body_model_dir=synthetic_smpl_dir,
            output_dir=tmp_path / "overlays",
            json=report_path,
            resolution=200,
        )
    )
    report = json.loads(report_path.read_text())
    assert len(report["mask_iou_per_camera"]) == 4
    assert min(report["mask_iou_per_camera"]) >= 0.95
    assert report["vertex_error_mm"] < 1.0
    assert min(report["body_inside_mask_per_camera"]) >= 0.95
    assert (tmp_path / "overlays" / "overlays.png").stat().st_size > 1000
    # A real capture has no ground truth: nothing about it is reported.
    assert report["fit_errors_vs_truth"] is None and report["mask_iou_vs_truth"] is None
    assert "ground_truth" not in capsys.readouterr().out


def test_wrong_units_are_caught(independent_capture, synthetic_smpl_dir, tmp_path):
    """A capture whose T was saved in metres instead of mm: the masks no longer agree."""
    copy = tmp_path / "copy"
    shutil.copytree(independent_capture, copy)
    annots = np.load(copy / "annots.npy", allow_pickle=True).item()
    annots["cams"]["T"] = [np.asarray(t) / 1000.0 for t in annots["cams"]["T"]]
    np.save(copy / "annots.npy", annots)
    report = check_capture(
        CheckCaptureConfig(
            data=copy, body_model="smpl", body_model_dir=synthetic_smpl_dir, output_dir=tmp_path / "o", frames_per_camera=1
        )
    )
    assert max(report["mask_iou_per_camera"]) < 0.5
    assert max(report["body_inside_mask_per_camera"]) < 0.5


def test_clothed_synthetic_capture_keeps_the_body_inside_the_mask(synth_capture, tmp_path):
    """hfavatar-synth's skirt and clothes enlarge the masks: IoU drops, the body stays inside."""
    report = check_capture(CheckCaptureConfig(data=synth_capture, output_dir=tmp_path / "o", frames_per_camera=2))
    assert report["body_model"] == "free"
    assert report["vertex_error_mm"] < 1.0
    assert min(report["body_inside_mask_per_camera"]) > 0.95
    assert min(report["mask_iou_per_camera"]) < 0.95


def with_exact_ground_truth(capture, target):
    """A copy of ``capture`` whose ground truth is what it writes: ``ground_truth/fits/`` copied from
    ``new_params/`` and ``ground_truth/mask_cihp/`` from ``mask_cihp/`` (replacing any the writer made)."""
    shutil.copytree(capture, target)
    for name, source in (("fits", "new_params"), ("mask_cihp", "mask_cihp")):
        shutil.rmtree(target / "ground_truth" / name, ignore_errors=True)
        shutil.copytree(target / source, target / "ground_truth" / name)
    return target


def test_written_fits_and_masks_equal_to_the_truth_report_no_error(synth_capture, tmp_path):
    root = with_exact_ground_truth(synth_capture, tmp_path / "exact")
    report = check_capture(CheckCaptureConfig(data=root, output_dir=tmp_path / "o", frames_per_camera=2, resolution=24))
    errors = report["fit_errors_vs_truth"]
    assert errors["frames"] == report["num_frames"] == len(list((root / "new_params").glob("*.npy")))
    for key in ("joint_angle_deg", "global_rotation_deg"):
        assert errors[key] == pytest.approx(0.0, abs=0.05)
    for key in ("translation_mm", "vertex_mm", "vertex_max_mm"):
        assert errors[key] == pytest.approx(0.0, abs=0.01)
    assert report["mask_iou_vs_truth"] == {"per_camera": [1.0] * report["num_cameras"], "mean": 1.0}


def test_perturbed_fits_and_a_wrong_mask_are_measured_against_the_truth(synth_capture, tmp_path, capsys):
    """new_params 2 cm off on every frame with one joint turned 10 degrees; one checked mask emptied."""
    import cv2
    from scipy.spatial.transform import Rotation

    root = with_exact_ground_truth(synth_capture, tmp_path / "perturbed")
    turn = Rotation.from_rotvec(np.radians(10.0) * np.array([0.0, 0.6, 0.8]))
    for path in (root / "new_params").glob("*.npy"):
        params = np.load(path, allow_pickle=True).item()
        params["Th"] = params["Th"] + np.array([[0.02, 0.0, 0.0]], np.float32)
        poses = params["poses"].copy()
        poses[0, 16 * 3 : 17 * 3] = (turn * Rotation.from_rotvec(poses[0, 16 * 3 : 17 * 3])).as_rotvec()
        params["poses"] = poses
        np.save(path, params)
    mask_path = root / "mask_cihp" / "Camera_B1" / "000000.png"  # frame 0 is checked (frames_per_camera=2)
    cv2.imwrite(str(mask_path), np.zeros_like(cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)))

    report = check_capture(CheckCaptureConfig(data=root, output_dir=tmp_path / "o", frames_per_camera=2, resolution=24))
    errors = report["fit_errors_vs_truth"]
    assert errors["translation_mm"] == pytest.approx(20.0, abs=0.01)
    assert errors["joint_angle_deg"] == pytest.approx(10.0 / 23, abs=0.01)  # one of the 23 body joints
    assert errors["global_rotation_deg"] == pytest.approx(0.0, abs=0.05)
    assert errors["vertex_mm"] > 10.0 and errors["vertex_max_mm"] >= errors["vertex_mm"]
    # Camera_B1: an empty mask (IoU 0) and a true one over its two checked frames; the other cameras are exact.
    ious = report["mask_iou_vs_truth"]
    assert ious["per_camera"] == pytest.approx([0.5] + [1.0] * (report["num_cameras"] - 1))
    assert ious["mean"] == pytest.approx(1.0 - 0.5 / report["num_cameras"])
    output = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "ground_truth/fits/" in output and "Th 20.0 mm" in output and "ground_truth/mask_cihp/" in output


def test_cli_reports_bad_input_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hfavatar_ns.scripts.check_capture", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "does not exist" in result.stderr and "Traceback" not in result.stderr


def test_evenly_spaced():
    assert evenly_spaced(3, 5) == [0, 1, 2]
    assert evenly_spaced(10, 3) == [0, 4, 9]
