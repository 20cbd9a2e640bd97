"""Quality of `hfavatar-lite` (or `hfavatar`) on a synthetic capture, beside the body prior alone.

Trains the method, then prints:
- novel-view PSNR / SSIM on the held-out cameras (training frames),
- novel-pose PSNR on held-out frames,
- posed-mesh Chamfer (mm and ARAH cm^2), normal consistency and F-score@1cm against the ground-truth
  clothed mesh at training frames,
each for the avatar and for the same model with its SDF residual off (the body prior alone; the body
model's own mesh for geometry). Writes the figures as JSON.

    python benchmarks/quality_benchmark.py --data data/synth-default --steps 1000
    python benchmarks/quality_benchmark.py --method hfavatar --device cuda --steps 3000 --curve-every 250

``--eval-data CAPTURE`` scores against another capture of the same images (hfavatar-synth with the same
seed and no fit/mask errors): a run trained on noisy fits or masks is scored on exact masks. With the
capture's exact fits (``ground_truth/fits``) it also reports the fits' errors at the training frames,
given and refined.

``--curve-every K`` also renders two held-out images every K steps and records (training seconds,
PSNR): how fast a device reaches a given quality. ``--max-train-seconds S`` ends training after S seconds
of it (evaluation time not counted), whatever ``--steps`` says: runs sized in time on an unknown device.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


class TrainingBudgetSpent(Exception):
    """Raised from a training callback to end training at ``--max-train-seconds``."""


def main() -> None:
    from torchmetrics.functional import structural_similarity_index_measure as ssim

    from benchmark_run import add_run_arguments
    from hfavatar_ns.evaluation.avatar_eval import body_prior_only, compare_posed_geometry

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, default_steps=1000)
    parser.add_argument("--curve-every", type=int, default=0)
    parser.add_argument("--mesh-resolution", type=int, default=128)
    parser.add_argument("--max-images", type=int, default=8,
                        help="images per split, evenly spread (0: all); full-image renders are slow on a CPU")
    parser.add_argument("--max-train-seconds", type=float, default=0.0, help="end training after this long (0: off)")
    parser.add_argument("--eval-data", type=Path, default=None,
                        help="capture to score against (same images, exact masks); default: --data")
    parser.add_argument("--load-config", type=Path, default=None,
                        help="evaluate this finished run (its config.yml) instead of training one")
    parser.add_argument("--mesh-the-prior", action=argparse.BooleanOptionalAction, default=True,
                        help="also score the body prior meshed as the avatar is (marching cubes of its SDF)")
    parser.add_argument("--json", type=Path, default=Path("outputs/benchmarks/quality.json"))
    args = parser.parse_args()
    if args.load_config is None:
        pipeline, train_seconds, steps, curve = train(args)
    else:  # evaluate a finished run again (other images or mesh resolution); its training figures stay
        from hfavatar_ns.scripts.avatar_run import load_avatar_run

        pipeline = load_avatar_run(args.load_config).pipeline
        previous = json.loads(args.json.read_text()) if args.json.exists() else {}
        train_seconds, steps, curve = previous.get("train_seconds"), previous.get("steps"), previous.get("curve", [])
    model = pipeline.model
    model.eval()
    model.body.refresh(tolerance=0.0)  # the body prior's meshes exactly at the refined fits

    eval_data = args.eval_data or args.data

    def image_metrics(split: str):
        import dataclasses

        from nerfstudio.data.datasets.base_dataset import InputDataset

        from hfavatar_ns.errors import InputError

        dataparser_config = dataclasses.replace(
            pipeline.datamanager.dataparser.config, data=eval_data, test_split=split
        )
        try:
            dataset = InputDataset(dataparser_config.setup().get_dataparser_outputs(split=split))
        except InputError as error:  # e.g. novel views of a capture whose only camera trains
            print(f"No {split} images to score: {error}", flush=True)
            return None
        values = {"psnr": [], "ssim": []}
        indices = np.arange(len(dataset))
        if 0 < args.max_images < len(dataset):
            indices = np.linspace(0, len(dataset) - 1, args.max_images).round().astype(int)
        for index in indices.tolist():
            batch = dataset[index]
            with torch.no_grad():
                outputs = model.get_outputs_for_camera(dataset.cameras[index : index + 1].to(model.device))
            target, _ = model.target_rgb(batch, outputs["rgb"].device)
            predicted = outputs["rgb"].clamp(0, 1)
            values["psnr"].append(float(-10 * torch.log10(torch.mean((predicted - target) ** 2))))
            values["ssim"].append(float(ssim(predicted.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None])))
        return {key: float(np.mean(v)) for key, v in values.items()} | {"images": len(indices)}

    report = {
        "data": str(args.data), "eval_data": str(eval_data), "method": args.method, "steps": steps,
        "train_seconds": train_seconds, "max_images": args.max_images, "mesh_resolution": args.mesh_resolution,
        "device": torch.cuda.get_device_name() if str(model.device).startswith("cuda") else "cpu",
        "curve": curve,
        "overrides": args.set,
        # NeuS's learned sharpness at the end (1/metres), to tell a blurred edge from a misplaced one.
        "neus_inv_s": float(model.field.inv_s()),
    }  # fmt: skip

    def save_report() -> None:  # after each part, so a time limit keeps what was measured
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))

    for name, context in (("avatar", None), ("body_prior", body_prior_only(model))):
        if context is not None:
            context.__enter__()
        evaluating = time.time()
        report[name] = {"novel_view": image_metrics("novel_view"), "novel_pose": image_metrics("novel_pose")}
        print(f"{name}: images evaluated in {time.time() - evaluating:.0f} s", flush=True)
        if context is not None:
            context.__exit__(None, None, None)
        save_report()
    training_rows = model.body.training_rows()
    rows = [training_rows[0], training_rows[len(training_rows) // 2], training_rows[-1]]
    evaluating = time.time()
    geometry = compare_posed_geometry(
        model, eval_data, rows, resolution=args.mesh_resolution, mesh_the_prior=args.mesh_the_prior
    )
    print(f"geometry evaluated in {time.time() - evaluating:.0f} s", flush=True)
    report["avatar"]["geometry"] = geometry.avatar
    report["body_prior"]["geometry"] = geometry.body_prior
    report["body_prior"]["geometry_meshed_as_the_avatar"] = geometry.body_prior_meshed
    report["chamfer_ratio_avatar_to_prior"] = geometry.avatar["chamfer_mm"] / geometry.body_prior["chamfer_mm"]

    report["fit_errors"] = training_fit_errors(model.body, eval_data)
    save_report()
    print(json.dumps(report, indent=2))


def training_fit_errors(body, capture_root: Path):
    """The given and the refined fits' errors at the training frames, against the capture's exact fits."""
    from hfavatar_ns.evaluation.fit_errors import fit_errors, read_true_fits

    rows = body.training_rows()
    truth = read_true_fits(capture_root, [body.frame_id(row) for row in rows])
    if truth is None:
        return None
    body_model = body.body_model.make()
    return {
        "given": fit_errors(body_model, body.fit_parameters(rows, refined=False), truth).as_dict(),
        "refined": fit_errors(body_model, body.fit_parameters(rows, refined=True), truth).as_dict(),
    }


def train(args):
    """Train the run ``args`` describe; returns its pipeline, training seconds, steps run and PSNR curve."""
    from nerfstudio.engine.callbacks import TrainingCallback, TrainingCallbackLocation

    from benchmark_run import run_config
    from hfavatar_ns.evaluation.avatar_eval import render_dataset_psnr
    from hfavatar_ns.training import set_up_trainer

    config = run_config(args, args.steps, experiment_name=f"quality-{args.method}-{args.data.name}")
    config.save_config()
    trainer = set_up_trainer(config)
    curve = []
    evaluation_seconds = [0.0]
    started = time.time()

    def record_curve(step: int) -> None:
        if step == 0 or step % args.curve_every:
            return
        evaluating = time.time()
        trained_seconds = evaluating - started - evaluation_seconds[0]
        values = render_dataset_psnr(trainer.pipeline.model, trainer.pipeline.datamanager.eval_dataset, max_images=2)
        evaluation_seconds[0] += time.time() - evaluating
        curve.append({"step": step, "train_seconds": trained_seconds, "heldout_psnr_2_images": float(np.mean(values))})
        print(f"curve: {curve[-1]}", flush=True)
        args.json.parent.mkdir(parents=True, exist_ok=True)  # partial results survive a time limit
        args.json.with_suffix(".curve.json").write_text(json.dumps(curve, indent=2))

    steps_run = [args.steps]

    def enforce_time_budget(step: int) -> None:
        if time.time() - started - evaluation_seconds[0] >= args.max_train_seconds:
            steps_run[0] = step + 1
            raise TrainingBudgetSpent

    if args.curve_every > 0:
        trainer.callbacks.append(TrainingCallback(
            where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION], update_every_num_iters=1, func=record_curve
        ))  # fmt: skip
    if args.max_train_seconds > 0:
        trainer.callbacks.append(TrainingCallback(
            where_to_run=[TrainingCallbackLocation.AFTER_TRAIN_ITERATION], update_every_num_iters=1,
            func=enforce_time_budget,
        ))  # fmt: skip
    try:
        trainer.train()
    except TrainingBudgetSpent:
        print(f"training stopped by --max-train-seconds after {steps_run[0]} steps", flush=True)
    train_seconds = time.time() - started - evaluation_seconds[0]
    return trainer.pipeline, train_seconds, steps_run[0], curve


if __name__ == "__main__":
    main()
