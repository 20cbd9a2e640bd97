"""``--pipeline.model.sdf-field.color-normals canonical`` (and ``auto`` on a one-camera capture): the colour head
sees the canonical surface's normal, so a point's colour does not depend on how the frame turns the body (what
one camera needs), while ``shading`` lights that canonical colour by the posed normal."""

import pytest
import torch
import torch.nn.functional as F
from nerfstudio.cameras.rays import RayBundle
from ns_train_fixture import trained_on_tiny_capture

from hfavatar_ns.fields.shading import DirectionalLightShading

pytestmark = pytest.mark.slow


def test_canonical_colour_normals_make_colour_independent_of_the_frames_rotation(tmp_path):
    trainer = trained_on_tiny_capture(tmp_path, 3, "--pipeline.model.sdf-field.color-normals", "canonical")
    model = trainer.pipeline.model.eval()
    assert model.field.config.color_normals == "canonical"

    camera = trainer.pipeline.datamanager.eval_dataset.cameras[0:1].to(model.device)
    rays = camera.generate_rays(camera_indices=0)[::4, ::4].flatten()
    row = 0
    pelvis = model.body.corrected_bone_transforms(torch.tensor([row]))[0, 0]
    rotation, translation = pelvis[:3, :3], pelvis[:3, 3]
    assert (rotation - torch.eye(3)).abs().max() > 0.1  # the frame does turn the body
    in_canonical = RayBundle(
        origins=(rays.origins - translation) @ rotation, directions=rays.directions @ rotation,
        pixel_area=rays.pixel_area, camera_indices=rays.camera_indices,
    )  # fmt: skip

    def both():
        posed, canonical = model.get_outputs_canonical(rays, row), model.get_outputs_canonical(in_canonical, None)
        assert (posed["accumulation"] > 0.5).sum() > 20  # the rays see the body
        return posed["rgb"], canonical["rgb"]

    posed, canonical = both()
    assert torch.allclose(posed, canonical, atol=1e-4)
    model.field.config.color_normals = "observation"  # the same field, fed the turned normals
    posed, canonical = both()
    assert (posed - canonical).abs().max() > 1e-3
    model.field.config.color_normals = "auto"  # the default: canonical only for a capture from one camera
    assert model.body.lone_training_camera is None and not model.colour_sees_canonical_normals
    model.body.lone_training_camera = camera.camera_to_worlds[0, :, 3]
    assert model.colour_sees_canonical_normals and model.colour_is_shaded  # auto: both, for one camera
    model.field.config.shading = "none"
    posed, canonical = both()
    assert torch.allclose(posed, canonical, atol=1e-4)
    # Lit from one side, the albedo is shaded by the observation normal: the light stays put as the body turns.
    model.field.config.shading = "auto"
    model.field.shading.point_towards(torch.tensor([1.0, 0.0, 0.0]))
    posed, canonical = both()
    assert (posed - canonical).abs().max() > 1e-2


def test_one_training_camera_lights_the_colour_by_one_light_that_starts_from_the_cameras_side(tmp_path):
    trainer = trained_on_tiny_capture(tmp_path, 1, "zju-mocap", "--train-cameras", "0")
    model = trainer.pipeline.model
    camera = model.body.lone_training_camera
    assert camera is not None and model.colour_is_shaded and model.colour_sees_canonical_normals
    light = model.field.shading
    assert isinstance(light, DirectionalLightShading)
    towards_camera = F.normalize(camera - model.body.posed_bounds().mean(dim=0), dim=0)
    assert float(F.normalize(light.light_direction.detach(), dim=0) @ towards_camera) > 0.99  # one step moved it little
