"""Prior-guided inner sampling: the dilated-body occupancy grid and the samples it yields."""

import math

import pytest
import torch
import trimesh

from hfavatar_ns.model_components.inner_sampler import (
    InnerSamplerConfig,
    build_occupancy_grid,
    march_occupancy,
    occupancy_at,
    ray_aabb_intersection,
    sample_inside_occupancy,
    sample_occupied_segments,
)

BOX = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
RES = 64
MARGIN = 0.05
VOXEL = 2.0 / RES
DIAGONAL = VOXEL * math.sqrt(3)
SLACK = DIAGONAL + 0.6 * VOXEL  # the documented bound beyond the margin


def _mesh(mesh: trimesh.Trimesh):
    return torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces, dtype=torch.long)


def _sphere(radius, centre=(0.0, 0.0, 0.0)):
    return _mesh(trimesh.creation.icosphere(subdivisions=4, radius=radius).apply_translation(centre))


def _voxel_centres():
    axis = (torch.arange(RES) + 0.5) * VOXEL - 1.0
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1)


def _two_spheres():
    left, right = _sphere(0.2, (-0.5, 0, 0)), _sphere(0.2, (0.5, 0, 0))
    vertices = torch.cat([left[0], right[0]])
    faces = torch.cat([left[1], right[1] + left[0].shape[0]])
    return vertices, faces


@pytest.fixture(scope="module")
def sphere_occupancy():
    vertices, faces = _sphere(0.6)
    return build_occupancy_grid(vertices, faces, BOX, RES, MARGIN)


