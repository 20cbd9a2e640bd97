"""The irradiance that lights the albedo from one camera: what the spherical-harmonics shading can and cannot
represent, and how the field uses it."""

import pytest
import torch
import torch.nn.functional as F

from hfavatar_ns.evaluation.irradiance_fit import (
    Lighting,
    fit_irradiance,
    seen_and_unseen_error,
    seen_from,
    sphere_normals,
)
from hfavatar_ns.fields.avatar_field import AvatarField, AvatarFieldConfig
from hfavatar_ns.fields.shading import DirectionalLightShading, SphericalHarmonicsShading
from hfavatar_ns.synth.config import LIGHTINGS


SYNTH_LIGHT = Lighting(*LIGHTINGS["one_light"])  # how the synthetic captures are lit


def _lambert(normals: torch.Tensor) -> torch.Tensor:
    return SYNTH_LIGHT.irradiance(normals)[:, None] * torch.tensor([1.0, 0.9, 0.8])


def _fit(shading: torch.nn.Module, normals: torch.Tensor, target: torch.Tensor) -> None:
    fit_irradiance(shading, normals, target, steps=300, learning_rate=0.05)


def test_shading_starts_unlit_or_lit_from_the_camera():
    normals = sphere_normals(4000)
    assert torch.allclose(SphericalHarmonicsShading(3)(normals), torch.ones(len(normals), 3), atol=1e-6)
    towards = F.normalize(torch.tensor([1.0, 2.0, 0.0]), dim=0)
    expected = 0.5 + 0.5 * (normals @ towards).clamp_min(0.0)
    assert torch.allclose(DirectionalLightShading(towards * 3)(normals), expected[:, None].expand(-1, 3), atol=1e-5)


def test_nine_terms_light_a_diffuse_surface_under_a_directional_light():
    normals = sphere_normals(4000)
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
    normals = sphere_normals(4000).requires_grad_(True)
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
    field = AvatarField(AvatarFieldConfig(**small, shading="spherical_harmonics"), bounds, sphere)
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


def test_one_light_guesses_the_side_one_camera_never_sees_better_than_nine_terms():
    lighting = SYNTH_LIGHT
    camera_side = (1.0, 0.2, 0.1)

    def light():
        return DirectionalLightShading(torch.tensor(camera_side))

    def harmonics():
        return SphericalHarmonicsShading(3)

    light_seen, light_unseen = seen_and_unseen_error(light, lighting, camera_side)
    harmonics_seen, harmonics_unseen = seen_and_unseen_error(harmonics, lighting, camera_side)
    assert light_seen < 0.02 and harmonics_seen < 0.04  # both explain what the camera saw
    assert light_unseen < 0.03 and harmonics_unseen > max(0.05, 3 * light_unseen)

    two_lights = Lighting(0.3, (((0.35, -0.55, 0.75), 0.7), ((-0.5, 0.6, 0.2), 0.3)))  # more than one light can say
    light_seen, light_unseen = seen_and_unseen_error(light, two_lights, camera_side)
    harmonics_seen, harmonics_unseen = seen_and_unseen_error(harmonics, two_lights, camera_side)
    assert harmonics_seen < light_seen and light_unseen < harmonics_unseen


def test_a_camera_sees_the_half_of_the_sphere_facing_it():
    normals = sphere_normals(4000)
    seen = seen_from(normals, torch.tensor([0.0, 0.0, 5.0]), grazing=0.0)
    assert torch.equal(seen, normals[:, 2] > 0) and 0.45 < seen.float().mean() < 0.55
    lighting = Lighting(0.25, (((0.0, 0.0, 2.0), 0.5),))
    assert torch.allclose(lighting.irradiance(normals), 0.25 + 0.5 * normals[:, 2].clamp_min(0.0))


def test_the_light_moves_no_geometry_and_needs_a_direction():
    light = DirectionalLightShading(torch.tensor([0.0, 1.0, 0.0]))
    normals = sphere_normals(4000).requires_grad_(True)
    irradiance = light(normals)
    facing = normals[:, 1] > 0
    assert torch.allclose(irradiance[~facing], torch.full((1, 3), 0.5))  # the ambient alone where no light reaches
    assert (irradiance[facing] > 0.5).all() and irradiance.max() <= 1.0 + 1e-6
    irradiance.sum().backward()
    assert normals.grad is None and light.light_direction.grad is not None
    light.point_towards(torch.tensor([0.0, 0.0, -3.0]))
    assert torch.allclose(light.light_direction.detach(), torch.tensor([0.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match="non-zero"):
        DirectionalLightShading(torch.zeros(3))


def test_auto_shading_is_one_light_and_loads_a_run_saved_with_spherical_harmonics():
    bounds = torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
    sphere = lambda points: points.norm(dim=-1) - 0.5  # noqa: E731
    small = dict(implementation="torch", num_levels=2, log2_hashmap_size=8, max_resolution=32)
    assert isinstance(AvatarField(AvatarFieldConfig(**small), bounds, sphere).shading, DirectionalLightShading)

    harmonics = AvatarFieldConfig(**small, shading="spherical_harmonics", shading_sh_levels=2)
    saved = AvatarField(harmonics, bounds, sphere)
    with torch.no_grad():
        saved.shading.coefficients[1:] = torch.randn(3, 3)
    loaded = AvatarField(AvatarFieldConfig(**small), bounds, sphere)
    loaded.load_state_dict(saved.state_dict())
    normals = sphere_normals(64)
    assert isinstance(loaded.shading, SphericalHarmonicsShading)
    assert torch.equal(loaded.shading(normals), saved.shading(normals))

    forced = AvatarField(AvatarFieldConfig(**small, shading="directional"), bounds, sphere)
    with pytest.raises(RuntimeError, match="shading"):  # a light asked for by name stays a light
        forced.load_state_dict(saved.state_dict())
