"""hfavatar-check on a capture written by someone else (tests/zju_fixture.py, not hfavatar-synth)."""

import json
import subprocess
import sys

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


def test_consistent_capture_passes(independent_capture, synthetic_smpl_dir, tmp_path):
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


def test_wrong_units_are_caught(independent_capture, synthetic_smpl_dir, tmp_path):
    """A capture whose T was saved in metres instead of mm: the masks no longer agree."""
    import numpy as np

    copy = tmp_path / "copy"
    import shutil

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


def test_clothed_synthetic_capture_keeps_the_body_inside_the_mask(tmp_path):
    """hfavatar-synth's skirt and clothes enlarge the masks: IoU drops, the body stays inside."""
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture

    root = generate_capture(tmp_path / "synth", SynthConfig.from_preset("tiny"), progress=False)
    report = check_capture(CheckCaptureConfig(data=root, output_dir=tmp_path / "o", frames_per_camera=2))
    assert report["body_model"] == "free"
    assert report["vertex_error_mm"] < 1.0
    assert min(report["body_inside_mask_per_camera"]) > 0.95
    assert min(report["mask_iou_per_camera"]) < 0.95


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