def test_occupancy_is_the_dilated_solid_sphere(sphere_occupancy):
    assert sphere_occupancy.shape == (RES, RES, RES) and sphere_occupancy.dtype == torch.bool
    radius = _voxel_centres().norm(dim=-1)
    # interior (filled: the centre is far from the surface) and a shell of `margin` ...
    assert sphere_occupancy[radius <= 0.6 + MARGIN - 2e-3].all()
    assert sphere_occupancy[RES // 2, RES // 2, RES // 2]
    # ... and nothing beyond margin + one voxel (its diagonal, plus the surface-sampling slack)
    assert not sphere_occupancy[radius > 0.6 + MARGIN + SLACK].any()


def test_occupancy_does_not_fill_the_hole_of_a_torus():
    # a ring (genus one, like a limb bent into a loop): its tube is filled, its hole is not
    vertices, faces = _mesh(
        trimesh.creation.torus(major_radius=0.5, minor_radius=0.15, major_sections=64, minor_sections=24)
    )
    occupancy = build_occupancy_grid(vertices, faces, BOX, RES, MARGIN)
    centres = _voxel_centres()
    ring_distance = torch.sqrt((centres[..., :2].norm(dim=-1) - 0.5) ** 2 + centres[..., 2] ** 2)
    assert occupancy[ring_distance <= 0.15 + MARGIN - 5e-3].all()
    assert not occupancy[ring_distance > 0.15 + MARGIN + SLACK].any()
    assert not occupancy_at(occupancy, BOX, torch.zeros(3))


def test_ray_box_intersection():
    origins = torch.tensor([[-3.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-3.0, 2.0, 0.0], [3.0, 0.0, 0.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    t_near, t_far, hit = ray_aabb_intersection(origins, directions, BOX)
    assert torch.allclose(t_near[:2], torch.tensor([2.0, -0.5])) and torch.allclose(t_far[:2], torch.tensor([4.0, 0.5]))
    assert hit.tolist() == [True, True, False, False]  # the last one points away from the box


def _check_bins(starts, ends, hits, occupancy, aabb, origins, directions, grid_indices=None):
    """Sorted, non-overlapping bins, every one of them in occupied space."""
    assert (ends >= starts).all()
    assert (starts[:, 1:] >= starts[:, :-1]).all()
    assert (starts[:, 1:] >= ends[:, :-1] - 1e-6).all()
    for fraction in (1e-4, 0.5, 1 - 1e-4):
        t = starts + fraction * (ends - starts)
        points = origins[:, None] + t * directions[:, None]
        indices = None if grid_indices is None else grid_indices[:, None].expand(points.shape[:2])
        inside = occupancy_at(occupancy, aabb, points, indices)
        assert inside[hits].all()
    lengths = (ends - starts)[..., 0]
    assert (lengths[~hits] == 0).all() and (lengths[hits].sum(dim=1) > 0).all()


def test_ray_through_the_centre_samples_only_the_dilated_sphere(sphere_occupancy):
    origins = torch.tensor([[-2.0, 0.0, 0.0], [-2.0, 0.9, 0.0]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    starts, ends, hits = sample_inside_occupancy(origins, directions, sphere_occupancy, BOX, 32, 256, stratified=False)
    assert starts.shape == (2, 32, 1) and ends.shape == (2, 32, 1)
    assert hits.tolist() == [True, False]  # the second ray passes 0.9 from the centre: outside the shell
    outer = 0.6 + MARGIN
    step = 2.0 / 256
    # all within [entry, exit] of the dilated sphere (up to the voxel slack) ...
    assert starts[0].min() >= 2.0 - outer - SLACK and ends[0].max() <= 2.0 + outer + SLACK
    # ... covering it (the sphere is solid: one interval, bins contiguous) ...
    assert starts[0, 0] <= 2.0 - outer + step and ends[0, -1] >= 2.0 + outer - step
    assert torch.allclose(starts[0, 1:], ends[0, :-1])
    # ... in even bins (evaluation)
    assert torch.allclose(ends[0] - starts[0], (ends[0, -1] - starts[0, 0]) / 32, atol=1e-5)
    _check_bins(starts, ends, hits, sphere_occupancy, BOX, origins, directions)
    # a ray that misses gets zero-length bins parked at one point
    assert (starts[1] == starts[1, 0]).all() and (ends[1] == starts[1]).all()


def test_no_samples_in_the_gap_between_two_spheres():
    vertices, faces = _two_spheres()
    occupancy = build_occupancy_grid(vertices, faces, BOX, RES, MARGIN)
    origins = torch.tensor([[-2.0, 0.0, 0.0], [2.0, 0.05, 0.02]])
    directions = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]])
    for stratified in (False, True):
        generator = torch.Generator().manual_seed(0)
        starts, ends, hits = sample_inside_occupancy(
            origins, directions, occupancy, BOX, 48, 256, stratified=stratified, generator=generator
        )
        assert hits.all()
        _check_bins(starts, ends, hits, occupancy, BOX, origins, directions)
        x_start = origins[:, None, 0:1] + starts * directions[:, None, 0:1]
        x_end = origins[:, None, 0:1] + ends * directions[:, None, 0:1]
        lower, upper = torch.minimum(x_start, x_end), torch.maximum(x_start, x_end)
        gap = 0.5 - 0.2 - MARGIN - SLACK  # |x| < gap is empty space between the shells
        assert not ((lower < gap) & (upper > -gap)).any()
        # both spheres get samples, in proportion to their (equal) occupied lengths
        left = (x_start < 0).sum(dim=1)[:, 0]
        assert ((left - 24).abs() <= 1).all()
        # bins are contiguous inside each interval; the one bin that meets the gap ends at it
        deltas = (ends - starts)[..., 0]
        joins = (starts[:, 1:] - ends[:, :-1])[..., 0]
        assert ((joins > 1e-5).sum(dim=1) == 1).all()
        assert (deltas.sum(dim=1) < 2 * (2 * (0.2 + MARGIN + SLACK))).all()


def test_stratified_samples_differ_but_stay_inside(sphere_occupancy):
    origins = torch.tensor([[-2.0, 0.1, 0.0]]).repeat(4, 1)
    directions = torch.tensor([[1.0, 0.0, 0.0]]).repeat(4, 1)
    generator = torch.Generator().manual_seed(1)
    starts, ends, hits = sample_inside_occupancy(
        origins, directions, sphere_occupancy, BOX, 16, 256, stratified=True, generator=generator
    )
    assert not torch.allclose(starts[0], starts[1])
    assert torch.allclose(starts[:, 0], starts[0, 0]) and torch.allclose(ends[:, -1], ends[0, -1])  # ends fixed
    _check_bins(starts, ends, hits, sphere_occupancy, BOX, origins, directions)


def test_spacing_maps_back_to_the_bins(sphere_occupancy):
    origins = torch.tensor([[-2.0, 0.0, 0.0], [0.0, -2.0, 0.3]])
    directions = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0.0], [0.0, 1.0, 0.0]]), dim=-1)
    segments = march_occupancy(origins, directions, sphere_occupancy, BOX, 256)
    starts, _, spacing_starts, _ = sample_occupied_segments(segments, 16, stratified=False)
    assert torch.allclose(segments.spacing_to_euclidean(spacing_starts[..., 0]), starts[..., 0], atol=1e-5)
    assert torch.allclose(segments.spacing_to_euclidean(spacing_starts), starts, atol=1e-5)  # [R, N, 1] too


