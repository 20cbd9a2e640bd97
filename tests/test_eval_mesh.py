"""hfavatar-eval-mesh: metrics through the CLI on known meshes, every bad input, and a (2-step) trained run."""

import json
import shutil
import subprocess
import sys

import pytest
import trimesh

from hfavatar_ns.errors import InputError
from hfavatar_ns.scripts.eval_mesh import EvalMeshConfig, default_frames, evaluate, main

SAMPLES = "5000"


@pytest.fixture(scope="module")
def spheres(tmp_path_factory):
    """A sphere (vertices ~7 cm apart, so a 1 cm shift keeps every nearest vertex), and copies of it."""
    folder = tmp_path_factory.mktemp("spheres")
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=0.5)
    sphere.export(folder / "sphere.ply")
    shifted = sphere.copy()
    shifted.apply_translation([0.01, 0.0, 0.0])
    shifted.export(folder / "shifted.ply")
    sphere.export(folder / "sphere.obj")
    trimesh.PointCloud(sphere.vertices).export(folder / "points.ply")
    return folder


def run_cli(argv, capsys):
    """main(argv); returns (exit code, stdout, stderr)."""
    try:
        main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_identical_and_shifted_meshes_through_the_cli(spheres, tmp_path, capsys):
    out = tmp_path / "report" / "metrics.json"
    argv = ["--pred", str(spheres / "sphere.ply"), str(spheres / "sphere.obj"),
            "--gt", str(spheres / "sphere.obj"), str(spheres / "shifted.ply"),
            "--samples", SAMPLES, "--json", str(out)]  # fmt: skip
    code, printed, _ = run_cli(argv, capsys)
    assert code == 0
    report = json.loads(out.read_text())
    same, shifted = report["rows"]
    assert same["chamfer_arah_cm2"] == pytest.approx(0.0, abs=1e-9)
    assert same["normal_consistency"] == pytest.approx(1.0) and same["fscore_1cm"] == pytest.approx(1.0)
    # vertices x100: every nearest vertex 1 cm away in both directions -> 0.5 * (1 + 1) cm^2
    assert shifted["chamfer_arah_cm2"] == pytest.approx(1.0, rel=0.01)
    assert report["mean"]["pred"]["chamfer_arah_cm2"] == pytest.approx(0.5, rel=0.01)
    assert report["mean"]["pred"]["count"] == 2
    assert {name: spec["unit"] for name, spec in report["metrics"].items()} == {
        "chamfer_arah_cm2": "cm^2", "chamfer_mm": "mm", "normal_consistency": "1", "fscore_1cm": "1",
    }  # fmt: skip
    assert "chamfer_arah_cm2 [cm^2]" in printed and "mean of 2" in printed


def test_folders_pair_by_name_or_frame_number(spheres, tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    sphere = trimesh.load(spheres / "sphere.ply", process=False)
    sphere.export(pred / "frame_000030.ply")  # hfavatar-export's name meets hfavatar-synth's
    sphere.export(gt / "000030.ply")
    sphere.export(gt / "000060.ply")  # ground truth without a prediction is fine
    argv = ["--pred", str(pred), "--gt", str(gt), "--samples", SAMPLES, "--json", str(tmp_path / "r.json")]
    code, _, _ = run_cli(argv, capsys)
    assert code == 0
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    assert [(r["name"], r["gt"].split("/")[-1]) for r in rows] == [("frame_000030.ply", "000030.ply")]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--pred", "{d}/missing.ply", "--gt", "{d}/sphere.ply"], "No predicted mesh or folder at"),
        (["--pred", "{d}/sphere.ply", "{d}/shifted.ply", "--gt", "{d}/sphere.ply"], "2 predicted meshes but 1"),
        (["--pred", "{d}/points.ply", "--gt", "{d}/sphere.ply"], "has no faces (a point cloud)"),
        (["--pred", "{d}", "--gt", "{d}/sphere.ply"], "not a mix"),
        (["--pred", "{d}/sphere.ply"], "Give both --pred and --gt"),
        (["--pred", "{d}/sphere.ply", "--gt", "{d}/sphere.ply", "--frames", "0"], "go with --load-config"),
    ],
)
def test_bad_mesh_inputs_are_one_line_errors(spheres, capsys, argv, message):
    code, _, err = run_cli([a.format(d=spheres) for a in argv], capsys)
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_gt_folder_missing_a_prediction(spheres, tmp_path, capsys):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    pred.mkdir(), gt.mkdir()
    trimesh.load(spheres / "sphere.ply", process=False).export(pred / "000007.ply")
    trimesh.load(spheres / "sphere.ply", process=False).export(gt / "000008.ply")
    code, _, err = run_cli(["--pred", str(pred), "--gt", str(gt)], capsys)
    assert code == 2 and "has no ground truth for 000007.ply" in err


