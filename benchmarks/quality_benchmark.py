"""Quality of `hfavatar-lite` on a synthetic capture, beside the body prior alone.

Trains hfavatar-lite (or loads a finished run), then prints:
- novel-view PSNR / SSIM on the held-out cameras (training frames),
- novel-pose PSNR on held-out frames,
- posed-mesh Chamfer (mm and ARAH cm^2), normal consistency and F-score@1cm against the ground-truth
  clothed mesh at training frames,
each for the avatar and for the same model with its SDF residual off (the body prior alone; the body
model's own mesh for geometry). Writes the figures as JSON.

    python benchmarks/quality_benchmark.py --data data/synth-default --steps 1500
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    from torchmetrics.functional import structural_similarity_index_measure as ssim

    from hfavatar_ns.evaluation.avatar_eval import body_prior_only, compare_posed_geometry
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture
    from hfavatar_ns.training import lite_config, train

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/synth-default"))
    parser.add_argument("--preset", default="default", help="hfavatar-synth preset made when --data is missing")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmarks"))
    parser.add_argument("--mesh-resolution", type=int, default=128)
    parser.add_argument("--json", type=Path, default=Path("outputs/benchmarks/quality.json"))
    args = parser.parse_args()
    if not (args.data / "annots.npy").exists():
        generate_capture(args.data, SynthConfig.from_preset(args.preset))

    started = time.time()
    trainer = train(lite_config(args.data, args.output, args.steps, experiment_name=f"quality-{args.data.name}"))
    train_seconds = time.time() - started
    model = trainer.pipeline.model
    model.eval()

    def image_metrics(split: str):
        dataparser = trainer.pipeline.datamanager.dataparser
        dataparser.config.test_split = split
        from nerfstudio.data.datasets.base_dataset import InputDataset

        dataset = InputDataset(dataparser.get_dataparser_outputs(split="test"))
        values = {"psnr": [], "ssim": []}
        for index in range(len(dataset)):
            batch = dataset[index]
            with torch.no_grad():
                outputs = model.get_outputs_for_camera(dataset.cameras[index : index + 1])
            target, _ = model.target_rgb(batch, "cpu")
            predicted = outputs["rgb"].clamp(0, 1)
            values["psnr"].append(float(-10 * torch.log10(torch.mean((predicted - target) ** 2))))
            values["ssim"].append(float(ssim(predicted.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None])))
        return {key: float(np.mean(v)) for key, v in values.items()} | {"images": len(dataset)}

    report = {"data": str(args.data), "steps": args.steps, "train_seconds": train_seconds}
    for name, context in (("avatar", None), ("body_prior", body_prior_only(model))):
        if context is not None:
            context.__enter__()
        report[name] = {"novel_view": image_metrics("novel_view"), "novel_pose": image_metrics("novel_pose")}
        if context is not None:
            context.__exit__(None, None, None)
    training_rows = sorted({int(r) for r in trainer.pipeline.datamanager.train_dataset.cameras.metadata["frame_idx"].reshape(-1)})
    rows = [training_rows[0], training_rows[len(training_rows) // 2], training_rows[-1]]
    geometry = compare_posed_geometry(model, args.data, rows, resolution=args.mesh_resolution)
    report["avatar"]["geometry"] = geometry.avatar
    report["body_prior"]["geometry"] = geometry.body_prior
    report["chamfer_ratio_avatar_to_prior"] = geometry.avatar["chamfer_mm"] / geometry.body_prior["chamfer_mm"]

    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
