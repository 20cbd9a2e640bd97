"""`ns-export marching-cubes` on an hfavatar run: its texturing half, on the CPU.

The command first meshes the canonical SDF with nerfstudio's multi-resolution marching cubes, which
moves its grids with ``.cuda()`` (GPU only), then textures that mesh by rendering short rays from its
surface through the model (nerfstudio's ``texture_utils``, any device). This runs the second half on our
own canonical mesh: the texture must carry the canonical avatar's colours, which the mesh's vertex
colours (straight from the colour field) give independently.
"""

import numpy as np
import torch
import trimesh


def test_ns_export_texture_carries_the_canonical_colours(tiny_avatar_run, tmp_path):
    from nerfstudio.exporter import texture_utils
    from nerfstudio.exporter.exporter_utils import Mesh

    from hfavatar_ns.scripts.avatar_run import load_avatar_run
    from hfavatar_ns.scripts.export_mesh import ExportMeshConfig, extract

    loaded = load_avatar_run(tiny_avatar_run)
    config = ExportMeshConfig(load_config=tiny_avatar_run, canonical=True, resolution=48, output_dir=tmp_path)
    mesh = extract(loaded.model, None, config)
    ns_mesh = Mesh(
        vertices=torch.tensor(np.asarray(mesh.vertices), dtype=torch.float32),
        faces=torch.tensor(np.asarray(mesh.faces), dtype=torch.long),
        normals=torch.tensor(np.asarray(mesh.vertex_normals), dtype=torch.float32),
    )
    texture_utils.export_textured_mesh(
        ns_mesh, loaded.pipeline, tmp_path, px_per_uv_triangle=None, unwrap_method="xatlas", num_pixels_per_side=256
    )
    textured = trimesh.load(tmp_path / "mesh.obj", process=False)
    sampled = np.asarray(textured.visual.to_color().vertex_colors[:, :3], dtype=np.float64)
    _, nearest = mesh.kdtree.query(np.asarray(textured.vertices))
    expected = np.asarray(mesh.visual.vertex_colors[nearest, :3], dtype=np.float64)
    difference = np.abs(sampled - expected).mean()
    print(f"ns-export texture vs colour field: mean |difference| {difference:.1f} of 255; "
          f"texture mean {sampled.mean():.1f}, colour field mean {expected.mean():.1f}")
    assert difference < 25.0


def test_rgba_takes_the_background_out(tiny_avatar_run):
    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    model = load_avatar_run(tiny_avatar_run).model  # black background
    outputs = {"rgb": torch.tensor([[0.3, 0.1, 0.0], [0.0, 0.0, 0.0]]), "accumulation": torch.tensor([[0.5], [0.0]])}
    rgba = model.get_rgba_image(outputs, "rgb")
    assert torch.allclose(rgba, torch.tensor([[0.6, 0.2, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]]))
