"""`ns-render camera-path` with `render_time`: the time of each keyframe picks the body pose."""

import json
import math
import subprocess
import sys
from pathlib import Path

import mediapy
import numpy as np
import pytest

from hfavatar_ns.scripts.avatar_run import load_avatar_run

SIZE = 40


@pytest.fixture(scope="module")
def rendered(tiny_avatar_run, tmp_path_factory):
    """Three frames from one training camera at render times 0, 1 and 0 again."""
    avatar = load_avatar_run(tiny_avatar_run)
    cameras = avatar.pipeline.datamanager.train_dataset.cameras
    camera_to_world = np.eye(4)
    camera_to_world[:3] = cameras.camera_to_worlds[0].numpy()
    fov = math.degrees(2 * math.atan(float(cameras.height[0]) / (2 * float(cameras.fy[0]))))
    keyframe = {"camera_to_world": camera_to_world.reshape(-1).tolist(), "fov": fov, "aspect": 1.0}
    path = {
        "camera_type": "perspective", "render_height": SIZE, "render_width": SIZE, "seconds": 3, "fps": 1,
        "camera_path": [keyframe | {"render_time": t} for t in (0.0, 1.0, 0.0)],
    }  # fmt: skip
    root = tmp_path_factory.mktemp("camera_path")
    (root / "path.json").write_text(json.dumps(path))
    command = [
        str(Path(sys.executable).parent / "ns-render"), "camera-path", "--load-config", str(tiny_avatar_run),
        "--camera-path-filename", str(root / "path.json"), "--output-path", str(root / "frames"),
        "--output-format", "images",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return [mediapy.read_image(p).astype(float) for p in sorted((root / "frames").glob("*"))]


def test_render_time_changes_the_pose(rendered):
    assert len(rendered) == 3 and rendered[0].shape[:2] == (SIZE, SIZE)
    print(f"mean |frame(t=0) - frame(t=1)| = {np.abs(rendered[0] - rendered[1]).mean():.3f}, "
          f"|frame(t=0) - frame(t=0)| = {np.abs(rendered[0] - rendered[2]).mean():.3f}")
    assert np.abs(rendered[0] - rendered[1]).mean() > 0.5  # first vs last frame of the capture


def test_same_render_time_same_image(rendered):
    assert np.abs(rendered[0] - rendered[2]).mean() < 0.1 * np.abs(rendered[0] - rendered[1]).mean()
