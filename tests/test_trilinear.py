"""The gather-based trilinear lookup: agrees with grid_sample and has a second derivative."""

import torch
import torch.nn.functional as F

from hfavatar_ns.geometry.trilinear import trilinear_rows, trilinear_sample


def test_matches_grid_sample_with_border_clamping():
    torch.manual_seed(0)
    values = torch.randn(3, 5, 6, 7, dtype=torch.float64)
    coords = torch.rand(200, 3, dtype=torch.float64) * torch.tensor([6.0, 7.0, 8.0]) - 1.0  # some outside
    ours = trilinear_sample(values, coords)
    normalised = 2 * coords / torch.tensor([4.0, 5.0, 6.0], dtype=torch.float64) - 1
    reference = F.grid_sample(
        values[None], normalised.flip(-1).reshape(1, 1, 1, -1, 3), align_corners=True, padding_mode="border"
    ).reshape(3, -1).T
    assert torch.allclose(ours, reference, atol=1e-10)


def test_exact_on_nodes_and_linear_between():
    values = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(1, 2, 3, 4)  # linear in the index
    coords = torch.tensor([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.5, 1.25, 2.75]], dtype=torch.float64)
    expected = coords @ torch.tensor([12.0, 4.0, 1.0], dtype=torch.float64)
    assert torch.allclose(trilinear_sample(values, coords)[:, 0], expected)


def test_second_derivative_reaches_the_grid():
    """The eikonal loss differentiates d(value)/d(point) again, w.r.t. the grid (grid_sample's 3-D
    backward is not differentiable on some torch builds)."""
    torch.manual_seed(1)
    values = torch.randn(1, 4, 4, 4, dtype=torch.float64, requires_grad=True)
    points = (torch.rand(10, 3, dtype=torch.float64) * 3).requires_grad_(True)
    (gradient,) = torch.autograd.grad(trilinear_sample(values, points).sum(), points, create_graph=True)
    (gradient.norm(dim=-1) ** 2).sum().backward()
    assert values.grad is not None and values.grad.abs().sum() > 0


def test_rows_of_several_grids_read_each_points_own_grid():
    """``trilinear_rows`` with grids stacked as rows (the per-frame weight grids): each point reads the
    grid its ``first_row`` names, the same values as a lookup in that grid alone."""
    torch.manual_seed(2)
    grids = torch.randn(3, 2, 4, 5, 6, dtype=torch.float64)  # 3 grids of 2 channels
    rows = grids.permute(0, 2, 3, 4, 1).reshape(-1, 2)  # node-major rows, grid after grid
    which = torch.tensor([0, 2, 1, 2, 0, 1])
    coords = torch.rand(6, 3, dtype=torch.float64) * torch.tensor([3.0, 4.0, 5.0])
    ours = trilinear_rows(rows, which * (4 * 5 * 6), (4, 5, 6), coords)
    for point, grid in enumerate(which.tolist()):
        alone = trilinear_sample(grids[grid], coords[point : point + 1])
        assert torch.allclose(ours[point], alone[0], atol=1e-12)
