"""Coarse-to-fine hash levels, and training-step schedules restored when a checkpoint is loaded."""

import pytest
import torch

from hfavatar_ns.fields.avatar_field import AvatarField, AvatarFieldConfig, coarse_to_fine_level_weights


def test_level_weights_open_one_after_another():
    assert coarse_to_fine_level_weights(8, 4, 400, 0).tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    halfway = coarse_to_fine_level_weights(8, 4, 400, 150)  # 1.5 of the 4 pending levels
    assert halfway.tolist() == [1, 1, 1, 1, 1, 0.5, 0, 0]
    assert coarse_to_fine_level_weights(8, 4, 400, 400).tolist() == [1] * 8
    assert coarse_to_fine_level_weights(8, 4, 400, 10_000).tolist() == [1] * 8


@pytest.mark.parametrize("initial, steps", [(0, 400), (4, 0), (8, 400)])
def test_level_weights_all_on_when_disabled(initial, steps):
    assert coarse_to_fine_level_weights(8, initial, steps, 0).tolist() == [1] * 8


class _Sphere(torch.nn.Module):
    def forward(self, points):
        return points.norm(dim=-1) - 0.3


def test_field_ignores_fine_levels_until_they_open():
    config = AvatarFieldConfig(
        implementation="torch", num_levels=4, log2_hashmap_size=10, max_resolution=64,
        coarse_to_fine_levels=1, coarse_to_fine_steps=300,
    )  # fmt: skip
    field = AvatarField(config, torch.tensor([[-1.0] * 3, [1.0] * 3]), _Sphere())
    with torch.no_grad():  # make the residual depend on the features
        field.geometry_head.weight[0].normal_()
    points = torch.rand(64, 3) * 2 - 1
    field.set_progress(0)
    at_start = field.get_sdf(points)
    with torch.no_grad():  # perturb only the finer levels' entries: the SDF must not move while they are closed
        table = field.encoding.hash_table.view(config.num_levels, -1, config.features_per_level)
        table[1:] += 0.5
    assert torch.allclose(field.get_sdf(points), at_start)
    field.set_progress(300)
    assert not torch.allclose(field.get_sdf(points), at_start)


def test_loaded_run_resumes_its_schedules(tiny_avatar_run):
    """`update_to_step` (nerfstudio calls it on load) puts every schedule at the checkpoint's step."""
    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    model = load_avatar_run(tiny_avatar_run).model
    model.update_to_step(10**6)
    assert model.deformation._step == 10**6
    assert model.deformation.non_rigid.active
    assert model.cos_anneal_ratio == 1.0
    assert bool((model.field.level_weights == 1).all())
    model.update_to_step(0)
    assert not model.deformation.non_rigid.active
