"""How long `hfavatar`'s datamanager takes to refill its image cache, which it does every 200 steps: loading
the images and masks (nerfstudio's threaded loader and collate), then the pixel sampler's band around the
person. On a ZJU-sized capture this stalls GPU training for seconds, so it is worth its own figure.

    python benchmarks/reload_benchmark.py --data data/synth-zju3 --frames 3

makes the capture when missing (the `zju` preset cut to ``--frames`` frames: 23 cameras at 1024x1024) and
trains on all but the last three cameras, so one reload holds as many images as the GPU preset caches (64).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    from benchmark_run import print_report
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture
    from hfavatar_ns.training import method_config, set_up_trainer

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synth-zju3"))
    parser.add_argument("--frames", type=int, default=3, help="frames of the zju preset made when --data is missing")
    parser.add_argument("--reloads", type=int, default=3)
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmarks"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    if not (args.data / "annots.npy").exists():
        synth = SynthConfig.from_preset("zju")
        synth.num_frames = args.frames
        generate_capture(args.data, synth)
    config = method_config(False, args.data, args.output, 1, experiment_name="reload", device="cpu")
    dataparser = config.pipeline.datamanager.dataparser
    dataparser.train_cameras, dataparser.test_cameras = tuple(range(20)), (20, 21, 22)
    dataparser.train_frames = tuple(range(args.frames))
    datamanager = set_up_trainer(config).pipeline.datamanager
    loader, sampler = datamanager.train_image_dataloader, datamanager.train_pixel_sampler

    reloads = []
    for _ in range(args.reloads):
        started = time.perf_counter()
        batch = loader._get_collated_batch()  # what nerfstudio's cache loader runs at each refill
        loaded = time.perf_counter()
        sampler.band(batch["mask"])
        reloads.append({"images_and_masks_s": loaded - started, "band_s": time.perf_counter() - loaded})
    print_report({
        "data": str(args.data), "images_per_reload": int(batch["image"].shape[0]),
        "image_size": list(batch["image"].shape[1:3]), "reloads": reloads,
    }, args.json)  # fmt: skip


if __name__ == "__main__":
    main()
