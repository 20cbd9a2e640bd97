"""Train a tiny avatar on CPU and check it learned something measurable.

One training run on the `tiny` synthetic capture (6 cameras, 3 of them held out, 6 frames, 96 px).
Asserted: the training views render far better than before training (colour and silhouette), the
posed mesh is watertight and in world coordinates, the checkpoint loads under torch >= 2.6.
Printed, not asserted: held-out views and posed-mesh metrics beside the body prior alone (the same
model with its SDF residual off). At this size and training length those comparisons are within
noise of the prior's; issue #3 tracks beating the prior there.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from hfavatar_ns.evaluation.avatar_eval import (
    body_prior_only,
    compare_posed_geometry,
    posed_mesh,
    psnr,
    render_dataset_metrics,
)
from hfavatar_ns.synth.config import SynthConfig
from hfavatar_ns.synth.writer import generate_capture
from hfavatar_ns.training import lite_config

STEPS = 400


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    capture = generate_capture(root / "capture", SynthConfig.from_preset("tiny"), progress=False)
    config = lite_config(capture, root / "outputs", STEPS)
    # The tiny capture's pixels are ~2.6 cm wide: finer hash-grid levels would only fit noise.
    config.pipeline.model.sdf_field.max_resolution = 128
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    before = render_dataset_metrics(trainer.pipeline.model, trainer.pipeline.datamanager.train_dataset, 6)
    trainer.train()
    return capture, trainer, before


def held_out_targets(model, dataset):
    return [model.target_rgb(dataset[i], "cpu")[0] for i in range(len(dataset))]


def test_training_views_are_learned(trained):
    _, trainer, before = trained
    model = trainer.pipeline.model
    after = render_dataset_metrics(model, trainer.pipeline.datamanager.train_dataset, max_images=6)
    with body_prior_only(model):
        prior = render_dataset_metrics(model, trainer.pipeline.datamanager.train_dataset, max_images=6)
    print(
        f"training views: PSNR before {np.mean(before['psnr']):.2f} dB, after {np.mean(after['psnr']):.2f} dB, "
        f"body prior alone {np.mean(prior['psnr']):.2f} dB; silhouette IoU before "
        f"{np.mean(before['silhouette_iou']):.3f}, after {np.mean(after['silhouette_iou']):.3f}, body prior "
        f"{np.mean(prior['silhouette_iou']):.3f}"
    )
    assert np.mean(after["psnr"]) > np.mean(before["psnr"]) + 5.0
    assert np.mean(after["silhouette_iou"]) > np.mean(before["silhouette_iou"])


def test_held_out_views_against_the_body_prior(trained):
    _, trainer, _ = trained
    model = trainer.pipeline.model
    dataset = trainer.pipeline.datamanager.eval_dataset
    avatar = render_dataset_metrics(model, dataset)
    with body_prior_only(model):
        prior = render_dataset_metrics(model, dataset)
    print(
        f"novel views: silhouette IoU avatar {np.mean(avatar['silhouette_iou']):.3f}, body prior "
        f"{np.mean(prior['silhouette_iou']):.3f}; PSNR avatar {np.mean(avatar['psnr']):.2f} dB, "
        f"body prior {np.mean(prior['psnr']):.2f} dB"
    )
    black = [psnr(torch.zeros_like(target), target) for target in held_out_targets(model, dataset)]
    print(f"novel views: an all-black image scores {np.mean(black):.2f} dB")
    assert np.mean(avatar["psnr"]) > np.mean(black) + 3.0


def test_posed_mesh_against_ground_truth(trained):
    capture, trainer, _ = trained
    model = trainer.pipeline.model
    comparison = compare_posed_geometry(model, capture, [0, 2], resolution=96, samples=20_000)
    print(f"geometry: avatar {comparison.avatar}, body {comparison.body_prior}")
    # The right person in the right place: within twice the body model's own distance to the truth.
    assert comparison.avatar["chamfer_mm"] < 2.0 * comparison.body_prior["chamfer_mm"]


def test_posed_mesh_is_watertight_and_in_world_coordinates(trained):
    _, trainer, _ = trained
    model = trainer.pipeline.model
    mesh = posed_mesh(model, 0, resolution=64)
    assert mesh.is_watertight
    body = model.posed_vertices[0].cpu().numpy()
    assert np.abs(mesh.bounds - np.stack([body.min(0), body.max(0)])).max() < 0.3


def test_checkpoint_was_written_and_loads(trained):
    import torch

    _, trainer, _ = trained
    checkpoints = list(Path(trainer.checkpoint_dir).glob("step-*.ckpt"))
    assert checkpoints
    from hfavatar_ns.checkpoints import allow_nerfstudio_checkpoints

    allow_nerfstudio_checkpoints()
    state = torch.load(checkpoints[0], map_location="cpu")  # weights_only=True, the torch >= 2.6 default
    assert "pipeline" in state and "optimizers" in state