def test_cli_process_prints_no_traceback(spheres):
    command = [sys.executable, "-m", "hfavatar_ns.scripts.eval_mesh",
               "--pred", str(spheres / "sphere.ply"), "--gt", str(spheres / "nope.obj")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "No ground-truth mesh or folder at" in result.stderr


# ------------------------------------------------------------------------------------------ a trained run


@pytest.fixture(scope="module")
def avatar(tiny_avatar_run):
    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    return load_avatar_run(tiny_avatar_run)


def test_run_avatar_and_prior_rows_per_frame(avatar, tiny_avatar_run, tmp_path):
    out = tmp_path / "run.json"
    config = EvalMeshConfig(load_config=tiny_avatar_run, frames=(0, 2), resolution=24, samples=2000, json=out)
    evaluate(config, avatar)
    report = json.loads(out.read_text())
    assert report["mode"] == "run" and report["resolution"] == 24
    assert [(r["frame"], r["model"]) for r in report["rows"]] == [
        (0, "avatar"), (0, "body_prior"), (2, "avatar"), (2, "body_prior")
    ]  # fmt: skip
    assert all(r["gt"].endswith(f"ground_truth/posed/{r['frame']:06d}.ply") for r in report["rows"])
    assert set(report["mean"]) == {"avatar", "body_prior"}
    prior = report["mean"]["body_prior"]
    # The posed body is the right person in the right place: centimetres from the clothed ground truth.
    assert prior["chamfer_mm"] < 50.0 and prior["fscore_1cm"] > 0.3


def test_run_with_a_gt_folder_by_frame_id(avatar, tiny_avatar_run, tmp_path):
    gt = tmp_path / "gt"
    gt.mkdir()
    source = avatar.capture_root / "ground_truth" / "posed" / "000003.ply"
    trimesh.load(source, process=False).export(gt / "3.obj")
    report = evaluate(
        EvalMeshConfig(load_config=tiny_avatar_run, frames=(3,), gt_dir=gt, resolution=16, samples=2000, prior=False),
        avatar,
    )
    assert [(r["frame"], r["model"], r["gt"]) for r in report["rows"]] == [(3, "avatar", str(gt / "3.obj"))]


def test_run_bad_inputs(avatar, tiny_avatar_run, tmp_path):
    with pytest.raises(InputError, match=r"Frame 999 is not one of the avatar.s frames \(6 frames: 0, 1, 2"):
        evaluate(EvalMeshConfig(load_config=tiny_avatar_run, frames=(0, 999), resolution=16), avatar)
    gt = tmp_path / "gt"
    gt.mkdir()
    shutil.copy(avatar.capture_root / "ground_truth" / "posed" / "000000.ply", gt / "000000.ply")
    with pytest.raises(InputError, match="needs exactly one mesh for frame 2"):
        evaluate(EvalMeshConfig(load_config=tiny_avatar_run, frames=(0, 2), gt_dir=gt, resolution=16), avatar)


def test_default_frames_are_first_middle_last_training_frames(avatar):
    assert default_frames(avatar) == [0, 2, 3]  # the tiny capture trains on frames 0-3 (split.json)


def test_missing_config_is_a_clear_error(tmp_path, capsys):
    code, _, err = run_cli(["--load-config", str(tmp_path / "config.yml")], capsys)
    assert code == 2 and "No config at" in err
