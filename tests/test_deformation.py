"""Geometry of the backward deformation: weight grids, skinning iterations, the deformation module."""

from dataclasses import dataclass
from typing import Optional

import pytest
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from hfavatar_ns.body.base import PosedBody
from hfavatar_ns.body.body_frames import BodyFrames
from hfavatar_ns.body.factory import make_body_model
from hfavatar_ns.body.posing import BodyModelSpec
from hfavatar_ns.body.skinning import linear_blend_skinning
from hfavatar_ns.deformation.backward import (
    BackwardDeformation,
    BackwardDeformationConfig,
    iterative_backward_deformation,
    solve_blended_affine,
)
from hfavatar_ns.deformation.non_rigid import NonRigidOffsetConfig, windowed_positional_encoding
from hfavatar_ns.deformation.weight_grid import (
    PerFrameWeightGrids,
    WeightGrid,
    build_weight_grid,
    grid_node_positions,
    nearest_vertex_skinning_weights,
    nearest_vertices,
    query_weight_grid,
)
from hfavatar_ns.errors import InputError

# ----------------------------------------------------------------------------- fixtures


@dataclass
class Capture:
    canonical: object
    normals: torch.Tensor
    poses: torch.Tensor
    global_rotation: torch.Tensor
    global_translation: torch.Tensor
    bone_transforms: torch.Tensor
    posed_vertices: torch.Tensor  # LBS of the canonical vertices, no pose correctives


def _vertex_normals(vertices, faces):
    faces = faces.long()
    face_normals = torch.cross(
        vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]], dim=-1
    )
    normals = torch.zeros_like(vertices).index_add_(0, faces.reshape(-1), face_normals.repeat_interleave(3, 0))
    return normals / normals.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="module")
def capture(synthetic_smpl_dir) -> Capture:
    """Three frames of the fake SMPL body in moderate random poses, with global rotations/translations."""
    body = make_body_model("smpl", synthetic_smpl_dir)
    canonical = body.canonical()
    generator = torch.Generator().manual_seed(0)
    poses = torch.randn(3, 72, generator=generator) * 0.1
    rh = torch.tensor([[0.0, 0.5, 0.0], [0.2, 0.0, 0.1], [0.0, -1.0, 0.0]])
    th = torch.tensor([[0.3, 0.0, 2.0], [0.0, 0.1, 1.0], [-0.5, 0.0, 3.0]])
    transforms = body.pose(poses, global_rotation=rh, global_translation=th).bone_transforms
    weights = canonical.skinning_weights
    posed = linear_blend_skinning(canonical.vertices.expand(3, -1, -1), weights.expand(3, -1, -1), transforms)
    normals = _vertex_normals(canonical.vertices, canonical.faces)
    return Capture(canonical, normals, poses, rh, th, transforms, posed)


def _body_frames(capture: Capture) -> BodyFrames:
    """The capture's frames as the model's body state (canonical = rest pose here)."""
    posed = PosedBody(capture.posed_vertices, capture.bone_transforms[..., :3, 3], capture.bone_transforms)
    return BodyFrames.from_posed(
        capture.canonical, torch.zeros(10), [0, 1, 2], capture.poses, capture.global_rotation,
        capture.global_translation, posed, BodyModelSpec("smpl"),
    )  # fmt: skip


def _make_deformation(capture: Capture, lone_camera: Optional[Tensor] = None, **overrides) -> BackwardDeformation:
    config = BackwardDeformationConfig(
        canonical_grid_resolution=48,
        non_rigid=NonRigidOffsetConfig(kick_in_step=100, coarse_to_fine_start_step=100, coarse_to_fine_end_step=200),
        **overrides,
    )
    body = _body_frames(capture)
    body.lone_training_camera = lone_camera
    return config.setup(body=body)


@pytest.fixture(scope="module")
def deformation(capture) -> BackwardDeformation:
    return _make_deformation(capture)


# ----------------------------------------------------------------------------- weight grids


