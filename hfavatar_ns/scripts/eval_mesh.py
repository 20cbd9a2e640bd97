"""``hfavatar-eval-mesh``: posed meshes against ground truth, with the metrics the field reports.

Two ways in:

* mesh files: ``--pred a.ply b.ply --gt x.ply y.ply`` compares the pairs in order; ``--pred DIR --gt DIR``
  pairs every mesh of the first folder with the file of the same name in the second or, failing that,
  of the same trailing number (``frame_000030.ply`` from ``hfavatar-export`` meets ``000030.ply``);
* a trained run: ``--load-config outputs/.../config.yml [--frames 0 10 20]`` extracts the avatar posed at
  each frame (marching cubes at ``--resolution``, largest piece kept, as ``hfavatar-export`` writes it)
  and compares it, and the posed body model beside it (the prior; ``--no-prior`` skips it), with the
  ground truth of that frame: hfavatar-synth's ``ground_truth/posed/{frame:06d}.ply`` in the run's
  capture, or with ``--gt-dir`` a folder of per-frame meshes named by the 0-based frame id
  (``30.ply``, ``000030.obj``), e.g. ARAH's pseudo-ground truth for ZJU-MoCap, renamed.

Meshes are compared as they are: posed, in world coordinates (metres), no alignment, no cleaning of the
ground truth (ARAH also keeps the largest piece of its pseudo-ground truth and cuts the floor off it;
do that beforehand for numbers comparable with its paper). The metrics (see
:mod:`hfavatar_ns.evaluation.mesh_metrics`):

==================== ====== ==========================================================================
name                 unit   meaning
==================== ====== ==========================================================================
chamfer_arah_cm2     cm^2   ARAH's Chamfer: vertices x100, 0.5 (mean d^2 pred->gt + mean d^2 gt->pred)
                            over mesh vertices (depends on how finely the prediction is meshed)
chamfer_mm           mm     symmetric mean distance of uniform surface samples to the other surface
normal_consistency   1      ARAH's: 1 - mean |n_pred - n_gt|, each gt vertex and its nearest predicted
                            vertex (1 is best, -1 inside out)
fscore_1cm           1      F-score of surface samples within 1 cm (1 is best)
==================== ====== ==========================================================================

Prints a table (one row per pair or per frame and mesh, then the means) and, with ``--json``, writes
the rows, the means and the metric units.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import trimesh
import tyro
from tqdm import tqdm

from hfavatar_ns.errors import InputError, exit_on_input_error
from hfavatar_ns.evaluation.mesh_metrics import mesh_metrics

MESH_SUFFIXES = (".ply", ".obj", ".off", ".stl")

METRICS: Dict[str, Dict[str, str]] = {
    "chamfer_arah_cm2": {
        "unit": "cm^2",
        "better": "lower",
        "meaning": "ARAH: vertices x100, 0.5 * (mean d^2 pred->gt + mean d^2 gt->pred) over mesh vertices",
    },
    "chamfer_mm": {
        "unit": "mm",
        "better": "lower",
        "meaning": "symmetric mean distance of uniform surface samples to the other surface",
    },
    "normal_consistency": {
        "unit": "1",
        "better": "higher",
        "meaning": "ARAH: 1 - mean |n_pred - n_gt| over gt vertices and their nearest predicted vertices",
    },
    "fscore_1cm": {
        "unit": "1",
        "better": "higher",
        "meaning": "F-score of surface samples within 1 cm of the other surface",
    },
}


@dataclass
class EvalMeshConfig:
    """Compare posed meshes with ground truth: pairs of mesh files, or a trained run's avatar and body prior."""

    pred: Tuple[Path, ...] = ()
    """Predicted meshes (.ply/.obj/.off/.stl), or one folder of them."""
    gt: Tuple[Path, ...] = ()
    """Ground-truth meshes, as many as --pred (paired in order), or one folder (paired by file name)."""
    load_config: Optional[Path] = None
    """Evaluate a trained run instead: its config.yml (as for hfavatar-export)."""
    frames: Optional[Tuple[int, ...]] = None
    """With --load-config: frame ids (0-based, as in annots.npy); default: first, middle and last training frame."""
    gt_dir: Optional[Path] = None
    """With --load-config: per-frame ground truth named by frame id (30.ply, 000030.obj, ...); default: the
    capture's ground_truth/posed/ (hfavatar-synth)."""
    resolution: int = 256
    """With --load-config: marching-cubes grid resolution along each axis."""
    prior: bool = True
    """With --load-config: also evaluate the posed body model (the prior) on the same frames."""
    keep_largest_component: bool = True
    """With --load-config: keep the extracted avatar's largest piece (as hfavatar-export and ARAH do)."""
    samples: int = 100_000
    """Surface samples per mesh for chamfer_mm and fscore_1cm."""
    json: Optional[Path] = None
    """Write the per-frame rows, the means and the metric units to this JSON file."""


