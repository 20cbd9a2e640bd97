"""The viewer's Frame slider, its agreement with nerfstudio's Time slider, and the Canonical pose toggle,
exercised without a browser (slider values set from Python, as before the viewer installs them)."""

import pytest
import torch
from nerfstudio.cameras.cameras import Cameras

from hfavatar_ns.models.viewer_frames import camera_with_frame
from hfavatar_ns.scripts.render_video import capture_camera, load_avatar_run


@pytest.fixture(scope="module")
def avatar(tiny_avatar_run):
    return load_avatar_run(tiny_avatar_run)


def viewer_camera(avatar, time=0.0):
    """A camera as the viewer builds it: times [1], metadata with an int cam_idx, no frame_idx."""
    cam = capture_camera(avatar.capture_root, 1, 0.35)
    return Cameras(
        camera_to_worlds=cam.camera_to_worlds, fx=cam.fx, fy=cam.fy, cx=cam.cx, cy=cam.cy,
        width=cam.width, height=cam.height, times=torch.tensor([time]), metadata={"cam_idx": 0},
    )  # fmt: skip


def test_frame_slider_picks_the_row_when_time_does_not_move(avatar):
    model = avatar.model
    model.viewer_controls.frame_slider.value = 3
    assert model.viewer_controls.row(torch.tensor([model.viewer_controls.last_time])) == 3
    assert model.viewer_controls.row(None) == 3
    assert model.viewer_controls.frame_id.value == str(int(model.body.frame_ids[3]))


def test_time_slider_moves_the_frame_slider_and_the_last_moved_wins(avatar):
    model = avatar.model
    model.viewer_controls.frame_slider.value = 0
    last = model.body.num_frames - 1
    time = float(model.body.times[last])
    assert model.viewer_controls.row(torch.tensor([time])) == last
    assert int(model.viewer_controls.frame_slider.value) == last
    model.viewer_controls.frame_slider.value = 1  # the user moves the Frame slider afterwards
    assert model.viewer_controls.row(torch.tensor([time])) == 1
    assert model.viewer_controls.row(torch.tensor([float(model.body.times[2]) + 1e-3])) == 2


def test_changing_the_frame_changes_the_render_and_matches_frame_metadata(avatar):
    model = avatar.model
    model.viewer_controls.canonical.value = False
    camera = viewer_camera(avatar, time=model.viewer_controls.last_time)
    images = []
    for row in (0, model.body.num_frames - 1):
        model.viewer_controls.frame_slider.value = row
        images.append(model.get_outputs_for_camera(camera)["rgb"])
    assert (images[0] - images[1]).abs().mean() > 1e-3
    explicit = camera_with_frame(camera, model.body.num_frames - 1)
    assert torch.allclose(model.get_outputs_for_camera(explicit)["rgb"], images[1], atol=1e-5)


def test_canonical_toggle_renders_the_canonical_avatar(avatar):
    model = avatar.model
    camera = viewer_camera(avatar, time=model.viewer_controls.last_time)
    model.viewer_controls.frame_slider.value = 0
    posed = model.get_outputs_for_camera(camera)
    model.viewer_controls.canonical.value = True
    try:
        canonical = model.get_outputs_for_camera(camera)
    finally:
        model.viewer_controls.canonical.value = False
    assert canonical["rgb"].shape == posed["rgb"].shape
    assert canonical["accumulation"].max() > 0.5  # the avatar is in view
    assert (canonical["accumulation"] - posed["accumulation"]).abs().mean() > 1e-3


def test_training_never_reads_the_gui(avatar, monkeypatch):
    from nerfstudio.models.base_model import Model

    model = avatar.model

    class Exploding:
        @property
        def value(self):
            raise AssertionError("GUI state read in training mode")

    seen = []
    monkeypatch.setattr(Model, "get_outputs_for_camera", lambda self, camera, obb_box=None: seen.append(camera) or {})
    monkeypatch.setattr(model.viewer_controls, "frame_slider", Exploding())
    monkeypatch.setattr(model.viewer_controls, "canonical", Exploding())
    model.train()
    try:
        model.get_outputs_for_camera(viewer_camera(avatar, time=0.5))
    finally:
        model.eval()
    assert seen and "frame_idx" not in (seen[0].metadata or {})