def test_nearest_vertex_weights_reproduce_vertex_weights_and_sum_to_one():
    torch.manual_seed(0)
    vertices = torch.rand(300, 3)
    vertex_weights = torch.softmax(torch.randn(300, 24) * 3, dim=-1)
    at_vertices = nearest_vertex_skinning_weights(vertices[:50], vertices, vertex_weights, k=10)
    assert torch.allclose(at_vertices, vertex_weights[:50], atol=1e-5)
    elsewhere = nearest_vertex_skinning_weights(torch.rand(100, 3), vertices, vertex_weights, k=10)
    assert torch.allclose(elsewhere.sum(-1), torch.ones(100), atol=1e-5)


def test_weight_grid_axis_order_with_an_asymmetric_grid():
    # Channels linear in x, y and z respectively: trilinear interpolation reproduces them exactly, so any
    # mix-up of the axes (grid_sample reads its coordinates as (W, H, D)) shows.
    bounds_min, bounds_max = torch.tensor([-1.0, 0.0, 2.0]), torch.tensor([0.5, 3.0, 2.4])
    nodes = grid_node_positions(bounds_min, bounds_max, (5, 7, 9))
    assert nodes.shape == (5, 7, 9, 3)
    assert torch.allclose(nodes[4, 0, 0], torch.tensor([0.5, 0.0, 2.0]))
    assert torch.allclose(nodes[0, 6, 0], torch.tensor([-1.0, 3.0, 2.0]))
    assert torch.allclose(nodes[0, 0, 8], torch.tensor([-1.0, 0.0, 2.4]))

    def linear_channels(points):
        return torch.stack([2.0 + points[..., 0], 1.0 + points[..., 1], points[..., 2] - 1.5], dim=-1)

    grid = WeightGrid(linear_channels(nodes).permute(3, 0, 1, 2), bounds_min, bounds_max)
    points = bounds_min + torch.rand(200, 3) * (bounds_max - bounds_min)
    expected = linear_channels(points)
    assert torch.allclose(query_weight_grid(grid, points), expected / expected.sum(-1, keepdim=True), atol=1e-5)
    # Outside the box: the value at the nearest point of the box.
    outside = torch.tensor([[5.0, -1.0, 2.2]])
    clamped = linear_channels(torch.tensor([[0.5, 0.0, 2.2]]))
    assert torch.allclose(query_weight_grid(grid, outside), clamped / clamped.sum(-1, keepdim=True), atol=1e-5)


def test_built_grid_holds_nearest_vertex_weights_at_its_nodes():
    torch.manual_seed(1)
    vertices = torch.rand(400, 3) * torch.tensor([1.0, 2.0, 0.5])
    vertex_weights = torch.softmax(torch.randn(400, 24) * 2, dim=-1)
    bounds_min, bounds_max = torch.tensor([-0.1, -0.2, 0.0]), torch.tensor([1.1, 2.0, 0.6])
    grid = build_weight_grid(vertices, vertex_weights, bounds_min, bounds_max, (4, 6, 5), k=10)
    assert grid.values.shape == (24, 4, 6, 5)
    nodes = grid_node_positions(bounds_min, bounds_max, (4, 6, 5)).reshape(-1, 3)
    exact = nearest_vertex_skinning_weights(nodes, vertices, vertex_weights, k=10)
    assert torch.allclose(grid.values.permute(1, 2, 3, 0).reshape(-1, 24), exact, atol=1e-6)
    assert torch.allclose(query_weight_grid(grid, nodes), exact, atol=1e-5)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_dense_neighbour_query_matches_the_kd_tree(device):
    """``nearest_vertices``' two methods agree (the dense one is what a GPU run uses)."""
    generator = torch.Generator().manual_seed(4)
    vertices = torch.rand(3000, 3, generator=generator) * torch.tensor([0.6, 1.7, 0.3])
    points = torch.rand(5000, 3, generator=generator) * 2.0 - 0.2
    points[:20] = vertices[:20]  # on a vertex: distance 0
    tree_distances, tree_indices = nearest_vertices(points, vertices, 10, method="kdtree")
    dense_distances, dense_indices = nearest_vertices(points.to(device), vertices.to(device), 10, method="dense",
                                                      chunk_size=1024)  # fmt: skip
    assert dense_distances.device.type == device
    assert torch.allclose(dense_distances.cpu(), tree_distances, atol=1e-6)
    assert (dense_indices.cpu() == tree_indices).float().mean() > 0.999  # ties may order differently
    assert torch.equal(dense_indices[:20, 0].cpu(), torch.arange(20)) and float(dense_distances[:20, 0].max()) == 0.0