def _ray_bundle(origins, directions, frame_indices):
    from nerfstudio.cameras.rays import RayBundle

    count = origins.shape[0]
    return RayBundle(
        origins=origins,
        directions=directions,
        pixel_area=torch.full((count, 1), 1e-6),
        camera_indices=torch.arange(count)[:, None],
        metadata={"directions_norm": torch.ones(count, 1), "frame_idx": frame_indices[:, None]},
        times=frame_indices[:, None].float() / 10,
    )


def test_mixed_frame_batch_uses_each_frames_grid():
    # frame 0: a sphere at x = -0.5; frame 1: the same sphere at x = +0.5
    left, faces = _sphere(0.2, (-0.5, 0, 0))
    right, _ = _sphere(0.2, (0.5, 0, 0))
    sampler = InnerSamplerConfig(num_samples=16, grid_resolution=32, margin=MARGIN).setup()
    sampler.set_frames(torch.stack([left, right]), faces, BOX)
    sampler.eval()
    frames = torch.tensor([0, 1, 1, 0, 1])
    origins = torch.tensor([[-2.0, 0.0, 0.0]]).repeat(5, 1)
    directions = torch.tensor([[1.0, 0.0, 0.0]]).repeat(5, 1)
    ray_samples, hits = sampler(_ray_bundle(origins, directions, frames), frames)
    assert hits.all()
    centres = ray_samples.frustums.get_positions()[..., 0]  # x of each bin's midpoint
    expected = torch.where(frames == 0, -0.5, 0.5)[:, None]
    voxel = (0.4 + 2 * MARGIN) / 28  # each frame's cube around its sphere
    assert ((centres - expected).abs() < 0.2 + MARGIN + voxel * (math.sqrt(3) + 0.6)).all()
    assert set(sampler._grids) == {0, 1}
    # the same rays one frame at a time give the same samples
    alone, _ = sampler(_ray_bundle(origins[:1], directions[:1], frames[1:2]), frames[1:2])
    assert torch.allclose(alone.frustums.starts[0], ray_samples.frustums.starts[1])


def test_ray_samples_shapes_and_nerfstudio_compatibility():
    from nerfstudio.model_components.ray_samplers import PDFSampler

    vertices, faces = _two_spheres()
    sampler = InnerSamplerConfig(num_samples=24, grid_resolution=32, margin=MARGIN).setup()
    sampler.set_frames(vertices[None], faces, BOX)
    sampler.train()
    count = 6
    generator = torch.Generator().manual_seed(2)
    targets = 0.4 * (torch.rand(count, 3, generator=generator) - 0.5) + torch.tensor([0.5, 0.0, 0.0])
    origins = torch.tensor([[0.0, 0.0, 3.0]]).repeat(count, 1)
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    frames = torch.zeros(count, dtype=torch.long)
    bundle = _ray_bundle(origins, directions, frames)
    ray_samples, hits = sampler(bundle, frames)
    assert ray_samples.shape == (count, 24)
    assert ray_samples.frustums.starts.shape == (count, 24, 1) and ray_samples.deltas.shape == (count, 24, 1)
    assert ray_samples.metadata["frame_idx"].shape == (count, 24, 1)
    assert ray_samples.metadata["directions_norm"].shape == (count, 24, 1)
    assert ray_samples.times.shape == (count, 24, 1) and ray_samples.camera_indices.shape == (count, 24, 1)
    assert ray_samples.spacing_starts.shape == (count, 24, 1) and hits.shape == (count,)
    assert (ray_samples.deltas >= 0).all()
    # weights along the rays and a PDF resampling on top work unchanged
    alphas = torch.full((count, 24, 1), 0.1) * hits[:, None, None]
    weights = ray_samples.get_weights_and_transmittance_from_alphas(alphas)[0]
    assert weights.shape == (count, 24, 1)
    fine = PDFSampler(num_samples=8, include_original=False)(bundle, ray_samples, weights)
    assert fine.frustums.starts.shape == (count, 8, 1)
    # the PDF sampler works in occupied-length spacing, so it stays inside the shell as well
    occupancy, box = sampler.grid(0)
    points = fine.frustums.get_start_positions()
    assert occupancy_at(occupancy, box, points[hits]).float().mean() > 0.95
