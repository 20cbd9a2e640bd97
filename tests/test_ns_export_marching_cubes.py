"""`ns-export marching-cubes` on an hfavatar run: its marching-cubes half, and the canonical render its texturing uses.

nerfstudio's exporter meshes ``pipeline.model.field.forward_geonetwork(x)[:, 0]`` with its multi-resolution
marching cubes (512^3 blocks, grids moved with ``.cuda()``) inside ``--bounding-box-min/max``. The GPU test
runs that function exactly as the exporter calls it; its CPU twin runs the same function with ``.cuda()``
kept on the CPU. Both compare the result with ``hfavatar-export --canonical`` (our own marching cubes of the
same field). The texturing half (tested end to end on the CPU in ``test_ns_export_texture.py``) renders
frame-less rays that start just outside the surface: the GPU test checks that render on CUDA against the
colour field.
"""

import numpy as np
import pytest
import torch
import trimesh

from hfavatar_ns.scripts.avatar_run import load_avatar_run
from hfavatar_ns.scripts.export_mesh import ExportMeshConfig, extract


def ns_export_marching_cubes(model) -> trimesh.Trimesh:
    """nerfstudio's marching-cubes step as ``ns-export marching-cubes --resolution 512`` runs it, in the box
    ``hfavatar-export --canonical`` prints."""
    from nerfstudio.exporter.marching_cubes import generate_mesh_with_multires_marching_cubes

    low, high = (tuple(corner) for corner in model.canonical_bounds.cpu().tolist())
    return generate_mesh_with_multires_marching_cubes(
        geometry_callable_field=lambda x: model.field.forward_geonetwork(x)[:, 0].contiguous(),
        resolution=512,
        bounding_box_min=low,
        bounding_box_max=high,
        isosurface_threshold=0.0,
        coarse_mask=None,
    )


def mean_distance_mm(mesh: trimesh.Trimesh, reference: trimesh.Trimesh) -> float:
    """Mean distance from points on ``mesh`` to the surface of ``reference`` (dense surface samples), mm."""
    surface = trimesh.PointCloud(reference.sample(200000, seed=1))
    distances, _ = surface.kdtree.query(np.asarray(mesh.sample(20000, seed=0)))
    return float(distances.mean() * 1000.0)


def check_against_own_export(ns_mesh: trimesh.Trimesh, model, run_config) -> None:
    # Every piece on both sides: a thin wrist can part at one resolution and not at the other.
    config = ExportMeshConfig(load_config=run_config, canonical=True, resolution=160, colors=False)
    config.keep_largest_component = False
    own = extract(model, None, config)
    forward, backward = mean_distance_mm(ns_mesh, own), mean_distance_mm(own, ns_mesh)
    print(f"ns-export marching cubes: {len(ns_mesh.faces)} faces; to hfavatar-export {forward:.2f} mm, "
          f"back {backward:.2f} mm; box {np.round(ns_mesh.bounds, 3).tolist()} vs {np.round(own.bounds, 3).tolist()}")
    # Grids: ~3.5 mm (512 over the canonical box) and ~11 mm (160); the same surface meshed twice lies
    # within a fraction of the coarser spacing.
    assert forward < 3.0 and backward < 3.0
    # No box check: a 2-step avatar's thin hand can vanish at 160^3 and not at 512^3 (seen: 7 cm off in x).


def test_ns_export_marching_cubes_on_the_cpu(tiny_avatar_run, monkeypatch):
    """CPU twin: the exporter's function with ``Tensor.cuda`` mapped to the CPU."""
    model = load_avatar_run(tiny_avatar_run).model
    monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)
    ns_mesh = ns_export_marching_cubes(model)
    check_against_own_export(ns_mesh, model, tiny_avatar_run)


@pytest.mark.gpu
def test_ns_export_marching_cubes_on_cuda(tiny_avatar_run):
    loaded = load_avatar_run(tiny_avatar_run)
    loaded.pipeline.to("cuda")
    model = loaded.model
    assert model.device.type == "cuda"
    ns_mesh = ns_export_marching_cubes(model)
    check_against_own_export(ns_mesh, model, tiny_avatar_run)


@pytest.mark.gpu
def test_frameless_rays_render_the_canonical_colours_on_cuda(tiny_avatar_run):
    """What ns-export's texturing asks of the model: rays without a frame, from just outside the canonical
    surface inwards, come back with the colour field's colour there (on CUDA)."""
    from nerfstudio.cameras.rays import RayBundle

    loaded = load_avatar_run(tiny_avatar_run)
    loaded.pipeline.to("cuda")
    model = loaded.model
    mesh = extract(model, None, ExportMeshConfig(load_config=tiny_avatar_run, canonical=True, resolution=96))
    chosen = np.random.default_rng(0).choice(len(mesh.vertices), 4096, replace=False)
    vertices = torch.tensor(np.asarray(mesh.vertices)[chosen], dtype=torch.float32, device="cuda")
    normals = torch.tensor(np.asarray(mesh.vertex_normals)[chosen], dtype=torch.float32, device="cuda")
    # texture_utils centres its rays on the surface, twice the mesh's mean edge long, no frame; these have the
    # same form but are 4 cm long (2 cm each side), so they cross this coarse mesh's surface whatever its error.
    offset = 0.02
    rays = RayBundle(
        origins=(vertices + offset * normals).reshape(64, 64, 3),
        directions=(-normals).reshape(64, 64, 3),
        pixel_area=torch.ones(64, 64, 1, device="cuda"),
        camera_indices=torch.zeros(64, 64, 1, dtype=torch.long, device="cuda"),
        nears=torch.zeros(64, 64, 1, device="cuda"),
        fars=torch.full((64, 64, 1), 2 * offset, device="cuda"),
    )
    outputs = model.get_outputs_for_camera_ray_bundle(rays)
    assert outputs["rgb"].device.type == "cuda"
    rgba = model.get_rgba_image(outputs, "rgb").reshape(-1, 4)
    expected = torch.tensor(mesh.visual.vertex_colors[chosen, :3] / 255.0, dtype=torch.float32, device="cuda")
    difference = (rgba[:, :3] - expected).abs().mean().item() * 255
    print(f"frame-less rays on CUDA: mean |colour - colour field| {difference:.1f} of 255, "
          f"mean alpha {rgba[:, 3].mean().item():.3f}")
    assert rgba[:, 3].mean() > 0.9
    assert difference < 25.0