def test_per_frame_grids_hold_the_distance_to_the_nearest_vertex(capture):
    grids = PerFrameWeightGrids(capture.posed_vertices, capture.canonical.skinning_weights, resolution=16)
    grid = grids.grid(1)
    nodes = grid_node_positions(grid.bounds_min, grid.bounds_max, 16).reshape(-1, 3)[::29]
    _, distance = grids.query_with_distance(nodes, torch.full((len(nodes),), 1))
    nearest = torch.cdist(nodes.double(), capture.posed_vertices[1].double()).min(dim=1).values
    assert torch.allclose(distance.double(), nearest, rtol=2e-3, atol=1e-4)  # stored as float16


def test_per_frame_grids_are_lazy_and_handle_mixed_frames(capture):
    weights = capture.canonical.skinning_weights
    grids = PerFrameWeightGrids(capture.posed_vertices, weights, resolution=16, margin=0.1)
    assert grids.num_built == 0
    points = capture.posed_vertices[0, :50]
    grids.query(points, torch.zeros(50, dtype=torch.long))
    assert grids.num_built == 1
    # A batch mixing frames 2 and 0, compared with each frame's grid on its own (grid_sample path).
    torch.manual_seed(2)
    frame_indices = torch.tensor([2, 0] * 100)
    vertex_ids = torch.randint(0, weights.shape[0], (200,))
    points = capture.posed_vertices[frame_indices, vertex_ids] + 0.02 * torch.randn(200, 3)
    mixed = grids.query(points, frame_indices)
    assert grids.num_built == 2
    for frame in (0, 2):
        rows = frame_indices == frame
        assert torch.allclose(mixed[rows], query_weight_grid(grids.grid(frame), points[rows]), atol=1e-5)
    # At the nodes, the (float16) grid holds the exact nearest-vertex weights of the posed body.
    grid = grids.grid(2)
    nodes = grid_node_positions(grid.bounds_min, grid.bounds_max, 16).reshape(-1, 3)[::37]
    exact = nearest_vertex_skinning_weights(nodes, capture.posed_vertices[2], weights, k=10)
    assert torch.allclose(grids.query(nodes, torch.full((len(nodes),), 2)), exact, atol=2e-3)


# ----------------------------------------------------------------------------- skinning iterations


def test_closed_form_affine_solve_matches_matrix_inverse():
    torch.manual_seed(3)
    blended = torch.cat([torch.eye(3) + 0.3 * torch.randn(500, 3, 3), torch.randn(500, 3, 1)], dim=-1)
    points = torch.randn(500, 3)
    reference = (torch.linalg.inv(blended[:, :, :3]) @ (points - blended[:, :, 3])[..., None])[..., 0]
    assert torch.allclose(solve_blended_affine(blended, points), reference, atol=1e-4)


def _observation_grids(capture):
    return PerFrameWeightGrids(capture.posed_vertices, capture.canonical.skinning_weights, resolution=32)


