"""The per-frame body state and its one owner, BodyFrames: rows and ids, canonical rebasing, pose-refinement
corrections, re-posing moved rows, the caches that follow it, novel motions, checkpoints."""

import pytest
import numpy as np
import torch

from hfavatar_ns.body.body_frames import BodyFrames, frame_times
from hfavatar_ns.body.canonical_pose import star_pose
from hfavatar_ns.body.posing import BodyModelSpec, pose_in_batches
from hfavatar_ns.body.skinning import linear_blend_skinning
from hfavatar_ns.deformation.weight_grid import PerFrameWeightGrids
from hfavatar_ns.errors import InputError
from hfavatar_ns.model_components.inner_sampler import InnerSampler, InnerSamplerConfig

FRAME_IDS = [10, 12, 15, 20]


@pytest.fixture(scope="module")
def fits(synthetic_smpl_dir):
    generator = torch.Generator().manual_seed(3)
    count = len(FRAME_IDS)
    return {
        "spec": BodyModelSpec("smpl", model_dir=synthetic_smpl_dir),
        "poses": torch.randn(count, 72, generator=generator) * 0.15,
        "shapes": torch.zeros(count, 10),
        "rh": torch.randn(count, 3, generator=generator) * 0.3,
        "th": torch.randn(count, 3, generator=generator),
    }


def make_body(fits, training=(10, 15)) -> BodyFrames:
    return BodyFrames.from_parameters(
        fits["spec"], FRAME_IDS, fits["poses"], fits["shapes"], fits["rh"], fits["th"], training
    )


def test_rows_ids_times_and_training_rows(fits):
    body = make_body(fits)
    assert body.num_frames == 4 and body.row_of(15) == 2 and body.rows_of([20, 10]) == [3, 0]
    assert body.frame_id(1) == 12 and body.training_rows() == [0, 2] and body.capture_rows() == [0, 1, 2, 3]
    with pytest.raises(InputError, match="Frame 11 is not one of the avatar's frames"):
        body.row_of(11)
    assert torch.allclose(body.times, torch.tensor([0.0, 0.2, 0.5, 1.0]))
    assert body.row_at_time(0.45) == 2 and body.rows_at_times(torch.tensor([0.9, 0.1])).tolist() == [3, 0]
    assert frame_times([5]).tolist() == [0.0] and frame_times([3, -1]).tolist() == [0.0, float("inf")]


def test_table_sizes_must_agree(fits):
    body = make_body(fits)
    with pytest.raises(InputError, match="disagree on the number of frames"):
        BodyFrames(
            body.canonical_body(), body.shape, body.frame_ids[:3], body.poses, body.global_rotation,
            body.global_translation, body.rest_bone_transforms, body.given_vertices, fits["spec"],
        )  # fmt: skip


def test_canonical_pose_rebases_the_bone_transforms(fits):
    """Skinning the canonical (star-pose) body with the rebased transforms gives the posed body (exactly where
    one bone moves a vertex; elsewhere LBS blends two different rigid maps)."""
    body = make_body(fits)
    body.set_canonical_pose(star_pose(0.45))
    canonical = body.canonical_body()
    assert (canonical.vertices - body.rest_vertices).abs().max() > 0.05  # the legs moved
    weights = canonical.skinning_weights.expand(4, -1, -1)
    posed = linear_blend_skinning(canonical.vertices.expand(4, -1, -1), weights, body.given_bone_transforms)
    without_correctives = linear_blend_skinning(body.rest_vertices.expand(4, -1, -1), weights, body.rest_bone_transforms)
    rigid = canonical.skinning_weights.max(dim=-1).values > 0.999
    assert rigid.sum() > 100
    assert torch.allclose(posed[:, rigid], without_correctives[:, rigid], atol=1e-3)


def test_corrections_are_forward_kinematics_of_the_corrected_fit(fits):
    body = make_body(fits)
    body.enable_refinement()
    rows = torch.tensor([1, 3])
    body.apply_corrections = True
    assert torch.allclose(body.corrected_bone_transforms(rows), body.given_bone_transforms[rows], atol=1e-5)
    generator = torch.Generator().manual_seed(4)
    with torch.no_grad():
        body.pose_correction.normal_(0.0, 0.1, generator=generator)
        body.rotation_correction.normal_(0.0, 0.1, generator=generator)
        body.translation_correction.normal_(0.0, 0.05, generator=generator)
    expected = pose_in_batches(
        fits["spec"].make(), fits["poses"] + body.pose_correction.detach().flatten(1), fits["shapes"],
        fits["rh"] + body.rotation_correction.detach(), fits["th"] + body.translation_correction.detach(),
    ).bone_transforms  # fmt: skip
    assert torch.allclose(body.corrected_bone_transforms(rows), expected[rows], atol=1e-4)
    table, index = body.bone_transform_table(torch.tensor([3, 1, 3]))
    assert table.shape[0] == 2 and torch.allclose(table[index], expected[[3, 1, 3]], atol=1e-4)
    assert torch.allclose(body.frame_poses(rows), (fits["poses"] + body.pose_correction.detach().flatten(1))[rows])
    body.apply_corrections = False  # before the kick-in: the given fits
    assert torch.equal(body.bone_transform_table(rows)[0], body.given_bone_transforms)


