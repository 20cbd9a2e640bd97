"""The ablation table: the full model beside the model without each of its ideas, same capture and budget.

Rows (each a `quality_benchmark.py` run, in a process of its own, on one capture `hfavatar-synth` makes
once under --root):
- full: the method as its preset has it;
- no_body_prior: the SDF learned from an ellipsoid filling the body's box (``body_prior=False``);
- no_inner_sampling: the same samples per ray spread over the box around the posed body instead of its
  shell (``sampler.strategy=box``);
- no_iterative_deformation: one inverse-skinning step with the observation-space weights and no learned
  skinning (``deformation.num_iterations=1``, ``deformation.learned_skinning=False``);
- no_non_rigid: no pose-dependent offset (``deformation.non_rigid.enabled=False``). The offset only kicks in
  at ``deformation.non_rigid.kick_in_step`` (10k steps): a shorter schedule has no offset to take away, so
  this row is left out of the default rows of runs shorter than that.

    python benchmarks/ablation_benchmark.py --steps 800
    python benchmarks/ablation_benchmark.py --method hfavatar --steps 30000 --rows full,no_non_rigid

Prints the table (markdown) and writes every row's JSON under --output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

NON_RIGID_KICK_IN = 10_000

ROWS = {
    "full": [],
    "no_body_prior": ["pipeline.model.body_prior=False"],
    "no_inner_sampling": ["pipeline.model.sampler.strategy=box"],
    "no_iterative_deformation": [
        "pipeline.model.deformation.num_iterations=1",
        "pipeline.model.deformation.learned_skinning=False",
    ],
    "no_non_rigid": ["pipeline.model.deformation.non_rigid.enabled=False"],
}


def make_capture(root: Path, preset: str) -> Path:
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture

    folder = root / preset
    if not (folder / "split.json").exists():
        generate_capture(folder, SynthConfig.from_preset(preset), overwrite=True, workers=2)
    return folder


def _cell(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def table(results: Dict[str, dict]) -> str:
    lines = [
        "| run | novel view PSNR / SSIM | novel pose PSNR / SSIM | Chamfer mm | NC | F@1cm | fold recovery | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, report in results.items():
        avatar = report["avatar"]
        geometry = avatar["geometry"]
        view, pose = avatar["novel_view"], avatar["novel_pose"]
        lines.append(
            f"| {name} | {view['psnr']:.2f} / {view['ssim']:.3f} | {pose['psnr']:.2f} / {pose['ssim']:.3f} "
            f"| {geometry['chamfer_mm']:.2f} | {geometry['normal_consistency']:.3f} | {geometry['f_score_1cm']:.3f} "
            f"| {_cell(geometry.get('fold_recovery'), 2)} | {report['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default=None, help=f"comma-separated, from {', '.join(ROWS)} (default: all that apply)")
    parser.add_argument("--method", default="hfavatar-lite", choices=["hfavatar-lite", "hfavatar"])
    parser.add_argument("--device", default=None, help="passed to quality_benchmark.py (e.g. cuda)")
    parser.add_argument("--preset", default="default", help="hfavatar-synth preset of the capture")
    parser.add_argument("--root", type=Path, default=Path("data/ablation"), help="where the capture is made")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--mesh-resolution", type=int, default=256)
    parser.add_argument("--max-images", type=int, default=4, help="held-out images per split scored")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override for every row")
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmarks/ablation"))
    parser.add_argument("--tabulate-only", action="store_true", help="print the table of the JSONs already written")
    parser.add_argument("--reevaluate", action="store_true", help="score the rows' finished runs again instead of training")
    args = parser.parse_args()
    if args.rows is None:
        names: List[str] = [n for n in ROWS if n != "no_non_rigid" or args.steps > NON_RIGID_KICK_IN]
    else:
        names = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")

    results: Dict[str, dict] = {}
    for name in names:
        path = args.output / f"{name}.json"
        if not args.tabulate_only:
            data = make_capture(args.root, args.preset)
            run_dir = args.output / "runs" / name
            command = [sys.executable, str(Path(__file__).with_name("quality_benchmark.py")), "--data", str(data),
                       "--method", args.method, "--steps", str(args.steps), "--output", str(run_dir),
                       "--mesh-resolution", str(args.mesh_resolution), "--max-images", str(args.max_images),
                       "--json", str(path), "--no-mesh-the-prior"]  # fmt: skip
            if args.device is not None:
                command += ["--device", args.device]
            if args.reevaluate:
                command += ["--load-config", str(next(run_dir.rglob("config.yml")))]
            for assignment in ROWS[name] + args.set:
                command += ["--set", assignment]
            print(f"[{name}] {' '.join(command)}", flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        if path.exists():
            results[name] = json.loads(path.read_text())
            print(table({name: results[name]}).splitlines()[-1], flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
