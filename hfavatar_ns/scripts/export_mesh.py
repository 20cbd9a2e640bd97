"""``hfavatar-export``: meshes of a trained avatar (CPU or GPU).

* ``--canonical``: the avatar in its canonical pose;
* ``--frame N``: posed at frame N of the capture (world coordinates, metres: it overlays the capture);
* ``--all-frames``: every frame the avatar was trained with (one file each);
* ``--poses``: the body fits of every capture frame, refined when the run used pose refinement, as
  ``refined_params/{frame id}.npy`` in the capture's ``new_params/`` format (no meshing).

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
    poses: bool = False
    """Write the body fits of every capture frame (refined with pose refinement, else the given ones) to
    refined_params/{frame id}.npy in ZJU-MoCap's new_params format."""
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
def vertex_colors(model, mesh: trimesh.Trimesh, row: Optional[int]) -> np.ndarray:
    """The avatar's colours at the mesh's vertices (uint8 RGBA), in chunks."""
    colors = []
    for start in range(0, len(mesh.vertices), 65536):
        part = slice(start, start + 65536)
        points = torch.as_tensor(mesh.vertices[part], dtype=torch.float32, device=model.device)
        # a copy: trimesh caches its normals read-only, and torch warns on wrapping a read-only array
        normals = torch.tensor(mesh.vertex_normals[part], dtype=torch.float32, device=model.device)
        colors.append(model.vertex_colors(points, normals, row).cpu())
    rgb = (torch.cat(colors).numpy() * 255).astype(np.uint8)
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def extract(model, row: Optional[int], config: ExportMeshConfig) -> trimesh.Trimesh:
    """The canonical avatar (``row=None``) or the avatar posed at a row of its body frames."""
    from hfavatar_ns.geometry.mesh_extraction import sdf_mesh

    if row is None:
        bounds, sdf_fn = model.canonical_bounds, model.canonical_sdf
    else:
        bounds = model.posed_bounds(row)

        def sdf_fn(points):
            return model.posed_sdf(points, row)

    mesh = sdf_mesh(
        sdf_fn, bounds, config.resolution, config.chunk_size, device=model.device, progress=True,
        keep_largest_component=config.keep_largest_component,
    )  # fmt: skip
    if config.colors:
        mesh.visual.vertex_colors = vertex_colors(model, mesh, row)
    return mesh


def frame_rows(model, config: ExportMeshConfig) -> List[Optional[int]]:
    """Which meshes to make: ``None`` for canonical, else rows of the model's body frames."""
    rows: List[Optional[int]] = []
    if config.canonical:
        rows.append(None)
    if config.frame is not None:
        rows.append(model.body.row_of(config.frame))
    if config.all_frames:
        rows.extend(model.body.capture_rows())
    return rows


def write_fits(body, output_dir: Path) -> List[Path]:
    """The body fits of every capture frame of ``body`` (a ``BodyFrames``), with its pose-refinement
    corrections when it has them, as ``output_dir/refined_params/{frame id}.npy``: ZJU-MoCap's
    ``new_params`` dicts of float32 ``poses`` (1,72), ``Rh`` (1,3), ``Th`` (1,3, metres), ``shapes`` (1,B)."""
    rows = body.capture_rows()
    fits = {key: value.cpu().numpy().astype(np.float32) for key, value in body.fit_parameters(rows).items()}
    folder = Path(output_dir) / "refined_params"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, row in enumerate(rows):
        path = folder / f"{body.frame_id(row)}.npy"
        np.save(path, {key: fits[key][index : index + 1] for key in ("poses", "Rh", "Th", "shapes")})
        written.append(path)
    return written


def export_meshes(config: ExportMeshConfig) -> List[Path]:
    """Write what ``config`` asks for (fits first, then meshes); returns the files written."""
    if not (config.canonical or config.frame is not None or config.all_frames or config.poses):
        raise InputError("Nothing to export: pass --canonical, --frame N, --all-frames or --poses.")
    model = load_avatar(config.load_config)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if config.poses:
        fits = write_fits(model.body, config.output_dir)
        refined = bool(model.body.correction_parameters())
        kind = "refined by pose refinement" if refined else "the given fits: the run did not refine poses"
        print(f"wrote the fits of {len(fits)} frames to {config.output_dir / 'refined_params'}/ ({kind})")
        written.extend(fits)
    for row in frame_rows(model, config):
        name = "canonical.ply" if row is None else f"frame_{model.body.frame_id(row):06d}.ply"
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