def test_refresh_reposes_only_rows_that_moved_and_caches_follow(fits):
    body = make_body(fits)
    body.enable_refinement()
    body.apply_corrections = True
    weights = body.skinning_weights
    grids = PerFrameWeightGrids(body, weights, resolution=8)
    sampler = InnerSampler(InnerSamplerConfig(grid_resolution=24, margin=0.05))
    sampler.set_bodies(body)
    grids.build()
    before = grids.table.clone()
    occupancy_before = [sampler.grid(row)[0].clone() for row in range(4)]
    with torch.no_grad():
        body.translation_correction[2] = torch.tensor([0.0, 0.0, 0.001])  # 1 mm: within the tolerance
        body.translation_correction[1] = torch.tensor([0.2, 0.0, 0.0])  # 20 cm
    assert body.refresh() == [1]
    assert body.revision(1) > body.revision(2)
    assert torch.allclose(body.posed_vertices(1), body.given_vertices[1] + torch.tensor([0.2, 0.0, 0.0]), atol=1e-5)
    assert torch.equal(body.posed_vertices(2), body.given_vertices[2])
    assert grids.num_built == 3  # row 1 is out of date
    grids.build()
    assert torch.equal(grids.table[[0, 2, 3]], before[[0, 2, 3]]) and not torch.equal(grids.table[1], before[1])
    assert torch.allclose(grids.bounds_min[1], body.given_vertices[1].amin(0) + torch.tensor([0.2, 0.0, 0.0]) - 0.1)
    assert torch.equal(sampler.grid(0)[0], occupancy_before[0])
    box = sampler.grid(1)[1]
    assert torch.allclose(box.mean(0), body.posed_bounds([1]).mean(0), atol=1e-5)
    assert body.refresh() == []


def test_refresh_measures_drift_as_the_largest_vertex_move(fits):
    body = make_body(fits)
    body.enable_refinement()
    body.apply_corrections = True
    with torch.no_grad():
        body.pose_correction[0, 20] = torch.tensor([0.0, 0.0, np.radians(3.0)])  # a wrist: the hand moves millimetres
        body.pose_correction[1, 1] = torch.tensor([np.radians(8.0), 0.0, 0.0])  # a hip: the foot moves ~12 cm
    given = body.posed_vertices(1).clone()
    assert body.refresh() == [1]
    assert set(body.refresh(tolerance=0.0)) <= {0}  # no tolerance: any move counts, and rows without corrections have none
    moved = (body.posed_vertices(1) - given).norm(dim=-1).max()
    assert 0.05 < float(moved) < 0.2


def test_appended_motion_gets_new_rows_and_caches_grow(fits):
    body = make_body(fits)
    body.set_canonical_pose(star_pose(0.45))
    body.enable_refinement()
    grids = PerFrameWeightGrids(body, body.skinning_weights, resolution=8)
    grids.build()
    motion = fits["poses"][:2] * 0.5
    rh, th = torch.zeros(2, 3), torch.ones(2, 3)
    posed = pose_in_batches(fits["spec"].make(), motion, fits["shapes"][:2], rh, th)
    rows = body.append(posed, motion, rh, th)
    assert rows.tolist() == [4, 5] and body.frame_ids[4:].tolist() == [-1, -2] and body.capture_rows() == [0, 1, 2, 3]
    assert body.pose_correction.shape[0] == 6 and body.times[4:].isinf().all() and not body.trained[4:].any()
    assert torch.equal(body.posed_vertices(5), posed.vertices[1])
    rebased = posed.bone_transforms @ torch.linalg.inv(body.rest_to_canonical)  # canonical -> observation
    assert torch.allclose(body.given_bone_transforms[4:], rebased, atol=1e-5)
    grids.query(body.posed_vertices(5)[:10], torch.full((10,), 5))
    assert grids.table.shape[0] == 6 and grids.num_built == 5
    rows = body.append(posed, motion, rh, th)
    assert body.frame_ids[6:].tolist() == [-3, -4]


def test_corrections_are_checkpointed_and_loading_reposes(fits):
    body = make_body(fits)
    body.enable_refinement()
    with torch.no_grad():
        body.translation_correction[3] = torch.tensor([0.0, 0.1, 0.0])
    state = body.state_dict()
    assert set(state) == {"pose_correction", "rotation_correction", "translation_correction"}
    loaded = make_body(fits)
    loaded.enable_refinement()
    loaded.apply_corrections = True
    loaded.load_state_dict(state)
    assert torch.allclose(loaded.posed_vertices(3), loaded.given_vertices[3] + torch.tensor([0.0, 0.1, 0.0]), atol=1e-5)


def test_held_depth_keeps_each_body_off_its_line_of_sight(fits):
    """With depth held, a translation correction moves a row's body only across the camera's line of sight to
    it; the exported fits say the same."""
    body = make_body(fits)
    body.enable_refinement()
    body.apply_corrections = True
    camera = torch.tensor([0.5, -1.0, 4.0])
    body.hold_depth(camera)
    with torch.no_grad():
        body.translation_correction.copy_(torch.randn(4, 3, generator=torch.Generator().manual_seed(5)) * 0.1)
    body.refresh(tolerance=0.0)
    for row in range(4):
        sight = body.given_vertices[row].mean(0) - camera
        moved = body.posed_vertices(row) - body.given_vertices[row]
        assert torch.allclose(moved, moved[:1].expand_as(moved), atol=1e-5)  # a pure translation
        assert abs(float(moved[0] @ sight / sight.norm())) < 1e-5
        assert float(moved[0].norm()) > 0.01
    exported_shift = body.fit_parameters([1])["Th"][0] - body.global_translation[1]
    assert torch.allclose(exported_shift, body.posed_vertices(1)[0] - body.given_vertices[1][0], atol=1e-5)
