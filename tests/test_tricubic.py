"""The smooth body prior: cubic B-spline reads of a grid (against scipy), their continuity, and what they
buy over trilinear reads when the prior alone is meshed."""

import numpy as np
import pytest
import torch
import trimesh
from scipy import ndimage

from hfavatar_ns.evaluation.mesh_metrics import normal_consistency
from hfavatar_ns.geometry.mesh_extraction import sdf_mesh
from hfavatar_ns.geometry.prior_sdf import SDFGrid, build_sdf_grid, query_sdf_grid
from hfavatar_ns.geometry.tricubic import bspline_coefficients, cubic_bspline_weights, tricubic_sample


def _grid(shape=(7, 6, 5), seed=0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_weights_are_a_partition_of_unity():
    weights = cubic_bspline_weights(torch.linspace(0, 1, 11, dtype=torch.float64))
    assert torch.allclose(weights.sum(dim=-1), torch.ones(11, dtype=torch.float64))
    assert (weights >= 0).all()


def test_matches_scipy_everywhere_in_the_grid_borders_included():
    values = _grid()
    upper = torch.tensor(values.shape, dtype=torch.float64) - 1
    coords = torch.rand(500, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * upper
    coords = torch.cat([coords, torch.zeros(1, 3, dtype=torch.float64), upper[None], torch.tensor([[0.0, 5.0, 2.5]])])
    ours = tricubic_sample(bspline_coefficients(values), coords)
    reference = ndimage.map_coordinates(values.numpy(), coords.numpy().T, order=3, mode="mirror")
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-10)


def test_passes_through_the_node_values():
    values = _grid()
    nodes = torch.stack(torch.meshgrid(*[torch.arange(n, dtype=torch.float64) for n in values.shape], indexing="ij"), -1)
    read = tricubic_sample(bspline_coefficients(values), nodes.reshape(-1, 3)).reshape(values.shape)
    assert torch.allclose(read, values, atol=1e-10)


def _gradient_either_side_of_a_cell_face(grid: SDFGrid, point: torch.Tensor, axis: int, step: float):
    gradients = []
    for sign in (-1.0, 1.0):
        probe = point.clone()
        probe[axis] += sign * step
        probe = probe[None].requires_grad_(True)
        (gradient,) = torch.autograd.grad(query_sdf_grid(grid, probe).sum(), probe)
        gradients.append(gradient[0])
    return (gradients[1] - gradients[0]).norm()


def test_gradient_is_continuous_across_cells_where_trilinear_jumps():
    values = _grid((9, 9, 9)).float()
    low, high = torch.zeros(3), torch.ones(3)
    smooth, faceted = SDFGrid(values, low, high, "tricubic"), SDFGrid(values, low, high, "trilinear")
    spacing = 1.0 / 8
    face_point = torch.tensor([4 * spacing, 3.3 * spacing, 5.6 * spacing])  # on a face normal to x
    for step in (1e-3, 1e-4):
        assert _gradient_either_side_of_a_cell_face(smooth, face_point, 0, step) < 50 * step / spacing**2
    assert _gradient_either_side_of_a_cell_face(faceted, face_point, 0, 1e-4) > 0.5


def test_second_derivatives_exist_for_the_eikonal_loss():
    coefficients = bspline_coefficients(_grid((5, 5, 5)))
    coords = torch.tensor([[1.3, 2.7, 0.4], [3.9, 0.2, 2.5]], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradgradcheck(lambda c: tricubic_sample(coefficients, c), (coords,))


def test_coefficients_follow_loaded_values_and_are_not_saved():
    low, high = torch.zeros(3), torch.ones(3)
    source = SDFGrid(_grid().float(), low, high, "tricubic")
    copy = SDFGrid(torch.zeros(7, 6, 5), low, high, "tricubic")
    assert "coefficients" not in source.state_dict()
    copy.load_state_dict(source.state_dict())
    points = torch.rand(50, 3, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(query_sdf_grid(copy, points), query_sdf_grid(source, points))
    with pytest.raises(ValueError, match="interpolation"):
        SDFGrid(torch.zeros(2, 2, 2), low, high, "cubic")  # type: ignore[arg-type]


def test_smooth_prior_alone_meshes_with_the_normals_of_the_shape():
    """A 10 cm-radius ball on nodes 2 cm apart (a limb on the body prior's grid): meshed finer than its
    nodes, the trilinear read's facets show in the normals and the spline's do not."""
    ball = trimesh.creation.icosphere(subdivisions=5, radius=0.1)
    vertices, faces = torch.tensor(ball.vertices).float(), torch.tensor(ball.faces)
    bounds = torch.tensor([[-0.16] * 3, [0.16] * 3])
    scores = {}
    for interpolation in ("trilinear", "tricubic"):
        grid = build_sdf_grid(vertices, faces, bounds[0], bounds[1], 17, interpolation)
        mesh = sdf_mesh(lambda points: query_sdf_grid(grid, points), bounds, 96)
        scores[interpolation] = normal_consistency(mesh, ball)
    assert scores["tricubic"] > 0.98 and scores["trilinear"] < scores["tricubic"] - 0.02, scores
