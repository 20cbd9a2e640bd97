"""Where pose refinement's corrections go, per joint, and how noisy the gradients they learn from are.

``joints``: a finished run with pose refinement, on a capture with exact fits (``ground_truth/fits``, as
hfavatar-synth writes): per joint, the given and the refined fits' mean rotation error at the training
frames, and the mean size of the learned correction (degrees).

``gradients``: trains a few steps with refinement on (its prior off) and prints, per correction (joint
rotations, ``Rh``, ``Th``), the mean and the standard deviation over the steps of each gradient, and per joint
the standard deviation: a correction whose gradient's mean is small against its spread is learned from
noise, and Adam steps it about as far as one the images pin down. CPU, about a minute on the default capture:

    python benchmarks/refinement_diagnostics.py joints --load-config <run>/config.yml --truth data/robustness/default
    python benchmarks/refinement_diagnostics.py gradients --data data/robustness/default_noisy_fits --steps 40
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from hfavatar_ns.body.skinning import SMPL_JOINT_NAMES

JOINT_NAMES = tuple(name.replace("_", " ") for name in SMPL_JOINT_NAMES)


def joint_errors(config: Path, truth: Path) -> None:
    from hfavatar_ns.evaluation.fit_errors import read_true_fits, rotation_angle_deg
    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    body = load_avatar_run(config).pipeline.model.body
    if not body.correction_parameters():
        raise SystemExit(f"The run {config} did not refine poses: nothing to compare.")
    rows = body.training_rows()
    true_fits = read_true_fits(truth, [body.frame_id(row) for row in rows])
    if true_fits is None:
        raise SystemExit(f"{truth} has no ground_truth/fits for the training frames (hfavatar-synth writes them).")
    true_poses = true_fits["poses"].float().reshape(len(rows), 24, 3)
    given = body.fit_parameters(rows, refined=False)["poses"].reshape(len(rows), 24, 3)
    refined = body.fit_parameters(rows, refined=True)["poses"].reshape(len(rows), 24, 3)
    given_error = rotation_angle_deg(given, true_poses).mean(0)
    refined_error = rotation_angle_deg(refined, true_poses).mean(0)
    correction = rotation_angle_deg(refined, given).mean(0)
    print(f"{'joint':<16}{'given':>8}{'refined':>9}{'correction':>12}   (degrees, mean over {len(rows)} frames)")
    for name, before, after, moved in zip(JOINT_NAMES, given_error, refined_error, correction):
        print(f"{name:<16}{before:8.2f}{after:9.2f}{moved:12.2f}")


def gradient_noise(data: Path, steps: int) -> None:
    from hfavatar_ns.training import lite_config, set_up_trainer

    with tempfile.TemporaryDirectory() as output:
        config = lite_config(data, Path(output), 800)
        config.pipeline.model.deformation.pose_refinement = True
        config.pipeline.model.pose_correction_loss_mult = 0.0
        trainer = set_up_trainer(config)
        pipeline, optimizers = trainer.pipeline, trainer.optimizers
        body = pipeline.model.body
        parameters = {"joint rotations": body.pose_correction, "Rh": body.rotation_correction}
        parameters["Th"] = body.translation_correction
        gradients = {name: [] for name in parameters}
        pipeline.train()
        for step in range(steps):
            optimizers.zero_grad_all()
            _, losses, _ = pipeline.get_train_loss_dict(step=step)
            sum(losses.values()).backward()
            for name, parameter in parameters.items():
                gradients[name].append(parameter.grad.detach().clone())
            optimizers.optimizer_step_all()
    rows = body.training_rows()
    print(f"gradients over {steps} steps at {len(rows)} training frames (mean |mean|, mean std, mean |mean|/std)")
    for name, values in gradients.items():
        stacked = torch.stack(values)[:, rows]
        mean, spread = stacked.mean(0), stacked.std(0)
        ratio = (mean.abs() / spread.clamp_min(1e-12)).mean()
        print(f"{name:<16}{float(mean.abs().mean()):10.2e}{float(spread.mean()):10.2e}{float(ratio):8.2f}")
        if name == "joint rotations":
            per_joint = spread.mean(dim=(0, 2))
            for joint, value in zip(JOINT_NAMES, per_joint.tolist()):
                print(f"  {joint:<16}std {value:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    joints = commands.add_parser("joints", help="per-joint errors and corrections of a finished run")
    joints.add_argument("--load-config", type=Path, required=True)
    joints.add_argument("--truth", type=Path, required=True, help="the capture with the exact fits")
    gradients = commands.add_parser("gradients", help="the corrections' gradient noise over a few steps")
    gradients.add_argument("--data", type=Path, required=True)
    gradients.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    if args.command == "joints":
        joint_errors(args.load_config, args.truth)
    else:
        gradient_noise(args.data, args.steps)


if __name__ == "__main__":
    main()
