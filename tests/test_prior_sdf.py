"""The body-prior SDF: exact mesh distances and the tabulated grid (values, sign, gradient, axes)."""

import pytest
import torch
import trimesh

from hfavatar_ns.geometry.prior_sdf import (
    SDFGrid,
    build_sdf_grid,
    isotropic_resolution,
    query_sdf_grid,
    signed_distance_to_mesh,
)

RADIUS = 0.5


def _mesh(mesh: trimesh.Trimesh):
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces, dtype=torch.long)


@pytest.fixture(scope="module")
def sphere():
    return _mesh(trimesh.creation.icosphere(subdivisions=4, radius=RADIUS))


@pytest.fixture(scope="module")
def sphere_grid(sphere):
    vertices, faces = sphere
    return build_sdf_grid(vertices, faces, torch.full((3,), -1.0), torch.full((3,), 1.0), 41)


def _random_points(count, low, high, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(count, 3, generator=generator)


def test_exact_distance_to_a_sphere_mesh(sphere):
    vertices, faces = sphere
    points = _random_points(2000, -1.0, 1.0)
    sdf = signed_distance_to_mesh(vertices, faces, points)
    assert sdf.shape == (2000,) and sdf.dtype == torch.float32
    # the icosphere is inscribed in the true sphere: its faces sag inwards by a few mm at most
    assert torch.allclose(sdf, points.norm(dim=-1) - RADIUS, atol=4e-3)


def test_sign_survives_holes_and_overlaps():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS)
    holed = trimesh.Trimesh(sphere.vertices, sphere.faces[3:], process=False)  # three triangles missing
    vertices, faces = _mesh(holed)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.1, -0.2, 0.1], [0.9, 0.0, 0.0], [0.0, 0.0, -0.8]])
    sdf = signed_distance_to_mesh(vertices, faces, points)
    assert (sdf[:2] < 0).all() and (sdf[2:] > 0).all()
    # Two overlapping spheres merged without a union: a point in both is inside (ray parity would say
    # "outside", having crossed four surfaces).
    left = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS).apply_translation([-0.2, 0, 0])
    right = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS).apply_translation([0.2, 0, 0])
    vertices, faces = _mesh(trimesh.util.concatenate([left, right]))
    sdf = signed_distance_to_mesh(vertices, faces, torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 0.6]]))
    assert sdf[0] < -0.2 and sdf[1] > 0


def test_grid_matches_sphere_within_half_a_voxel(sphere_grid):
    half_voxel = 0.5 * float(sphere_grid.spacing.max())
    points = _random_points(4000, -1.0, 1.0, seed=1)
    points = points[points.norm(dim=-1) > 0.15]  # |p| has a kink at the centre
    values = query_sdf_grid(sphere_grid, points)
    assert (values - (points.norm(dim=-1) - RADIUS)).abs().max() < half_voxel
    # sign: inside / outside beyond the interpolation error
    distance = points.norm(dim=-1) - RADIUS
    assert (values[distance < -half_voxel] < 0).all() and (values[distance > half_voxel] > 0).all()
    # the module call is the same function
    assert torch.equal(sphere_grid(points), values)


def test_grid_gradient_is_the_unit_normal(sphere_grid):
    points = _random_points(1000, -1.0, 1.0, seed=2)
    points = points[(points.norm(dim=-1) > 0.3) & (points.norm(dim=-1) < 0.8)].requires_grad_(True)
    values = query_sdf_grid(sphere_grid, points)
    (gradient,) = torch.autograd.grad(values.sum(), points)
    normal = points.detach() / points.detach().norm(dim=-1, keepdim=True)
    cosine = torch.nn.functional.cosine_similarity(gradient, normal, dim=-1)
    assert cosine.min() > 0.97 and cosine.mean() > 0.995
    assert ((gradient.norm(dim=-1) - 1).abs() < 0.1).all()


def test_grid_is_twice_differentiable(sphere_grid):
    # the eikonal loss back-propagates through the SDF's gradient
    offset = torch.zeros(3, requires_grad=True)
    points = _random_points(64, -0.8, 0.8, seed=3) + offset
    values = query_sdf_grid(sphere_grid, points)
    (gradient,) = torch.autograd.grad(values.sum(), points, create_graph=True)
    ((gradient.norm(dim=-1) - 1) ** 2).mean().backward()
    assert offset.grad is not None and torch.isfinite(offset.grad).all()


