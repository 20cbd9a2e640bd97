"""Training and rendering speed of hfavatar on one device: ms per iteration, rays/s, peak memory.

Sets up the trainer as `ns-train` does (same config, data loading, callbacks), runs warm-up steps,
then times training iterations and full-image renders of held-out cameras. Prints JSON.

    python benchmarks/speed_benchmark.py --data data/synth-default                # hfavatar-lite, CPU
    python benchmarks/speed_benchmark.py --method hfavatar --device cuda --implementation torch

On a CPU, peak memory is the process's maximum resident set size; on CUDA it is the allocator's peak.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path
from typing import Dict

import torch


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_training(trainer, steps: int, warmup: int, start_step: int) -> Dict[str, float]:
    """Runs warm-up then timed iterations (callbacks included, as in `Trainer.train`)."""
    from nerfstudio.engine.callbacks import TrainingCallbackLocation

    device = trainer.device
    callbacks = trainer.callbacks

    def iteration(step: int) -> None:
        for callback in callbacks:
            callback.run_callback_at_location(step, location=TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        trainer.train_iteration(step)
        for callback in callbacks:
            callback.run_callback_at_location(step, location=TrainingCallbackLocation.AFTER_TRAIN_ITERATION)

    trainer.pipeline.train()
    for step in range(start_step, start_step + warmup):
        iteration(step)
    synchronize(device)
    started = time.perf_counter()
    for step in range(start_step + warmup, start_step + warmup + steps):
        iteration(step)
    synchronize(device)
    seconds = time.perf_counter() - started
    rays = trainer.config.pipeline.datamanager.train_num_rays_per_batch
    return {"ms_per_iteration": 1000 * seconds / steps, "train_rays_per_second": rays * steps / seconds}


@torch.no_grad()
def time_rendering(model, cameras, images: int) -> Dict[str, float]:
    model.eval()
    device = str(model.device)
    count = min(images, len(cameras))
    model.get_outputs_for_camera(cameras[0:1].to(model.device))  # warm-up
    synchronize(device)
    started = time.perf_counter()
    pixels = 0
    for index in range(count):
        camera = cameras[index : index + 1].to(model.device)
        model.get_outputs_for_camera(camera)
        pixels += int(camera.width.item() * camera.height.item())
    synchronize(device)
    seconds = time.perf_counter() - started
    model.train()
    return {"render_rays_per_second": pixels / seconds, "seconds_per_image": seconds / count}


def main() -> None:
    from benchmark_run import add_run_arguments, print_report, run_config
    from hfavatar_ns.training import set_up_trainer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, default_steps=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--late-step", type=int, default=None,
                        help="also time iterations from this step on (non-rigid offsets switched on)")
    parser.add_argument("--render-images", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    config = run_config(args, 30000, experiment_name=f"speed-{args.method}")
    setup_started = time.perf_counter()
    trainer = set_up_trainer(config)
    setup_seconds = time.perf_counter() - setup_started
    device = str(trainer.device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    from hfavatar_ns.fields.avatar_field import hash_backend

    report: Dict[str, object] = {
        "method": args.method,
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({torch.get_num_threads()} threads)",
        "hash_backend": hash_backend(trainer.pipeline.model.field),
        "rays_per_batch": config.pipeline.datamanager.train_num_rays_per_batch,
        "samples_per_ray": config.pipeline.model.sampler.num_samples,
        "setup_seconds": setup_seconds,
        "train_early": time_training(trainer, args.steps, args.warmup, start_step=0),
    }
    if args.late_step is not None:
        report["train_late"] = time_training(trainer, args.steps, args.warmup, start_step=args.late_step)
    cameras = trainer.pipeline.datamanager.eval_dataset.cameras
    report["render"] = time_rendering(trainer.pipeline.model, cameras, args.render_images)
    report["image_size"] = [int(cameras.height[0].item()), int(cameras.width[0].item())]
    if device.startswith("cuda"):
        report["peak_memory_mib"] = torch.cuda.max_memory_allocated() / 2**20
    else:
        report["peak_memory_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print_report(report, args.json)


if __name__ == "__main__":
    main()
