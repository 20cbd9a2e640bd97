"""Training rays from per-camera undistortion tables match nerfstudio's, in far fewer ops."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.model_components.ray_generators import RayGenerator

from hfavatar_ns.data.ray_generator import TabulatedRayGenerator


def cameras_with_distortion(distorted: bool) -> Cameras:
    """Four 40x30 cameras; cameras 0 and 2 are the same lens (one table between them)."""
    torch.manual_seed(0)
    poses = torch.eye(4)[None, :3].repeat(4, 1, 1)
    poses[:, :3, 3] = torch.randn(4, 3)
    distortion = torch.zeros(4, 6)
    if distorted:
        distortion[:, 0] = torch.tensor([0.05, -0.03, 0.05, 0.02])  # k1
        distortion[:, 1] = 0.01  # k2
        distortion[:, 4] = torch.tensor([1e-3, 0.0, 1e-3, -1e-3])  # p1
    return Cameras(
        camera_to_worlds=poses, fx=torch.tensor([50.0, 55.0, 50.0, 45.0])[:, None], fy=torch.full((4, 1), 52.0),
        cx=torch.full((4, 1), 20.0), cy=torch.full((4, 1), 15.0), width=40, height=30,
        distortion_params=distortion, camera_type=CameraType.PERSPECTIVE,
    )  # fmt: skip


def random_pixels(count: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return torch.stack(
        [torch.randint(0, 4, (count,), generator=generator), torch.randint(0, 30, (count,), generator=generator),
         torch.randint(0, 40, (count,), generator=generator)], dim=-1,
    )  # fmt: skip


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_same_rays_as_nerfstudio_for_distorted_cameras(device):
    cameras = cameras_with_distortion(True).to(device)
    ours = TabulatedRayGenerator(cameras)
    assert ours.tabulated and ours.pixel_tables.shape == (3, 30, 40, 2)  # cameras 0 and 2 share a table
    assert ours.pixel_tables.device.type == device  # made on the cameras' device
    pixels = random_pixels(500).to(device)
    # nerfstudio's generator keeps its pixel grid on the CPU until moved, as a datamanager's .to(device) does
    theirs, mine = RayGenerator(cameras).to(device)(pixels), ours.to(device)(pixels)
    assert torch.allclose(mine.origins, theirs.origins)
    assert torch.allclose(mine.directions, theirs.directions, atol=1e-5)
    assert torch.equal(mine.camera_indices, theirs.camera_indices)
    # the lens matters: without it the rays differ
    assert (RayGenerator(cameras_with_distortion(False).to(device)).to(device)(pixels).directions - theirs.directions).abs().max() > 1e-3


def test_cameras_without_distortion_are_left_to_nerfstudio():
    cameras = cameras_with_distortion(False)
    ours = TabulatedRayGenerator(cameras)
    assert not ours.tabulated
    pixels = random_pixels(100)
    assert torch.equal(ours(pixels).directions, RayGenerator(cameras)(pixels).directions)


def test_far_fewer_ops_per_batch():
    class OpCount(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            type(self).count += 1
            return func(*args, **(kwargs or {}))

    cameras = cameras_with_distortion(True)
    theirs, ours = RayGenerator(cameras), TabulatedRayGenerator(cameras)
    pixels = random_pixels(64)
    counts = []
    for generator in (theirs, ours):
        OpCount.count = 0
        with OpCount():
            generator(pixels)
        counts.append(OpCount.count)
    assert counts[1] < counts[0] / 2, counts


def test_too_many_distinct_lenses_fall_back_to_nerfstudio():
    cameras = cameras_with_distortion(True)  # 3 distinct lenses of 40x30 pixels: 28,800 bytes of tables
    assert not TabulatedRayGenerator(cameras, max_table_bytes=20_000).tabulated
    assert TabulatedRayGenerator(cameras, max_table_bytes=30_000).tabulated
