"""The colour head's inputs: the geometry MLP's features, and the hash grid's own when asked."""

import pytest
import torch

from hfavatar_ns.fields.avatar_field import AvatarField, AvatarFieldConfig


class _Sphere(torch.nn.Module):
    def forward(self, points):
        return points.norm(dim=-1) - 0.3


def make_field(color_grid_features: bool, color_grid: str = "geometry") -> AvatarField:
    torch.manual_seed(0)
    config = AvatarFieldConfig(
        implementation="torch", num_levels=4, log2_hashmap_size=10, max_resolution=64, sh_levels=0,
        color_grid_features=color_grid_features, color_grid=color_grid, color_grid_max_resolution=128,
    )  # fmt: skip
    field = AvatarField(config, torch.tensor([[-1.0] * 3, [1.0] * 3]), _Sphere())
    with torch.no_grad():  # the geometry MLP's features no longer depend on the grid
        field.geometry_head.weight[1:].zero_()
    return field


def colours(field: AvatarField, points: torch.Tensor) -> torch.Tensor:
    features = field.forward_geonetwork(points)[:, 1:]
    normals = torch.nn.functional.normalize(points, dim=-1)
    return field.get_color(features, normals, -normals)


@pytest.mark.parametrize("color_grid_features", [False, True])
def test_colour_reads_the_grid_only_when_asked(color_grid_features):
    field = make_field(color_grid_features)
    points = torch.rand(64, 3) * 1.6 - 0.8
    before = colours(field, points)
    with torch.no_grad():
        field.encoding.hash_table += 0.5
    changed = not torch.allclose(colours(field, points), before)
    assert changed == color_grid_features


def test_grid_features_leave_the_sdf_and_export_contract_alone():
    plain, with_grid = make_field(False), make_field(True)
    points = torch.rand(64, 3) * 1.6 - 0.8
    plain_out, grid_out = plain.forward_geonetwork(points), with_grid.forward_geonetwork(points)
    assert torch.equal(plain_out[:, :1], grid_out[:, :1])  # same seed, same geometry
    assert grid_out.shape[1] == plain_out.shape[1] + with_grid.encoding.get_out_dim()


def test_an_own_colour_grid_carries_the_colour_and_leaves_the_sdf_alone():
    field = make_field(True, color_grid="own")
    points = torch.rand(64, 3) * 1.6 - 0.8
    colour_before = colours(field, points)
    with torch.no_grad():
        field.encoding.hash_table += 0.5  # the SDF's grid: no longer read by the colour head
    assert torch.allclose(colours(field, points), colour_before)
    with torch.no_grad():
        field.color_encoding.hash_table += 0.5
    assert not torch.allclose(colours(field, points), colour_before)
    with torch.no_grad():
        field.geometry_head.weight[0].fill_(0.1)  # a residual that reads the SDF's grid
    sdf = field.get_sdf(points)
    with torch.no_grad():
        field.color_encoding.hash_table += 0.5
    assert torch.equal(field.get_sdf(points), sdf)
    assert field.color_encoding.get_out_dim() == field.encoding.get_out_dim()


def test_an_own_colour_grid_the_head_would_not_read_is_refused():
    with pytest.raises(ValueError, match="color-grid-features"):
        make_field(False, color_grid="own")