def test_axis_order_with_an_off_centre_box_and_anisotropic_grid():
    box = trimesh.creation.box(extents=[0.2, 0.4, 0.6])
    box.apply_translation([0.3, -0.2, 0.1])
    vertices, faces = _mesh(box)
    lower, upper = torch.tensor([-0.2, -0.7, -0.5]), torch.tensor([0.7, 0.4, 0.8])
    grid = build_sdf_grid(vertices, faces, lower, upper, (19, 23, 27))
    assert grid.resolution == (19, 23, 27)
    # node (i, j, k) holds the SDF at lower + (i, j, k) * spacing
    nodes = grid.node_positions()
    assert torch.allclose(nodes[0, 0, 0], lower) and torch.allclose(nodes[-1, -1, -1], upper)
    index = (5, 17, 3)
    exact = signed_distance_to_mesh(vertices, faces, nodes[index][None])[0]
    assert torch.isclose(grid.values[index], exact, atol=1e-6)
    # reading at the nodes returns the nodes' values, and in between it tracks the exact SDF
    assert torch.allclose(query_sdf_grid(grid, nodes), grid.values, atol=1e-5)
    points = lower + (upper - lower) * torch.rand(3000, 3, generator=torch.Generator().manual_seed(4))
    voxel = float(grid.spacing.max())
    exact = signed_distance_to_mesh(vertices, faces, points)
    assert (query_sdf_grid(grid, points) - exact).abs().max() < 0.5 * voxel
    # the box's centre is the most negative point; moving along +x, +y, +z raises the SDF as expected
    centre = torch.tensor([0.3, -0.2, 0.1])
    assert torch.isclose(query_sdf_grid(grid, centre), torch.tensor(-0.1), atol=0.5 * voxel)
    for axis, half_extent in enumerate((0.1, 0.2, 0.3)):
        probe = centre.clone()
        probe[axis] += half_extent + 0.05
        assert torch.isclose(query_sdf_grid(grid, probe), torch.tensor(0.05), atol=0.5 * voxel), axis


def test_outside_the_box_adds_the_distance_to_the_box(sphere_grid):
    points = torch.tensor([[1.5, 0.0, 0.0], [-1.2, 1.3, 0.2], [0.0, 0.0, -3.0]], requires_grad=True)
    clamped = points.detach().clamp(-1.0, 1.0)
    expected = query_sdf_grid(sphere_grid, clamped) + (points.detach() - clamped).norm(dim=-1)
    values = query_sdf_grid(sphere_grid, points)
    assert torch.allclose(values, expected, atol=1e-5)
    # still an upper-bound-like distance that grows away from the body, with a finite gradient
    assert (values >= points.detach().norm(dim=-1) - RADIUS - 0.05).all()
    (gradient,) = torch.autograd.grad(values.sum(), points)
    assert torch.isfinite(gradient).all() and gradient[0, 0] > 0.9


def test_grid_moves_and_saves_as_buffers(sphere_grid):
    state = sphere_grid.state_dict()
    assert set(state) == {"values", "bounds_min", "bounds_max"}
    copy = SDFGrid(torch.zeros(2, 2, 2), torch.zeros(3), torch.ones(3))
    with pytest.raises(RuntimeError):
        copy.load_state_dict(state)  # shapes differ: the grid is real state, not a config
    with pytest.raises(ValueError):
        SDFGrid(torch.zeros(4, 4, 4), torch.ones(3), torch.zeros(3))


def test_isotropic_resolution_keeps_the_spacing_equal_on_every_axis():
    low, high = torch.tensor([-0.97, -1.13, -0.22]), torch.tensor([0.97, 0.69, 0.36])
    nodes = isotropic_resolution(low, high, 192)
    assert nodes[0] == 192 and nodes[1] < 192 and nodes[2] < nodes[1]
    spacing = (high - low).double() / (torch.tensor(nodes, dtype=torch.float64) - 1)
    assert spacing.max() == pytest.approx(spacing[0].item())  # no axis coarser than the longest one
    assert (spacing[0] - spacing).max() < spacing[0] * 0.05  # and none much finer (rounded up to whole cells)
    assert isotropic_resolution(torch.zeros(3), torch.ones(3), 64) == (64, 64, 64)
    with pytest.raises(ValueError, match="non-empty box"):
        isotropic_resolution(torch.zeros(3), torch.tensor([1.0, 0.0, 1.0]), 64)


def test_isotropic_grid_of_a_flat_box_meshes_the_sphere_better(sphere):
    """The same node budget spread evenly beats a cube of nodes when the box is flat."""
    vertices, faces = sphere
    low, high = torch.tensor([-1.2, -1.2, -0.6]), torch.tensor([1.2, 1.2, 0.6])
    probe = trimesh.creation.icosphere(subdivisions=3, radius=RADIUS + 0.03).vertices
    probe = torch.tensor(probe, dtype=torch.float32)
    errors = []
    for nodes in ((20, 20, 20), isotropic_resolution(low, high, 25)):  # 8,000 and 25 x 25 x 13 = 8,125 nodes
        grid = build_sdf_grid(vertices, faces, low, high, nodes)
        errors.append((query_sdf_grid(grid, probe) - 0.03).abs().max().item())
    print(f"max |SDF error| 3 cm outside the sphere: cube of nodes {errors[0]*1000:.1f} mm, isotropic {errors[1]*1000:.1f} mm")
    assert errors[1] < 0.8 * errors[0]


def test_model_prior_uses_the_isotropic_grid_only_when_asked(sphere):
    from hfavatar_ns.models.hfavatar_model import PriorSDF

    vertices, faces = sphere
    bounds = torch.tensor([[-1.2, -1.2, -0.6], [1.2, 1.2, 0.6]])
    assert PriorSDF(vertices, faces, bounds, 25).grid.resolution == (25, 25, 25)  # runs saved before the option
    assert PriorSDF(vertices, faces, bounds, 25, isotropic=True).grid.resolution == (25, 25, 13)