def test_posed_vertices_return_to_their_canonical_positions(capture):
    vertices, weights = capture.canonical.vertices, capture.canonical.skinning_weights
    tree = cKDTree(vertices.numpy())

    def true_weights(points):  # the body's own weights (exact at the vertices)
        return weights[torch.from_numpy(tree.query(points.numpy())[1])]

    frame_indices = torch.arange(vertices.shape[0]) % 3
    points_obs = capture.posed_vertices[frame_indices, torch.arange(vertices.shape[0])]
    initial = _observation_grids(capture).query(points_obs, frame_indices)
    canonical, used = iterative_backward_deformation(
        points_obs, capture.bone_transforms, initial, true_weights, num_iterations=3, frame_indices=frame_indices
    )
    error = (canonical - vertices).norm(dim=-1)
    assert (error < 1e-3).float().mean() > 0.95
    assert error.median() < 1e-5
    # Every point reaches a canonical point that skins back onto it. Where the (fixture's very sharp)
    # weights change abruptly LBS is not injective and a few land on another valid preimage.
    reskinned = linear_blend_skinning(canonical[:, None], used[:, None], capture.bone_transforms[frame_indices])
    assert (reskinned[:, 0] - points_obs).norm(dim=-1).max() < 1e-4


def test_error_shrinks_with_iterations_off_the_surface(capture):
    vertices, weights = capture.canonical.vertices, capture.canonical.skinning_weights
    torch.manual_seed(4)
    ids = torch.randperm(vertices.shape[0])[:2000]
    truth = vertices[ids] + 0.01 * capture.normals[ids]

    def canonical_weights(points):
        return nearest_vertex_skinning_weights(points, vertices, weights, k=10)

    frame_indices = torch.randint(0, 3, (2000,))
    points_obs = linear_blend_skinning(
        truth[:, None], canonical_weights(truth)[:, None], capture.bone_transforms[frame_indices]
    )[:, 0]
    initial = _observation_grids(capture).query(points_obs, frame_indices)
    means, medians = [], []
    for iterations in (1, 2, 3):
        canonical, _ = iterative_backward_deformation(
            points_obs, capture.bone_transforms, initial, canonical_weights, iterations, frame_indices
        )
        error = (canonical - truth).norm(dim=-1)
        means.append(error.mean().item())
        medians.append(error.median().item())
    assert means[0] >= means[1] >= means[2] and medians[0] >= medians[1] >= medians[2]
    assert medians[2] < 1e-4 and means[2] < 3e-3


def test_only_the_last_iteration_is_differentiated():
    torch.manual_seed(5)
    transforms = torch.eye(4).repeat(24, 1, 1)
    transforms[:, :3, 3] = 0.1 * torch.randn(24, 3)
    calls = []

    def weight_fn(points):
        calls.append(torch.is_grad_enabled())
        return torch.softmax(points @ torch.ones(3, 24) * 0.1, dim=-1)

    points = torch.randn(10, 3, requires_grad=True)
    canonical, _ = iterative_backward_deformation(
        points, transforms.expand(10, -1, -1, -1), torch.full((10, 24), 1 / 24), weight_fn, num_iterations=3
    )
    assert calls == [False, True]
    canonical.sum().backward()
    assert points.grad is not None


# ----------------------------------------------------------------------------- the module


def test_positional_encoding_window_opens_bands_progressively():
    points = torch.rand(4, 3)
    closed = windowed_positional_encoding(points, 4, alpha=0.0)
    assert torch.equal(closed[:, :3], points) and closed[:, 3:].abs().max() == 0
    half = windowed_positional_encoding(points, 4, alpha=2.0).reshape(4, -1)[:, 3:].reshape(4, 4, 6)
    assert half[:, :2].abs().sum() > 0 and half[:, 2:].abs().max() == 0


def test_mixed_frames_in_one_batch_match_per_frame_batches(deformation, capture):
    torch.manual_seed(6)
    frame_indices = torch.tensor([0, 1, 2, 1] * 64)
    points = capture.posed_vertices[frame_indices, torch.randint(0, 6890, (256,))] + 0.01 * torch.randn(256, 3)
    with torch.no_grad():
        mixed, aux = deformation(points, frame_indices)
        for frame in (0, 1, 2):
            rows = frame_indices == frame
            alone, _ = deformation(points[rows], frame_indices[rows])
            assert torch.allclose(mixed[rows], alone, atol=1e-6)
    assert aux["skinning_weights"].shape == (256, 24)


