"""hfavatar-render: orbit, motion and novel-motion videos of a tiny avatar at tiny resolution."""

import subprocess
import sys

import mediapy
import numpy as np
import pytest
import torch

from hfavatar_ns.scripts.render_video import (
    MotionVideo,
    NovelMotionVideo,
    Orbit,
    load_avatar_run,
    load_motion,
    resample_motion,
)

SCALE = 0.4  # 96 px capture -> 38 px


@pytest.fixture(scope="module")
def avatar(tiny_avatar_run):
    return load_avatar_run(tiny_avatar_run)


def frames_in(folder):
    return [mediapy.read_image(path) for path in sorted(folder.glob("*.png"))]


def test_orbit_views_differ(avatar, tiny_avatar_run, tmp_path):
    out = Orbit(tiny_avatar_run, tmp_path / "orbit", SCALE, output_format="images", num_views=3).main(avatar)
    frames = frames_in(out)
    assert len(frames) == 3
    assert frames[0].shape[0] == 38
    assert np.abs(frames[0].astype(float) - frames[1]).mean() > 0.5


def test_motion_from_a_capture_camera_changes_with_the_pose(avatar, tiny_avatar_run, tmp_path):
    out = MotionVideo(tiny_avatar_run, tmp_path / "motion", SCALE, output_format="images", camera=1).main(avatar)
    frames = frames_in(out)
    assert len(frames) == int((avatar.model.body.frame_ids >= 0).sum())
    assert np.abs(frames[0].astype(float) - frames[-1]).mean() > 0.2


def test_motion_file_loading_and_resampling(tmp_path):
    poses = torch.zeros(5, 24, 3)
    poses[:, 16, 2] = torch.linspace(0, 1.2, 5)
    np.savez(tmp_path / "m.npz", poses=poses.numpy(), trans=np.zeros((5, 3)), mocap_framerate=30.0)
    motion = load_motion(tmp_path / "m.npz")
    assert motion.poses.shape == (5, 72) and motion.fps == 30.0
    half = resample_motion(motion, 30.0, 15.0)
    assert half.poses.shape[0] == 3
    assert torch.allclose(half.poses[1], motion.poses[2], atol=1e-5)
    double = resample_motion(motion, 30.0, 60.0)
    assert double.poses.shape[0] == 9
    assert torch.allclose(double.poses[1].reshape(24, 3)[16, 2], torch.tensor(0.15), atol=1e-4)


def test_novel_motion_drives_the_avatar(tiny_avatar_run, tmp_path):
    avatar = load_avatar_run(tiny_avatar_run)  # animate grows the body frames: keep it out of other tests
    model = avatar.model
    base = model.body.poses[0].cpu().clone()
    poses = base.repeat(3, 1)
    poses[:, 16 * 3 + 2] = torch.tensor([-1.2, 0.0, 1.2])  # swing the left shoulder
    poses[:, 17 * 3 + 2] = torch.tensor([1.2, 0.0, -1.2])
    path = tmp_path / "wave.pkl"
    import pickle

    with open(path, "wb") as handle:
        pickle.dump({"poses": poses.numpy()}, handle)
    before = model.body.num_frames
    out = NovelMotionVideo(
        tiny_avatar_run, tmp_path / "novel", SCALE, output_format="images", camera=1,
        motion_file=path, fps_in=24.0, fps_out=24.0,
    ).main(avatar)  # fmt: skip
    assert model.body.num_frames == before + 3
    new_vertices = model.body.published_vertices[before:]
    assert (new_vertices[0] - new_vertices[2]).abs().max() > 0.05  # the posed body changes
    frames = frames_in(out)
    assert len(frames) == 3
    assert np.abs(frames[0].astype(float) - frames[2]).mean() > 0.2
    assert set(model.body.frame_ids[before:].tolist()) == {-1, -2, -3}


def test_cli_writes_an_mp4(tiny_avatar_run, tmp_path):
    out = tmp_path / "orbit.mp4"
    command = [sys.executable, "-m", "hfavatar_ns.scripts.render_video", "orbit", "--load-config", str(tiny_avatar_run),
               "--output-path", str(out), "--num-views", "2", "--resolution-scale", str(SCALE)]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    written = [out, out.with_suffix("")]
    assert any(p.exists() for p in written)
