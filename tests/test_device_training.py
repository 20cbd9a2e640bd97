"""A few training steps of ``hfavatar-lite`` on each device: the GPU test trains on CUDA (tabulated rays, band
sampler, hash grid and weight grids all on the device) and renders the initial avatar as the CPU does; its CPU
twin trains the same way on the CPU."""

import pytest
import torch

from hfavatar_ns.data.ray_generator import TabulatedRayGenerator
from hfavatar_ns.training import method_config, set_up_trainer


@pytest.fixture(scope="module")
def tiny_capture(tmp_path_factory):
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture

    return generate_capture(tmp_path_factory.mktemp("device_training") / "capture", SynthConfig.from_preset("tiny"),
                            progress=False)  # fmt: skip


def held_out_render(trainer) -> torch.Tensor:
    """The avatar's rgb for the first held-out image, on the CPU."""
    model = trainer.pipeline.model
    cameras = trainer.pipeline.datamanager.eval_dataset.cameras[0:1].to(model.device)
    model.eval()
    with torch.no_grad():
        rgb = model.get_outputs_for_camera(cameras)["rgb"].cpu()
    model.train()
    return rgb


def train_a_few_steps(capture, output_dir, device: str, steps: int = 3):
    """(initial held-out render, losses of each step, largest parameter change) for ``steps`` steps."""
    trainer = set_up_trainer(method_config(True, capture, output_dir, steps, device=device))
    model = trainer.pipeline.model
    assert model.device.type == device
    generator = trainer.pipeline.datamanager.train_ray_generator
    assert isinstance(generator, TabulatedRayGenerator) and generator.tabulated  # the capture's lenses distort
    assert generator.pixel_tables.device.type == device
    initial_render = held_out_render(trainer)
    before = {name: value.detach().clone() for name, value in model.named_parameters()}
    losses = [float(trainer.train_iteration(step)[0]) for step in range(steps)]
    change = max(float((value.detach() - before[name]).abs().max()) for name, value in model.named_parameters()
                 if value.numel())
    return initial_render, losses, change


def check_training(losses, change) -> None:
    assert all(torch.isfinite(torch.tensor(losses))), losses
    assert change > 0.0  # the optimiser reached the parameters


def test_training_steps_on_the_cpu(tiny_capture, tmp_path):
    render, losses, change = train_a_few_steps(tiny_capture, tmp_path, "cpu")
    check_training(losses, change)
    assert render.shape[-1] == 3 and 0.0 <= float(render.min()) and float(render.max()) <= 1.0


@pytest.mark.gpu
def test_training_steps_on_cuda_and_the_same_initial_render(tiny_capture, tmp_path):
    cpu_render, _, _ = train_a_few_steps(tiny_capture, tmp_path / "cpu", "cpu", steps=1)
    cuda_render, losses, change = train_a_few_steps(tiny_capture, tmp_path / "cuda", "cuda")
    check_training(losses, change)
    # Same seed, same initial avatar: the two devices' renders differ only by float32 rounding.
    difference = (cuda_render - cpu_render).abs()
    print(f"initial render, CUDA vs CPU: max difference {float(difference.max()):.2e}, mean {float(difference.mean()):.2e}")
    assert float(difference.mean()) < 1e-3 and float(difference.max()) < 5e-2