# ------------------------------------------------------------------------------------------ mesh files


def load_mesh(path: Path, role: str) -> trimesh.Trimesh:
    """A triangle mesh from ``path`` (a scene's pieces are merged); ``role`` names it in errors."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"No {role} mesh at {path}: check the path.")
    try:
        loaded = trimesh.load(path, process=False)
    except Exception as error:  # trimesh raises many kinds for unreadable files
        raise InputError(f"Cannot read the {role} mesh {path} ({error}); give a .ply, .obj, .off or .stl mesh.")
    if isinstance(loaded, trimesh.Scene):
        pieces = [g for g in loaded.geometry.values() if isinstance(g, trimesh.Trimesh)]
        loaded = trimesh.util.concatenate(pieces) if pieces else loaded
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        kind = "a point cloud" if isinstance(loaded, trimesh.PointCloud) else "no triangles"
        raise InputError(
            f"The {role} mesh {path} has no faces ({kind}): the metrics need a triangle mesh; "
            "export a surface (e.g. marching cubes) instead of points."
        )
    return loaded


def mesh_files_in(folder: Path) -> List[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_SUFFIXES)
    if not files:
        raise InputError(f"{folder} holds no {'/'.join(MESH_SUFFIXES)} meshes: point to the folder of meshes.")
    return files


def trailing_number(path: Path) -> Optional[int]:
    """The number a file name ends with (``frame_000030.ply`` -> 30), or None."""
    match = re.search(r"(\d+)$", path.stem)
    return int(match.group(1)) if match else None


def pair_by_name(pred_dir: Path, gt_dir: Path) -> List[Tuple[Path, Path]]:
    """Each mesh of ``pred_dir`` with the mesh of ``gt_dir`` of the same stem, else of the same trailing number."""
    gt_files = mesh_files_in(gt_dir)
    by_stem = {p.stem: p for p in gt_files}
    by_number: Dict[int, List[Path]] = {}
    for p in gt_files:
        if trailing_number(p) is not None:
            by_number.setdefault(trailing_number(p), []).append(p)
    pairs = []
    for pred in mesh_files_in(pred_dir):
        number = trailing_number(pred)
        if pred.stem in by_stem:
            pairs.append((pred, by_stem[pred.stem]))
        elif number is not None and len(by_number.get(number, [])) == 1:
            pairs.append((pred, by_number[number][0]))
        else:
            raise InputError(
                f"{gt_dir} has no ground truth for {pred.name} (no {pred.stem}.* and no single file numbered "
                f"{number}): add it, or remove {pred.name} from {pred_dir}."
            )
    return pairs


def pair_mesh_files(pred: Sequence[Path], gt: Sequence[Path]) -> List[Tuple[Path, Path]]:
    """(predicted, ground truth) pairs from --pred/--gt: two lists of files in order, or two folders."""
    if not pred or not gt:
        raise InputError("Give both --pred and --gt (meshes or one folder each), or --load-config for a trained run.")
    for role, paths in (("predicted", pred), ("ground-truth", gt)):
        for path in paths:
            if not path.exists():
                raise InputError(f"No {role} mesh or folder at {path}: check the path.")
    folders = [len(paths) == 1 and paths[0].is_dir() for paths in (pred, gt)]
    if all(folders):
        return pair_by_name(pred[0], gt[0])
    if any(folders) or any(p.is_dir() for p in (*pred, *gt)):
        raise InputError("Give --pred and --gt both as lists of mesh files or both as one folder each, not a mix.")
    if len(pred) != len(gt):
        raise InputError(
            f"{len(pred)} predicted meshes but {len(gt)} ground-truth meshes: --pred and --gt pair up in order, "
            "give as many of each."
        )
    return list(zip(pred, gt))


def metrics_row(predicted: trimesh.Trimesh, ground_truth: trimesh.Trimesh, samples: int) -> Dict[str, float]:
    """The four metrics of one pair under their reported names, and the vertex counts ARAH's Chamfer depends on."""
    values = mesh_metrics(predicted, ground_truth, samples)
    return {
        "chamfer_arah_cm2": values.chamfer_arah_cm2,
        "chamfer_mm": values.chamfer_mm,
        "normal_consistency": values.normal_consistency,
        "fscore_1cm": values.f_score_1cm,
        "pred_vertices": len(predicted.vertices),
        "gt_vertices": len(ground_truth.vertices),
    }