def test_gradients_reach_skinning_residual_and_non_rigid_only_after_kick_in(capture):
    deformation = _make_deformation(capture)
    frame_indices = torch.tensor([0, 2] * 100)
    points = capture.posed_vertices[frame_indices, torch.arange(200) * 30]
    deformation.set_progress(0)
    canonical, aux = deformation(points, frame_indices)
    assert aux["non_rigid_offset"].abs().max() == 0
    canonical.square().sum().backward()
    assert deformation.skinning_field.residual_logits.grad.abs().sum() > 0
    assert all(p.grad is None for p in deformation.non_rigid.parameters())

    deformation.zero_grad()
    deformation.set_progress(150)
    canonical, aux = deformation(points, frame_indices)
    assert aux["non_rigid_offset"].abs().max() == 0  # zero-initialised last layer: starts at identity
    canonical.square().sum().backward()
    assert deformation.non_rigid.mlp.layers[-1].weight.grad.abs().sum() > 0
    assert deformation.skinning_field.residual_logits.grad.abs().sum() > 0


def test_canonical_observation_canonical_round_trip(capture):
    deformation = _make_deformation(capture)
    deformation.set_progress(150)  # non-rigid offset on, with a small non-zero output
    torch.manual_seed(7)
    torch.nn.init.normal_(deformation.non_rigid.mlp.layers[-1].weight, std=1e-4)
    ids = torch.randperm(6890)[:1000]
    points_canonical = capture.canonical.vertices[ids] + 0.005 * capture.normals[ids]
    with torch.no_grad():
        for frame in (0, 2):
            points_obs = deformation.forward_deform(points_canonical, frame)
            back, aux = deformation(points_obs, torch.full((1000,), frame))
            assert aux["non_rigid_offset"].abs().max() > 0
            error = (back - points_canonical).norm(dim=-1)
            # The fixture's skinning weights switch between bones far more abruptly than SMPL's; near those
            # seams the fixed-point iteration need not contract, so about 10% of the points miss by > 1 mm.
            assert error.median() < 1e-5 and (error < 1e-3).float().mean() > 0.85


def test_pose_refinement_starts_at_the_given_body_and_receives_gradients(capture):
    deformation = _make_deformation(capture, pose_refinement=True, pose_refinement_kick_in_step=10)
    frame_indices = torch.tensor([1, 2] * 50)
    points = capture.posed_vertices[frame_indices, torch.arange(100) * 60]
    deformation.set_progress(0)
    without, _ = deformation(points, frame_indices)
    deformation.set_progress(10)
    with_refinement, _ = deformation(points, frame_indices)
    assert torch.allclose(without, with_refinement, atol=1e-5)  # zero corrections: the given bone transforms
    with_refinement.square().sum().backward()
    body = deformation.body
    for grad in (body.pose_correction.grad, body.rotation_correction.grad, body.translation_correction.grad):
        assert grad[1:].abs().sum() > 0 and grad[0].abs().sum() == 0  # frame 0 is not in the batch
    assert set(deformation.param_groups()) == {"skinning", "non_rigid"}  # the corrections are the body's


def test_refinement_holds_depth_only_on_one_camera_captures(capture):
    camera = torch.tensor([0.0, 0.0, 3.0])
    monocular = _make_deformation(capture, lone_camera=camera, pose_refinement=True)
    assert (monocular.body.held_depth_axes.norm(dim=-1) - 1).abs().max() < 1e-5
    freed = _make_deformation(capture, lone_camera=camera, pose_refinement=True, pose_refinement_depth="free")
    several = _make_deformation(capture, pose_refinement=True)
    assert freed.body.held_depth_axes.abs().sum() == 0 and several.body.held_depth_axes.abs().sum() == 0
    with pytest.raises(InputError, match="needs a capture whose training images all come from one camera"):
        _make_deformation(capture, pose_refinement=True, pose_refinement_depth="held")
