import numpy as np
import pytest
import torch
import trimesh

from hfavatar_ns.errors import InputError
from hfavatar_ns.geometry.mesh_extraction import evaluate_sdf_grid, marching_cubes_mesh


def sphere_sdf(points):
    return points.norm(dim=-1) - 0.5


def test_sphere_mesh_is_watertight_outward_and_on_the_surface():
    low, high = torch.tensor([-1.0, -0.8, -0.6]), torch.tensor([1.0, 0.8, 0.6])
    values = evaluate_sdf_grid(sphere_sdf, low, high, 48, chunk_size=1000)
    vertices, faces = marching_cubes_mesh(values, low, high)
    mesh = trimesh.Trimesh(vertices, faces, process=False)
    assert mesh.is_watertight
    assert mesh.volume > 0  # outward normals
    radii = np.linalg.norm(vertices, axis=1)
    assert np.abs(radii - 0.5).max() < 0.03
    assert abs(mesh.volume - 4 / 3 * np.pi * 0.125) / (4 / 3 * np.pi * 0.125) < 0.05


def test_surface_cut_by_the_box_still_closes():
    low, high = torch.tensor([-0.4, -1.0, -1.0]), torch.tensor([0.4, 1.0, 1.0])
    values = evaluate_sdf_grid(sphere_sdf, low, high, 32)
    vertices, faces = marching_cubes_mesh(values, low, high)
    assert trimesh.Trimesh(vertices, faces, process=False).is_watertight


def test_grid_axis_order():
    values = evaluate_sdf_grid(lambda p: p[:, 0] + 10 * p[:, 1] + 100 * p[:, 2], torch.zeros(3), torch.ones(3), 5)
    assert values[1, 0, 0] == pytest.approx(0.25) and values[0, 1, 0] == pytest.approx(2.5)
    assert values[0, 0, 1] == pytest.approx(25.0)


def test_no_surface_is_a_clear_error():
    values = evaluate_sdf_grid(lambda p: p.norm(dim=-1) + 1.0, -torch.ones(3), torch.ones(3), 8)
    with pytest.raises(InputError, match="no surface"):
        marching_cubes_mesh(values, -torch.ones(3), torch.ones(3))