def evaluate_mesh_files(config: EvalMeshConfig) -> List[Dict]:
    pairs = pair_mesh_files(config.pred, config.gt)
    # Read every file once first (then let it go): a bad one stops the run before any metric is computed.
    for pred, gt in pairs:
        load_mesh(pred, "predicted")
        load_mesh(gt, "ground-truth")
    rows = []
    for pred, gt in tqdm(pairs, desc="comparing meshes", unit="pair"):
        values = metrics_row(load_mesh(pred, "predicted"), load_mesh(gt, "ground-truth"), config.samples)
        rows.append({"model": "pred", "name": pred.name, "frame": None, "pred": str(pred), "gt": str(gt), **values})
    return rows


# ------------------------------------------------------------------------------------------ a trained run


def default_frames(avatar) -> List[int]:
    """First, middle and last training frame."""
    body = avatar.model.body
    ids = sorted(body.frame_id(row) for row in body.training_rows())
    return sorted({ids[0], ids[len(ids) // 2], ids[-1]})


def ground_truth_file(frame_id: int, capture_root: Path, gt_dir: Optional[Path]) -> Path:
    """The ground-truth mesh of a frame: in ``gt_dir`` by frame id, else hfavatar-synth's in the capture."""
    if gt_dir is None:
        path = Path(capture_root) / "ground_truth" / "posed" / f"{frame_id:06d}.ply"
        if not path.is_file():
            raise InputError(
                f"No ground truth for frame {frame_id} at {path} (hfavatar-synth captures have one per frame): "
                "pass --gt-dir with per-frame meshes named by frame id (e.g. ARAH's pseudo-ground truth)."
            )
        return path
    if not Path(gt_dir).is_dir():
        raise InputError(f"--gt-dir {gt_dir} is not a folder: give the folder of per-frame ground-truth meshes.")
    matches = [p for p in mesh_files_in(Path(gt_dir)) if trailing_number(p) == frame_id]
    if len(matches) != 1:
        found = "none" if not matches else ", ".join(p.name for p in matches)
        raise InputError(
            f"{gt_dir} needs exactly one mesh for frame {frame_id} (named {frame_id}.ply, {frame_id:06d}.obj, ...); "
            f"found {found}. Add it, or leave frame {frame_id} out of --frames."
        )
    return matches[0]


def extract_avatar_mesh(model, row: int, config: EvalMeshConfig) -> trimesh.Trimesh:
    """The avatar posed at a row, in world coordinates; its largest piece if asked."""
    from hfavatar_ns.geometry.mesh_extraction import sdf_mesh

    sdf_fn = lambda points: model.posed_sdf(points, row)  # noqa: E731
    return sdf_mesh(
        sdf_fn, model.posed_bounds(row), config.resolution, device=model.device, progress=True,
        keep_largest_component=config.keep_largest_component,
    )  # fmt: skip


def evaluate_run(config: EvalMeshConfig, avatar=None) -> List[Dict]:
    """Rows for the avatar (and the body prior) at each frame; ``avatar``: the run, if already loaded."""
    from hfavatar_ns.evaluation.avatar_eval import body_mesh
    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    if config.resolution < 8:
        raise InputError(f"--resolution {config.resolution} is too coarse for a mesh; use 8 or more (default 256).")
    if avatar is None:
        avatar = load_avatar_run(config.load_config)
    model = avatar.model
    frames = list(config.frames) if config.frames else default_frames(avatar)
    rows_of_frames = model.body.rows_of(frames)
    # Every ground truth is found and readable before the (slow) extraction starts.
    truths = {f: ground_truth_file(f, avatar.capture_root, config.gt_dir) for f in frames}
    truth_meshes = {f: load_mesh(path, "ground-truth") for f, path in truths.items()}
    rows = []
    for frame, row in tqdm(list(zip(frames, rows_of_frames)), desc="frames", unit="frame"):
        truth = truth_meshes[frame]
        common = {"frame": frame, "name": f"{frame:06d}", "gt": str(truths[frame])}
        avatar_values = metrics_row(extract_avatar_mesh(model, row, config), truth, config.samples)
        rows.append({"model": "avatar", **common, "pred": f"avatar@{config.resolution}", **avatar_values})
        if config.prior:
            prior_values = metrics_row(body_mesh(model, row), truth, config.samples)
            rows.append({"model": "body_prior", **common, "pred": "posed body model", **prior_values})
    return rows


# ------------------------------------------------------------------------------------------ report


def mean_rows(rows: List[Dict]) -> Dict[str, Dict[str, float]]:
    """Mean of every metric over the rows of each model (avatar, body_prior or pred)."""
    means: Dict[str, Dict[str, float]] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        means[model] = {name: float(np.mean([r[name] for r in mine])) for name in METRICS} | {"count": len(mine)}
    return means


def format_table(rows: List[Dict], means: Dict[str, Dict[str, float]]) -> str:
    """The rows, then the mean of each model, as aligned text columns."""
    first = "frame" if rows and rows[0]["frame"] is not None else "pair"
    header = [first, "mesh"] + [f"{name} [{spec['unit']}]" for name, spec in METRICS.items()]
    names = [r["name"] if r["frame"] is not None else f"{r['name']} vs {Path(r['gt']).name}" for r in rows]
    body = [[name, r["model"]] + [f"{r[metric]:.4f}" for metric in METRICS] for name, r in zip(names, rows)]
    totals = [[f"mean of {m['count']}", model] + [f"{m[name]:.4f}" for name in METRICS] for model, m in means.items()]
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, *totals)]

    def line(cells: List[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    rule = "-" * sum(widths + [2 * (len(widths) - 1)])
    return "\n".join([line(header), rule, *map(line, body), rule, *map(line, totals)])


def evaluate(config: EvalMeshConfig, avatar=None) -> Dict:
    """Run the comparison ``config`` describes, print the table, write the JSON; returns the report.

    ``avatar``: the run of ``config.load_config`` if the caller has it loaded already (a LoadedAvatar).
    """
    run_options = config.frames is not None or config.gt_dir is not None
    if config.load_config is not None and (config.pred or config.gt):
        raise InputError("Give either --load-config (a trained run) or --pred/--gt (mesh files), not both.")
    if config.load_config is None and run_options:
        raise InputError("--frames and --gt-dir go with --load-config (a trained run); for mesh files use --pred/--gt.")
    if config.samples < 1:
        raise InputError(f"--samples {config.samples}: give a positive number of surface samples (default 100000).")
    if config.load_config is not None:
        mode, rows = "run", evaluate_run(config, avatar)
    else:
        mode, rows = "mesh_files", evaluate_mesh_files(config)
    means = mean_rows(rows)
    report = {
        "mode": mode,
        "load_config": None if config.load_config is None else str(config.load_config),
        "resolution": config.resolution if mode == "run" else None,
        "surface_samples": config.samples,
        "metrics": METRICS,
        "rows": rows,
        "mean": means,
    }
    print(format_table(rows, means))
    if config.json is not None:
        config.json.parent.mkdir(parents=True, exist_ok=True)
        config.json.write_text(json.dumps(report, indent=2))
        print(f"wrote {config.json}")
    return report


@exit_on_input_error
def main(argv: Optional[Sequence[str]] = None) -> None:
    evaluate(tyro.cli(EvalMeshConfig, args=argv))


if __name__ == "__main__":
    main()
