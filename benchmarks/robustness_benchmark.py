"""How the avatar copes with the errors of real captures: one table, same budget for every row.

Rows (each a `quality_benchmark.py` run on a capture `hfavatar-synth` makes once, under --root):
- exact: the default capture, exact fits and masks;
- noisy fits: the same images with fits off by 3 deg per joint, 1 deg globally, 1.5 cm (drifting);
  trained without and with pose refinement;
- noisy masks: the same images with masks whose outline moves ~2 px, a hand or foot missing in 20% of
  them, background blobs in 20%; and each of the three alone (`mask_outlines_only`,
  `mask_missing_limbs_only`, `mask_blobs_only`);
- mono: the mono preset (one training camera, a full circle walked), exact fits; with the noisy masks
  above (exact fits); and with the noisy fits above, trained without refinement, with it (depth held
  along the camera's line of sight, the default for one camera) and with depth free.
Every run is scored on the exact twin of its capture (exact masks; ground-truth meshes and fits), on
--max-images held-out images per split and meshes at --mesh-resolution (4 and 128³ by default, so the
whole table fits one sitting on a 2-core CPU). Runs go to --output/runs/<row>; --reevaluate scores them
again without training.

    python benchmarks/robustness_benchmark.py --steps 800
    python benchmarks/robustness_benchmark.py --rows noisy_fits_refined --set pipeline.model.pose_correction_loss_mult=0

Prints the table (markdown) and writes every row's JSON under --output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

NOISY_FITS = {"fit_joint_noise_deg": 3.0, "fit_rotation_noise_deg": 1.0, "fit_translation_noise_m": 0.015}
NOISY_MASKS = {"mask_boundary_jitter_px": 2.0, "mask_missing_limb_rate": 0.2, "mask_blob_rate": 0.2}
REFINE = ["pipeline.model.deformation.pose_refinement=True"]
NO_REFINE = ["pipeline.model.deformation.pose_refinement=False"]
OUTLINE_2PX = "pipeline.datamanager.pixel_sampler.mask_outline_px=2"

CAPTURES = {  # name: (preset, capture errors)
    "default": ("default", {}),
    "default_noisy_fits": ("default", NOISY_FITS),
    "default_noisy_masks": ("default", NOISY_MASKS),
    # each of the noisy masks' three errors alone, to tell which one costs what
    "default_mask_outlines": ("default", {"mask_boundary_jitter_px": NOISY_MASKS["mask_boundary_jitter_px"]}),
    "default_mask_missing_limbs": ("default", {"mask_missing_limb_rate": NOISY_MASKS["mask_missing_limb_rate"]}),
    "default_mask_blobs": ("default", {"mask_blob_rate": NOISY_MASKS["mask_blob_rate"]}),
    "mono": ("mono", {}),
    "mono_noisy_fits": ("mono", NOISY_FITS),
    "mono_noisy_masks": ("mono", NOISY_MASKS),
}
ROWS = {  # name: (training capture, exact capture to score on, overrides)
    "exact": ("default", "default", NO_REFINE),
    "exact_refined": ("default", "default", REFINE),
    "noisy_fits": ("default_noisy_fits", "default", NO_REFINE),
    "noisy_fits_refined": ("default_noisy_fits", "default", REFINE),
    "noisy_masks": ("default_noisy_masks", "default", NO_REFINE),
    "noisy_masks_trust_all": ("default_noisy_masks", "default", NO_REFINE + ["pipeline.model.mask_trust_margin=None"]),
    "noisy_masks_outline": ("default_noisy_masks", "default", NO_REFINE + [OUTLINE_2PX]),
    "mask_outlines_only": ("default_mask_outlines", "default", NO_REFINE),
    "mask_missing_limbs_only": ("default_mask_missing_limbs", "default", NO_REFINE),
    "mask_blobs_only": ("default_mask_blobs", "default", NO_REFINE),
    "mono": ("mono", "mono", []),
    "mono_observation_colour_normals": ("mono", "mono", ["pipeline.model.sdf_field.color_normals=observation"]),
    "mono_noisy_masks": ("mono_noisy_masks", "mono", []),
    "mono_noisy_fits": ("mono_noisy_fits", "mono", NO_REFINE),
    "mono_noisy_fits_refined": ("mono_noisy_fits", "mono", REFINE),  # depth held: one training camera
    "mono_noisy_fits_refined_free_depth": (
        "mono_noisy_fits", "mono", REFINE + ["pipeline.model.deformation.pose_refinement_depth=free"]
    ),
}


def make_capture(root: Path, name: str) -> Path:
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture

    folder = root / name
    if not (folder / "split.json").exists():
        preset, errors = CAPTURES[name]
        generate_capture(folder, SynthConfig.from_preset(preset, **errors), overwrite=True, workers=2)
    return folder


def table(results: Dict[str, dict]) -> str:
    lines = [
        "| run | novel view PSNR / SSIM | novel pose PSNR | Chamfer mm | NC | F@1cm | prior: view PSNR, Chamfer | fit vertex error mm (given → refined) | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, report in results.items():
        avatar, prior = report["avatar"], report["body_prior"]
        geometry = avatar["geometry"]
        fits = report.get("fit_errors")
        fit_text = "–"
        if fits is not None:
            given, refined = fits["given"], fits["refined"]
            fit_text = f"{given['vertex_mm']:.1f} → {refined['vertex_mm']:.1f} ({given['joint_angle_deg']:.1f}° → {refined['joint_angle_deg']:.1f}°)"
        lines.append(
            f"| {name} | {avatar['novel_view']['psnr']:.2f} / {avatar['novel_view']['ssim']:.3f} "
            f"| {avatar['novel_pose']['psnr']:.2f} | {geometry['chamfer_mm']:.2f} | {geometry['normal_consistency']:.3f} "
            f"| {geometry['f_score_1cm']:.3f} | {prior['novel_view']['psnr']:.2f}, {prior['geometry']['chamfer_mm']:.1f} "
            f"| {fit_text} | {report['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="exact,noisy_fits,noisy_fits_refined,noisy_masks,mono",
                        help=f"comma-separated, from {', '.join(ROWS)}")
    parser.add_argument("--root", type=Path, default=Path("data/robustness"), help="where the captures are made")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--mesh-resolution", type=int, default=128)
    parser.add_argument("--max-images", type=int, default=4, help="held-out images per split scored")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override for every row")
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmarks/robustness"))
    parser.add_argument("--tabulate-only", action="store_true", help="print the table of the JSONs already written")
    parser.add_argument("--reevaluate", action="store_true",
                        help="score the rows' finished runs again (e.g. with other --max-images) instead of training")
    args = parser.parse_args()
    names: List[str] = [name.strip() for name in args.rows.split(",") if name.strip()]
    unknown = [name for name in names if name not in ROWS]
    if unknown:
        parser.error(f"unknown rows {unknown}; choose from {', '.join(ROWS)}")

    results: Dict[str, dict] = {}
    for name in names:
        path = args.output / f"{name}.json"
        if not args.tabulate_only:
            train_capture, eval_capture, overrides = ROWS[name]
            data, eval_data = make_capture(args.root, train_capture), make_capture(args.root, eval_capture)
            run_dir = args.output / "runs" / name
            command = [sys.executable, str(Path(__file__).with_name("quality_benchmark.py")), "--data", str(data),
                       "--eval-data", str(eval_data), "--steps", str(args.steps), "--output", str(run_dir),
                       "--mesh-resolution", str(args.mesh_resolution), "--max-images", str(args.max_images),
                       "--json", str(path)]  # fmt: skip
            if args.reevaluate:
                command += ["--load-config", str(next(run_dir.rglob("config.yml")))]
            for assignment in overrides + args.set:
                command += ["--set", assignment]
            print(f"[{name}] {' '.join(command)}", flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        if path.exists():
            results[name] = json.loads(path.read_text())
            print(table({name: results[name]}).splitlines()[-1], flush=True)
    print(table(results))


if __name__ == "__main__":
    main()
