"""``hfavatar-export``: meshes of a trained avatar (CPU or GPU).

* ``--canonical``: the avatar in its canonical pose;
* ``--frame N``: posed at frame N of the capture (world coordinates, metres: it overlays the capture);
* ``--all-frames``: every frame the avatar was trained with (one file each).

Marching cubes on the SDF at ``--resolution`` (default 512), evaluated in chunks that fit memory,
padded so the mesh is closed; vertex colours from the colour field. nerfstudio's own
``ns-export marching-cubes`` meshes the canonical avatar too, on CUDA only (its multi-resolution
marching cubes calls ``.cuda()``), inside the box of its ``--bounding-box-min/max`` (default -1..1 m,
which cuts the canonical feet off): ``--canonical`` prints the canonical box to pass there. Both of its steps are tested on our model
(``tests/test_ns_export_marching_cubes.py``, ``tests/test_ns_export_texture.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import numpy as np
import torch
import trimesh
import tyro

from hfavatar_ns.errors import InputError, exit_on_input_error


@dataclass
class ExportMeshConfig:
    """Export watertight, coloured meshes of a trained hfavatar."""

    load_config: Path
    """The run's config.yml (as for ns-eval / ns-export)."""
    output_dir: Path = Path("exports")
    """Folder the .ply files go to."""
    canonical: bool = False
    """Export the canonical (unposed) avatar."""
    frame: Optional[int] = None
    """Export the avatar posed at this frame id (0-based, as in the capture's annots.npy)."""
    all_frames: bool = False
    """Export every frame the avatar knows (one file per frame)."""
    resolution: int = 512
    """Marching-cubes grid resolution along each axis."""
    chunk_size: int = 65536
    """Points per SDF evaluation (lower it if memory runs short)."""
    keep_largest_component: bool = True
    """Drop floating bits: keep the largest connected piece (as the ARAH evaluation does)."""
    colors: bool = True
    """Colour vertices from the avatar's colour field."""


def load_avatar(config_path: Path):
    """The trained model (eval mode) from a run's config.yml."""
    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    return load_avatar_run(config_path).model


@torch.no_grad()
def vertex_colors(model, vertices: np.ndarray, normals: np.ndarray, frame_row: Optional[int]) -> np.ndarray:
    """Colours of the colour field at mesh vertices, seen head-on (uint8 RGBA)."""
    device = model.device
    colors = []
    for start in range(0, len(vertices), 65536):
        points = torch.as_tensor(vertices[start : start + 65536], dtype=torch.float32, device=device)
        normal = torch.as_tensor(normals[start : start + 65536], dtype=torch.float32, device=device)
        pose = None
        if frame_row is not None:
            frames = torch.full((points.shape[0],), frame_row, dtype=torch.long, device=device)
            points, _ = model.deformation(points, frames)
            pose = model.body_poses[frames, 3:]
        features = model.field.forward_geonetwork(points)[:, 1:]
        colors.append(model.field.get_color(features, normal, -normal, pose).clamp(0, 1).cpu())
    rgb = (torch.cat(colors).numpy() * 255).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def extract(model, frame_row: Optional[int], config: ExportMeshConfig) -> trimesh.Trimesh:
    """The canonical avatar (``frame_row=None``) or the avatar posed at a row of its frame tables."""
    from hfavatar_ns.geometry.mesh_extraction import evaluate_sdf_grid, marching_cubes_mesh

    if frame_row is None:
        bounds, sdf_fn = model.canonical_bounds.cpu(), model.canonical_sdf
    else:
        bounds = model.posed_bounds(frame_row).cpu()

        def sdf_fn(points):
            return model.posed_sdf(points, frame_row)

    values = evaluate_sdf_grid(
        sdf_fn, bounds[0], bounds[1], config.resolution, config.chunk_size, device=model.device, progress=True
    )
    vertices, faces = marching_cubes_mesh(values, bounds[0], bounds[1])
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    if config.keep_largest_component:
        pieces = mesh.split(only_watertight=False)
        if len(pieces) > 1:
            mesh = max(pieces, key=lambda piece: len(piece.faces))
    if config.colors:
        mesh.visual.vertex_colors = vertex_colors(model, np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals), frame_row)
    return mesh


def frame_rows(model, config: ExportMeshConfig) -> List[Optional[int]]:
    """Which meshes to make: ``None`` for canonical, else rows of the model's per-frame tables."""
    ids = model.frame_ids.cpu().tolist()
    rows: List[Optional[int]] = []
    if config.canonical:
        rows.append(None)
    if config.frame is not None:
        if config.frame not in ids:
            shown = ", ".join(str(i) for i in ids[:20]) + (" ..." if len(ids) > 20 else "")
            raise InputError(f"The avatar does not know frame {config.frame}; its frames are {shown}.")
        rows.append(ids.index(config.frame))
    if config.all_frames:
        rows.extend(range(len(ids)))
    if not rows:
        raise InputError("Nothing to export: pass --canonical, --frame N or --all-frames.")
    return rows


def export_meshes(config: ExportMeshConfig) -> List[Path]:
    model = load_avatar(config.load_config)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for row in frame_rows(model, config):
        name = "canonical.ply" if row is None else f"frame_{int(model.frame_ids[row]):06d}.ply"
        mesh = extract(model, row, config)
        path = config.output_dir / name
        mesh.export(path)
        print(f"wrote {path} ({len(mesh.vertices)} vertices, watertight: {mesh.is_watertight})")
        if row is None:
            low, high = (" ".join(f"{v:.2f}" for v in corner) for corner in model.canonical_bounds.cpu().tolist())
            print(f"canonical box (for ns-export marching-cubes): --bounding-box-min {low} --bounding-box-max {high}")
        written.append(path)
    return written


@exit_on_input_error
def main() -> None:
    export_meshes(tyro.cli(ExportMeshConfig))


if __name__ == "__main__":
    main()
