"""Pose refinement from `ns-train`'s own configuration path, and a deliberately wrong fit pulled back towards
the truth on the tiny capture."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from hfavatar_ns.synth.config import SynthConfig
from hfavatar_ns.synth.writer import generate_capture
from hfavatar_ns.training import lite_config, set_up_trainer
from ns_train_fixture import ns_train_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_capture(tmp_path_factory) -> Path:
    return generate_capture(tmp_path_factory.mktemp("refine") / "capture", SynthConfig.from_preset("tiny"), progress=False)


def test_ns_train_trains_with_pose_refinement(tiny_capture, tmp_path):
    config = ns_train_config(tiny_capture, tmp_path, 3, "--pipeline.model.deformation.pose-refinement", "True")
    config.set_timestamp()
    trainer = set_up_trainer(config)
    trainer.train()
    body = trainer.pipeline.model.body
    assert body.refining
    assert trainer.optimizers.parameters["body"] == body.correction_parameters()
    moved = body.translation_correction.detach().abs().sum(-1)
    trained = body.trained
    assert (moved[trained] > 0).all() and (moved[~trained] == 0).all()  # only frames with images learn
    checkpoint = torch.load(next((config.get_base_dir() / "nerfstudio_models").glob("*.ckpt")), weights_only=False)
    assert "_model.body.translation_correction" in checkpoint["pipeline"]


def perturb_fits(capture: Path, target: Path, translation: np.ndarray, rotation_deg: float) -> Path:
    """A copy of ``capture`` whose fits are off: every frame shifted by ``translation`` (metres) and its left
    shoulder (SMPL joint 16) turned by ``rotation_deg`` about z; images and masks stay true."""
    shutil.copytree(capture, target)
    for path in (target / "new_params").glob("*.npy"):
        params = np.load(path, allow_pickle=True).item()
        params["Th"] = params["Th"] + translation
        params["poses"] = params["poses"].copy()
        params["poses"][0, 16 * 3 + 2] += np.radians(rotation_deg)
        np.save(path, params)
    shutil.rmtree(target / "new_vertices", ignore_errors=True)
    return target


def test_refinement_pulls_a_wrong_fit_towards_the_truth(tiny_capture, tmp_path):
    offset = np.array([0.04, 0.0, -0.03])
    wrong = perturb_fits(tiny_capture, tmp_path / "wrong", offset, 12.0)
    config = lite_config(wrong, tmp_path / "outputs", 60)
    config.pipeline.model.deformation.pose_refinement = True
    config.optimizers["body"]["optimizer"].lr = 5e-3
    trainer = set_up_trainer(config)
    trainer.train()
    body = trainer.pipeline.model.body
    rows = body.training_rows()
    translation_error = (body.translation_correction.detach()[rows] + torch.tensor(offset, dtype=torch.float32)).norm(dim=-1)
    shoulder = body.pose_correction.detach()[rows, 16, 2] + np.radians(12.0)
    print(f"translation error {np.linalg.norm(offset) * 1000:.0f} -> {translation_error.mean() * 1000:.1f} mm; "
          f"shoulder 12.0 -> {np.degrees(shoulder.abs().mean()):.1f} deg")  # fmt: skip
    assert float(translation_error.max()) < 0.6 * np.linalg.norm(offset)
    assert float(shoulder.abs().mean()) < np.radians(12.0)


def test_refinement_reduces_the_errors_of_noisy_fits(tmp_path):
    """hfavatar-synth's drifting fit errors on the tiny capture: the refined fits end nearer the truth."""
    from hfavatar_ns.evaluation.fit_errors import fit_errors, read_true_fits

    errors = dict(fit_joint_noise_deg=2.0, fit_rotation_noise_deg=3.0, fit_translation_noise_m=0.03)
    capture = generate_capture(tmp_path / "noisy", SynthConfig.from_preset("tiny", **errors), progress=False, workers=2)
    config = lite_config(capture, tmp_path / "outputs", 80)
    config.pipeline.model.deformation.pose_refinement = True
    config.optimizers["body"]["optimizer"].lr = 5e-3
    trainer = set_up_trainer(config)
    trainer.train()
    body = trainer.pipeline.model.body
    rows = body.training_rows()
    truth = read_true_fits(capture, [body.frame_id(row) for row in rows])
    body_model = body.body_model.make()
    given = fit_errors(body_model, body.fit_parameters(rows, refined=False), truth)
    refined = fit_errors(body_model, body.fit_parameters(rows, refined=True), truth)
    print(f"vertex error {given.vertex_mm:.1f} -> {refined.vertex_mm:.1f} mm, Th {given.translation_mm:.1f} -> "
          f"{refined.translation_mm:.1f} mm, orientation {given.global_rotation_deg:.2f} -> {refined.global_rotation_deg:.2f} deg")  # fmt: skip
    assert given.vertex_mm > 15.0  # the capture's fits are off, as asked
    assert refined.vertex_mm < 0.8 * given.vertex_mm
    assert refined.translation_mm < given.translation_mm
