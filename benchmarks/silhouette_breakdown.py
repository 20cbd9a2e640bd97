"""Where the image error of a trained avatar comes from, beside the body prior alone (prints figures).

For every image of the training and held-out cameras, the squared colour error (summed over pixels,
mean over RGB) is split by the foreground mask and the rendered silhouette (accumulation > 0.5):
- ``inside``: pixels of the person; ``outside``: background pixels;
- ``missed_foreground``: person pixels the render leaves empty;
- ``false_foreground``: background pixels the render covers (a fat avatar);
with PSNR and silhouette IoU. Each for the avatar and for the same model with its SDF residual off.
This is how the over-wide silhouettes of the old pixel sampler were found (issue #3).

    python benchmarks/silhouette_breakdown.py --data data/synth-tiny --preset tiny --steps 400 \\
        --set pipeline.model.sdf_field.max_resolution=128      # the end-to-end test's run
    python benchmarks/silhouette_breakdown.py --load-config outputs/.../config.yml   # a trained run
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch


def breakdown(model, dataset) -> Dict[str, float]:
    """Mean over the images of ``dataset`` of PSNR, IoU and the split squared error."""
    from hfavatar_ns.evaluation.avatar_eval import silhouette_iou
    from hfavatar_ns.evaluation.image_metrics import psnr

    rows: List[Dict[str, float]] = []
    for index in range(len(dataset)):
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
        })  # fmt: skip
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]}


def main() -> None:
    from benchmark_run import add_run_arguments, run_config
    from hfavatar_ns.training import set_up_trainer
    from hfavatar_ns.evaluation.avatar_eval import body_prior_only

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, default_steps=400)
    parser.add_argument("--load-config", type=Path, default=None, help="evaluate this trained run instead")
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
    datasets = {"training cameras": pipeline.datamanager.train_dataset, "held-out cameras": pipeline.datamanager.eval_dataset}
    report: Dict[str, Dict[str, Dict[str, float]]] = {}
    for split, dataset in datasets.items():
        report[split] = {"avatar": breakdown(model, dataset)}
        with body_prior_only(model):
            report[split]["body_prior"] = breakdown(model, dataset)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    columns = list(report["training cameras"]["avatar"])
    print(f"{'':18} {'':10} " + " ".join(f"{name:>17}" for name in columns))
    for split, rows in report.items():
        for name, values in rows.items():
            print(f"{split:18} {name:10} " + " ".join(f"{values[c]:17.3f}" for c in columns))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
