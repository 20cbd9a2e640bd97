"""The model trains under DistributedDataParallel, as `--machine.num-devices N` wraps it.

nerfstudio wraps the model in ``DDP(model, device_ids=[rank], find_unused_parameters=True)``, which
needs one CUDA device per process. This test makes the same wrap on the CPU (gloo, ``device_ids=None``)
in two processes, each drawing its own rays, and runs the trainer's own ``train_iteration`` before and
after the non-rigid offset kicks in (parameters unused, then used). Asserted: no DDP error, and the
two processes end with identical weights although their batches differed (gradients were averaged).
"""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

WORLD_SIZE = 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, capture: Path, output: Path, port: int, wrap: bool) -> None:
    from hfavatar_ns.training import lite_config

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD_SIZE)
    try:
        config = lite_config(capture, output / f"rank{rank}", 10, seed=42)
        config.pipeline.datamanager.train_num_rays_per_batch = 128
        trainer = config.setup(local_rank=0, world_size=1)
        trainer.setup()
        pipeline, model = trainer.pipeline, trainer.pipeline.model
        if wrap:
            pipeline._model = DistributedDataParallel(model, device_ids=None, find_unused_parameters=True)
        torch.manual_seed(1000 + rank)  # each process its own rays, as with one GPU each
        kick_in = model.deformation.non_rigid.config.kick_in_step
        for step in (0, 1, kick_in, kick_in + 1):
            model.set_progress(step)
            trainer.train_iteration(step)
        weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
        torch.save(weights, output / f"weights{rank}.pt")
    finally:
        dist.destroy_process_group()


def _train_two_processes(tmp_path: Path, wrap: bool) -> tuple:
    output = tmp_path / ("ddp" if wrap else "independent")
    output.mkdir()
    mp.spawn(_worker, args=(tmp_path / "capture", output, _free_port(), wrap), nprocs=WORLD_SIZE, join=True)
    return tuple(torch.load(output / f"weights{rank}.pt") for rank in range(WORLD_SIZE))


@pytest.fixture(scope="module")
def tiny_capture(tmp_path_factory) -> Path:
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture

    root = tmp_path_factory.mktemp("ddp")
    generate_capture(root / "capture", SynthConfig.from_preset("tiny"), progress=False)
    return root


def test_ddp_processes_stay_in_step(tiny_capture):
    first, second = _train_two_processes(tiny_capture, wrap=True)
    assert torch.isfinite(first).all()
    assert torch.equal(first, second)


def test_without_ddp_the_same_runs_drift_apart(tiny_capture):
    """The control: the batches really differ, so equal weights above come from DDP's averaging."""
    first, second = _train_two_processes(tiny_capture, wrap=False)
    assert not torch.allclose(first, second)
