"""Training rays with the lens undistortion done once per camera, not at every step.

nerfstudio's ``Cameras.generate_rays`` undistorts every batch's pixel coordinates with ten Newton
iterations: about 1,060 small ops a training step (over a quarter of all the ops an ``hfavatar-lite``
step dispatches; ``benchmarks/op_count_benchmark.py``), each a kernel launch on a GPU. The pixels of a
camera never change, so here every pixel of every distinct camera (intrinsics, size and distortion;
ZJU-MoCap's images share 23) is undistorted once, with nerfstudio's own function, and a batch looks
its coordinates up and asks for rays without distortion. The tables cost 8 bytes a pixel per distinct
camera (ZJU-MoCap at 1024x1024: ~190 MB). A ray's pixel area then comes from the undistorted
coordinates' unit offsets, not from undistorted neighbours; the model does not train on it.
Evaluation and viewer rays still come from nerfstudio's ``generate_rays``.
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from nerfstudio.cameras import camera_utils
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManager
from nerfstudio.data.datasets.base_dataset import InputDataset
from nerfstudio.model_components.ray_generators import RayGenerator


def undistorted_pixel_grid(camera: Cameras, pixel_centres: Float[Tensor, "H W 2"]) -> Float[Tensor, "H W 2"]:
    """``(y, x)`` pixel coordinates that, read without distortion, give the rays through the distorted
    pixels ``pixel_centres`` of the single camera ``camera`` (as ``generate_rays`` would undistort them)."""
    fx, fy, cx, cy = (value.reshape(()) for value in (camera.fx, camera.fy, camera.cx, camera.cy))
    normalised = torch.stack([(pixel_centres[..., 1] - cx) / fx, (pixel_centres[..., 0] - cy) / fy], dim=-1)
    flat = normalised.reshape(-1, 2)
    params = camera.distortion_params.reshape(1, -1).expand(flat.shape[0], -1)
    undistorted = camera_utils.radial_and_tangential_undistort(flat, params).reshape(normalised.shape)
    return torch.stack([cy + fy * undistorted[..., 1], cx + fx * undistorted[..., 0]], dim=-1)


class TabulatedRayGenerator(RayGenerator):
    """``RayGenerator`` whose distorted cameras read undistorted pixel coordinates from per-camera
    tables (see the module docstring). Cameras without distortion are left to nerfstudio."""

    def __init__(self, cameras: Cameras, max_table_bytes: int = 2**30) -> None:
        super().__init__(cameras)
        self.tabulated = cameras.distortion_params is not None and bool((cameras.distortion_params != 0).any())
        if not self.tabulated:
            return
        if len(cameras.shape) != 1:
            raise ValueError(f"TabulatedRayGenerator needs a flat list of cameras, got shape {tuple(cameras.shape)}")
        keys = torch.cat(
            [cameras.fx, cameras.fy, cameras.cx, cameras.cy, cameras.width.float(), cameras.height.float(),
             cameras.distortion_params], dim=-1,
        )  # fmt: skip
        distinct, table_of_camera = torch.unique(keys, dim=0, return_inverse=True)
        # Every image its own lens (e.g. per-frame calibration) would make one table per image: then
        # the per-batch undistortion is the cheaper of the two.
        if distinct.shape[0] * self.image_coords[..., 0].numel() * 8 > max_table_bytes:
            self.tabulated = False
            return
        tables = []
        for table in range(distinct.shape[0]):
            camera = int((table_of_camera == table).nonzero()[0, 0])
            # nerfstudio makes image_coords on the CPU whatever the cameras' device
            tables.append(undistorted_pixel_grid(cameras[camera : camera + 1], self.image_coords.to(keys.device)))
        self.register_buffer("pixel_tables", torch.stack(tables), persistent=False)  # [T, H, W, 2]
        self.register_buffer("table_of_camera", table_of_camera.reshape(-1), persistent=False)

    def forward(self, ray_indices: Int[Tensor, "num_rays 3"]) -> RayBundle:
        if not self.tabulated:
            return super().forward(ray_indices)
        camera, row, column = ray_indices.unbind(-1)
        coords = self.pixel_tables[self.table_of_camera[camera], row, column]
        return self.cameras.generate_rays(camera_indices=camera.unsqueeze(-1), coords=coords, disable_distortion=True)


class AvatarDataManager(VanillaDataManager[InputDataset]):
    """nerfstudio's ``VanillaDataManager`` with :class:`TabulatedRayGenerator` for training rays."""

    def setup_train(self) -> None:
        super().setup_train()
        self.train_ray_generator = TabulatedRayGenerator(self.train_dataset.cameras.to(self.device))
