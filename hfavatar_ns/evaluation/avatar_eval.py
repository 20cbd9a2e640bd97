"""Evaluate a trained avatar: held-out views against the images, posed meshes against ground truth,
each beside the body prior alone (the same model with its learned SDF residual switched off)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch
import trimesh

from hfavatar_ns.evaluation.fold_recovery import fold_recovery, read_folds
from hfavatar_ns.evaluation.image_metrics import psnr
from hfavatar_ns.evaluation.mesh_metrics import chamfer_mm_where_right, mesh_metrics
from hfavatar_ns.geometry.mesh_extraction import sdf_mesh


@contextmanager
def body_prior_only(model) -> Iterator[None]:
    """Render/extract with the residual SDF off: the body prior's geometry with the learned colour."""
    previous = model.field.use_residual
    model.field.use_residual = False
    try:
        yield
    finally:
        model.field.use_residual = previous


def silhouette_iou(accumulation: torch.Tensor, mask: torch.Tensor) -> float:
    """IoU of the rendered silhouette (accumulation > 0.5) and the foreground mask."""
    rendered, truth = accumulation.reshape(-1) > 0.5, mask.reshape(-1) > 0.5
    union = (rendered | truth).sum()
    return float((rendered & truth).sum() / union) if union > 0 else 1.0


@torch.no_grad()
def render_dataset_metrics(model, dataset, max_images: Optional[int] = None) -> Dict[str, List[float]]:
    """PSNR and silhouette IoU of every image of ``dataset`` (an InputDataset with masks) rendered by ``model``."""
    was_training = model.training
    model.eval()
    values: Dict[str, List[float]] = {"psnr": [], "silhouette_iou": []}
    count = len(dataset) if max_images is None else min(max_images, len(dataset))
    for index in range(count):
        camera = dataset.cameras[index : index + 1].to(model.device)
        batch = dataset[index]
        outputs = model.get_outputs_for_camera(camera)
        target, mask = model.target_rgb(batch, outputs["rgb"].device)
        values["psnr"].append(float(psnr(outputs["rgb"], target)))
        values["silhouette_iou"].append(silhouette_iou(outputs["accumulation"], mask))
    model.train(was_training)
    return values


def render_dataset_psnr(model, dataset, max_images: Optional[int] = None) -> List[float]:
    """PSNR of every image of ``dataset`` rendered by ``model``."""
    return render_dataset_metrics(model, dataset, max_images)["psnr"]


@torch.no_grad()
def posed_mesh(
    model, frame_row: int, resolution: int = 128, progress: bool = False, bounds: Optional[torch.Tensor] = None
) -> trimesh.Trimesh:
    """The avatar at one frame (row of the per-frame tables), in world coordinates (metres); ``bounds`` ([2, 3]):
    only that box, e.g. a close-up (default: the whole posed body's)."""
    sdf_fn = lambda points: model.posed_sdf(points, frame_row)  # noqa: E731
    box = model.posed_bounds(frame_row) if bounds is None else bounds
    return sdf_mesh(sdf_fn, box, resolution, device=model.device, progress=progress)


def body_mesh(model, frame_row: int) -> trimesh.Trimesh:
    """The posed body model of one frame (the prior the avatar starts from)."""
    body = model.body
    return trimesh.Trimesh(body.posed_vertices(frame_row).cpu().numpy(), body.faces.cpu().numpy(), process=False)


def ground_truth_mesh(capture_root: Path, frame_id: int) -> trimesh.Trimesh:
    """hfavatar-synth's clothed mesh of frame ``frame_id`` (world coordinates)."""
    return trimesh.load(Path(capture_root) / "ground_truth" / "posed" / f"{frame_id:06d}.ply", process=False)


@dataclass
class GeometryComparison:
    avatar: Dict[str, float]
    body_prior: Dict[str, float]
    """The posed body model's own mesh."""
    body_prior_meshed: Optional[Dict[str, float]] = None
    """The body prior's SDF (the model with its residual off) meshed exactly as the avatar is: marching cubes
    at the same resolution cannot resolve a face or fingers, and that costs normal consistency whatever the
    field, so this is the row the avatar's NC compares with."""


def compare_posed_geometry(
    model,
    capture_root: Path,
    frame_rows: List[int],
    resolution: int = 128,
    samples: int = 50_000,
    mesh_the_prior: bool = False,
) -> GeometryComparison:
    """Mesh metrics of the avatar and of the body prior against ground truth, averaged over frames, with fold
    recovery where the capture has fold ground truth and the Chamfer distance where the posed body is already
    right (``chamfer_mm_where_body_right``: truth within 5 mm of it); ``mesh_the_prior`` also scores the prior
    meshed as the avatar is (``body_prior_meshed``)."""
    avatar, prior, prior_meshed = [], [], []

    def scores(mesh: trimesh.Trimesh, truth: trimesh.Trimesh, folds, body: trimesh.Trimesh) -> Dict[str, float]:
        values = mesh_metrics(mesh, truth, samples).as_dict()
        values["chamfer_mm_where_body_right"] = chamfer_mm_where_right(mesh, truth, body, samples=samples)
        if folds is not None:
            values["fold_recovery"] = fold_recovery(mesh, *folds)
        return values

    for row in frame_rows:
        frame_id = model.body.frame_id(row)
        truth = ground_truth_mesh(capture_root, frame_id)
        folds = read_folds(capture_root, frame_id)
        body = body_mesh(model, row)
        avatar.append(scores(posed_mesh(model, row, resolution), truth, folds, body))
        prior.append(scores(body, truth, folds, body))
        if mesh_the_prior:
            with body_prior_only(model):
                prior_meshed.append(scores(posed_mesh(model, row, resolution), truth, folds, body))

    def mean(rows):
        return {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} if rows else None

    return GeometryComparison(avatar=mean(avatar), body_prior=mean(prior), body_prior_meshed=mean(prior_meshed))
