"""Where the image error of a trained avatar comes from, beside the body prior alone (prints figures).

For every image of the training and held-out cameras, the squared colour error (summed over pixels,
mean over RGB) is split by the foreground mask and the rendered silhouette (accumulation > 0.5):
- ``inside``: pixels of the person; ``outside``: background pixels;
- ``missed_foreground``: person pixels the render leaves empty;
- ``false_foreground``: background pixels the render covers (a fat avatar);
- ``inside_6+`` ... ``outside_1+``: the error by signed distance from the mask's outline, pixels
  (``image_metrics.OUTLINE_BANDS_PX``): a blurred or misplaced outline against wrong colours;
with PSNR and silhouette IoU. Each for the avatar and for the same model with its SDF residual off.
This is how the over-wide silhouettes of the old pixel sampler were found (issue #3).

    python benchmarks/silhouette_breakdown.py --data data/synth-tiny --preset tiny --steps 400 \\
        --set pipeline.model.sdf_field.max_resolution=128      # the end-to-end test's run
    python benchmarks/silhouette_breakdown.py --load-config outputs/.../config.yml   # a trained run
    python benchmarks/silhouette_breakdown.py --load-config RUN/config.yml --eval-data data/robustness/default \\
        --max-images 4 --splits held-out       # a run trained on noisy masks, scored on the exact ones
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch


def breakdown(model, dataset, max_images: int = 0) -> Dict[str, float]:
    """Mean over the images of ``dataset`` (``max_images`` evenly spread; 0: all) of PSNR, IoU and the split
    squared error."""
    from hfavatar_ns.evaluation.avatar_eval import silhouette_iou
    from hfavatar_ns.evaluation.image_metrics import psnr, squared_error_by_outline_distance

    rows: List[Dict[str, float]] = []
    indices = np.arange(len(dataset))
    if 0 < max_images < len(dataset):
        indices = np.linspace(0, len(dataset) - 1, max_images).round().astype(int)
    for index in indices.tolist():
        with torch.no_grad():
            outputs = model.get_outputs_for_camera(dataset.cameras[index : index + 1].to(model.device))
        target, mask = model.target_rgb(dataset[index], outputs["rgb"].device)
        predicted = outputs["rgb"].clamp(0, 1)
        error = ((predicted - target) ** 2).mean(dim=-1)
        person = mask[..., 0] > 0.5
        covered = outputs["accumulation"][..., 0] > 0.5
        rows.append({
            "psnr": float(psnr(predicted, target)),
            "silhouette_iou": silhouette_iou(outputs["accumulation"], mask),
            "inside": float(error[person].sum()),
            "outside": float(error[~person].sum()),
            "missed_foreground": float(error[person & ~covered].sum()),
            "false_foreground": float(error[~person & covered].sum()),
        } | squared_error_by_outline_distance(predicted, target, mask))  # fmt: skip
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def main() -> None:
    from benchmark_run import add_run_arguments, run_config
    from hfavatar_ns.training import set_up_trainer
    from hfavatar_ns.evaluation.avatar_eval import body_prior_only

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, default_steps=400)
    parser.add_argument("--load-config", type=Path, default=None, help="evaluate this trained run instead")
    parser.add_argument("--eval-data", type=Path, default=None,
                        help="score the held-out cameras on this capture (same images, exact masks)")
    parser.add_argument("--max-images", type=int, default=0, help="images per split, evenly spread (0: all)")
    parser.add_argument("--splits", choices=["both", "held-out"], default="both")
    parser.add_argument("--json", type=Path, default=Path("outputs/benchmarks/silhouette_breakdown.json"))
    args = parser.parse_args()
    if args.load_config is not None:
        from hfavatar_ns.scripts.avatar_run import load_avatar_run

        pipeline = load_avatar_run(args.load_config).pipeline
    else:
        config = run_config(args, args.steps, experiment_name=f"breakdown-{args.method}-{args.data.name}")
        config.save_config()
        trainer = set_up_trainer(config)
        trainer.train()
        pipeline = trainer.pipeline
    model = pipeline.model
    model.eval()
    model.body.refresh(tolerance=0.0)
    held_out = pipeline.datamanager.eval_dataset
    if args.eval_data is not None:
        import dataclasses

        from nerfstudio.data.datasets.base_dataset import InputDataset

        exact = dataclasses.replace(pipeline.datamanager.dataparser.config, data=args.eval_data)
        held_out = InputDataset(exact.setup().get_dataparser_outputs(split="test"))
    datasets = {"held-out cameras": held_out}
    if args.splits == "both":
        datasets = {"training cameras": pipeline.datamanager.train_dataset} | datasets
    report: Dict[str, Dict[str, Dict[str, float]]] = {}
    for split, dataset in datasets.items():
        report[split] = {"avatar": breakdown(model, dataset, args.max_images)}
        with body_prior_only(model):
            report[split]["body_prior"] = breakdown(model, dataset, args.max_images)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    columns = list(next(iter(report.values()))["avatar"])
    print(f"{'':18} {'':10} " + " ".join(f"{name:>17}" for name in columns))
    for split, rows in report.items():
        for name, values in rows.items():
            print(f"{split:18} {name:10} " + " ".join(f"{values[c]:17.3f}" for c in columns))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
