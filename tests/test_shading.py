"""The irradiance that lights the albedo from one camera: what the spherical-harmonics shading can and cannot
represent, and how the field uses it."""

import pytest
import torch
import torch.nn.functional as F

from hfavatar_ns.fields.avatar_field import AvatarField, AvatarFieldConfig
from hfavatar_ns.fields.shading import SphericalHarmonicsShading


def _sphere(count: int = 4000) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return F.normalize(torch.randn(count, 3, generator=generator), dim=-1)


def _lambert(normals: torch.Tensor, ambient: float = 0.45, diffuse: float = 0.7) -> torch.Tensor:
    light = F.normalize(torch.tensor([0.35, -0.55, 0.75]), dim=0)
    return (ambient + diffuse * (normals @ light).clamp_min(0.0))[:, None] * torch.tensor([1.0, 0.9, 0.8])


def _fit(shading: SphericalHarmonicsShading, normals: torch.Tensor, target: torch.Tensor) -> None:
    optimizer = torch.optim.Adam(shading.parameters(), lr=0.05)
    for _ in range(300):
        loss = (shading(normals) - target).square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_shading_starts_unlit():
    normals = _sphere()
    assert torch.allclose(SphericalHarmonicsShading(3)(normals), torch.ones(len(normals), 3), atol=1e-6)


def test_nine_terms_light_a_diffuse_surface_under_a_directional_light():
    normals = _sphere()
    target = _lambert(normals)
    constant_error = (target - target.mean(dim=0)).square().mean().sqrt()
    shading = SphericalHarmonicsShading(3)
    _fit(shading, normals, target)
    error = (shading(normals) - target).square().mean().sqrt()
    assert error < 0.04 < 0.15 < constant_error  # the clamp of max(0, n.l) is what degree 2 cannot follow
    one_level = SphericalHarmonicsShading(1)  # a constant: no light direction at all
    _fit(one_level, normals, target)
    assert (one_level(normals) - target).square().mean().sqrt() > 0.15


def test_irradiance_is_never_negative_and_moves_no_geometry():
    shading = SphericalHarmonicsShading(2)
    with torch.no_grad():
        shading.coefficients.copy_(torch.tensor([[0.5] * 3, [0.0] * 3, [3.0] * 3, [0.0] * 3]))  # dark below
    normals = _sphere().requires_grad_(True)
    irradiance = shading(normals)
    assert irradiance.min() == 0.0 and irradiance.max() > 1.0
    irradiance.sum().backward()
    assert normals.grad is None and shading.coefficients.grad is not None
    with pytest.raises(ValueError, match="at least 1"):
        SphericalHarmonicsShading(0)


def test_field_multiplies_albedo_by_irradiance_only_when_asked():
    bounds = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    sphere = lambda points: points.norm(dim=-1) - 0.5  # noqa: E731
    small = dict(implementation="torch", num_levels=2, log2_hashmap_size=8, max_resolution=32)
    field = AvatarField(AvatarFieldConfig(**small), bounds, sphere)
    with torch.no_grad():
        field.shading.coefficients[2] = 2.0  # brighter facing +z
    points = torch.rand(8, 3) - 0.5
    features = field.forward_geonetwork(points)[:, 1:]
    up, down = torch.tensor([[0.0, 0.0, 1.0]]).expand(8, 3), torch.tensor([[0.0, 0.0, -1.0]]).expand(8, 3)
    albedo = field.get_color(features, up, up)
    assert torch.allclose(field.get_color(features, up, up, shading_normals=up), albedo * field.shading(up))
    lit, unlit = (field.get_color(features, up, up, shading_normals=normals) for normals in (up, down))
    assert (lit > unlit).all()
    unshaded = AvatarField(AvatarFieldConfig(**small, shading="none"), bounds, sphere)
    assert unshaded.shading is None
    with pytest.raises(ValueError, match="shading"):
        unshaded.get_color(features, up, up, shading_normals=up)
