"""The ablation switches (no body prior, no inner sampling, no iterative deformation, no non-rigid offset):
each is an `ns-train` flag that trains, and each takes away what it names."""

from pathlib import Path

import pytest
import torch

from hfavatar_ns.geometry.prior_sdf import EllipsoidSDF, PriorSDF
from hfavatar_ns.models.hfavatar_model import NO_PRIOR_RESIDUAL_SCALE
from hfavatar_ns.synth.config import SynthConfig
from hfavatar_ns.synth.writer import generate_capture
from hfavatar_ns.training import set_up_trainer
from ns_train_fixture import ns_train_config

pytestmark = pytest.mark.slow

ABLATIONS = {
    "no_body_prior": ["--pipeline.model.body-prior", "False"],
    "no_inner_sampling": ["--pipeline.model.sampler.strategy", "box"],
    "no_iterative_deformation": [
        "--pipeline.model.deformation.num-iterations", "1",
        "--pipeline.model.deformation.learned-skinning", "False",
    ],  # fmt: skip
    "no_non_rigid": [
        "--pipeline.model.deformation.non-rigid.enabled", "False",
        "--pipeline.model.deformation.non-rigid.kick-in-step", "0",
    ],  # fmt: skip
}


@pytest.fixture(scope="module")
def tiny_capture(tmp_path_factory) -> Path:
    return generate_capture(tmp_path_factory.mktemp("ablate") / "capture", SynthConfig.from_preset("tiny"), progress=False)


def _train(capture: Path, output: Path, steps: int, flags):
    config = ns_train_config(capture, output, steps, *flags)
    config.set_timestamp()
    trainer = set_up_trainer(config)
    trainer.train()
    return trainer.pipeline


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_each_ablation_trains_from_the_command_line(name, tiny_capture, tmp_path):
    from hfavatar_ns.evaluation.avatar_eval import render_dataset_psnr

    pipeline = _train(tiny_capture, tmp_path, 4, ABLATIONS[name])
    model = pipeline.model
    skinning = model.deformation.skinning_field.residual_logits
    if name == "no_body_prior":
        assert isinstance(model.field.prior_sdf, EllipsoidSDF)
        assert model.field.config.residual_scale == NO_PRIOR_RESIDUAL_SCALE
        assert model.reject(torch.ones(1, 1), torch.zeros(1, 1), torch.full((1,), 1.0)).item() == 1.0  # off
    else:
        assert isinstance(model.field.prior_sdf, PriorSDF)
    if name == "no_inner_sampling":
        assert model.sampler.config.strategy == "box"
    if name == "no_iterative_deformation":
        assert model.deformation.config.num_iterations == 1
        assert not skinning.requires_grad and skinning.abs().max() == 0
    else:
        assert skinning.requires_grad
    if name == "no_non_rigid":
        assert not model.deformation.non_rigid.active  # kick-in passed, and still off
        assert model.deformation.param_groups()["non_rigid"] == []
    psnr = render_dataset_psnr(model, pipeline.datamanager.eval_dataset, max_images=1)
    assert all(torch.isfinite(torch.tensor(psnr))), psnr


def test_box_sampling_spreads_samples_over_the_box_not_the_shell():
    import trimesh

    from hfavatar_ns.model_components.inner_sampler import InnerSampler, InnerSamplerConfig
    from nerfstudio.cameras.rays import RayBundle

    ball = trimesh.creation.icosphere(subdivisions=3, radius=0.2)
    vertices, faces = torch.tensor(ball.vertices, dtype=torch.float32), torch.tensor(ball.faces)
    origins = torch.tensor([[0.0, 0.0, -2.0], [0.0, 0.0, -2.0]])
    # The second ray passes (0.25, 0.25, 0): outside the dilated ball, inside the cube around it.
    directions = torch.nn.functional.normalize(torch.tensor([[0.0, 0.0, 1.0], [0.25, 0.25, 2.0]]), dim=-1)
    bundle = RayBundle(origins=origins, directions=directions, pixel_area=torch.ones(2, 1))
    for strategy in ("shell", "box"):
        sampler = InnerSampler(InnerSamplerConfig(num_samples=16, grid_resolution=32, margin=0.05, strategy=strategy))
        sampler.set_frames(vertices[None], faces)
        sampler.eval()
        samples, hits = sampler(bundle, torch.zeros(2, dtype=torch.long))
        positions = samples.frustums.get_positions()
        if strategy == "shell":
            assert positions[0].norm(dim=-1).max() < 0.2 + 0.05 + 0.05  # inside the dilated ball (plus a voxel)
            assert not bool(hits[1])  # passes the ball by
        else:
            assert bool(hits.all())  # the box holds both rays
            assert positions[1].norm(dim=-1).min() > 0.3  # samples where the shell has none
