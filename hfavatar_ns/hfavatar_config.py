"""The `hfavatar` and `hfavatar-lite` methods (nerfstudio entry points)."""

from __future__ import annotations

from typing import Optional

from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.engine.trainer import TrainerConfig
from nerfstudio.pipelines.base_pipeline import VanillaPipelineConfig
from nerfstudio.plugins.types import MethodSpecification

from dataparsers.zju_mocap.zju_dataparser import ZJUMocapDataParserConfig
from hfavatar_ns.checkpoints import allow_nerfstudio_checkpoints
from hfavatar_ns.data.pixel_sampler import ForegroundPixelSamplerConfig
from hfavatar_ns.data.ray_generator import AvatarDataManager
from hfavatar_ns.deformation.backward import BackwardDeformationConfig
from hfavatar_ns.fields.avatar_field import AvatarFieldConfig
from hfavatar_ns.model_components.inner_sampler import InnerSamplerConfig
from hfavatar_ns.models.hfavatar_model import HFAvatarModelConfig

allow_nerfstudio_checkpoints()


def _optimizers(learning_rate: float, max_steps: int, body_learning_rate: float = 1e-3) -> dict:
    def group(lr: float) -> dict:
        return {
            "optimizer": AdamOptimizerConfig(lr=lr, eps=1e-15),
            "scheduler": ExponentialDecaySchedulerConfig(lr_final=lr * 0.1, max_steps=max_steps),
        }

    # "body": the per-frame corrections of pose refinement (radians, metres), used when it is on.
    return {"fields": group(learning_rate), "deformation": group(learning_rate), "body": group(body_learning_rate)}


def hfavatar_trainer(lite: bool, max_steps: Optional[int] = None) -> TrainerConfig:
    """Full-quality defaults for one GPU, or the lite preset that trains on 2 CPU cores in minutes;
    ``max_steps`` also sets the learning-rate schedule's length."""
    if max_steps is None:
        # lite: 800 steps train the default capture in 7-12 minutes on 2 CPU cores (docs/results.md).
        max_steps = 800 if lite else 30000
    rays = 1024 if lite else 4096
    return TrainerConfig(
        method_name="hfavatar-lite" if lite else "hfavatar",
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_eval_all_images=1_000_000,
        steps_per_save=500 if lite else 2000,
        max_num_iterations=max_steps,
        mixed_precision=False,
        machine=MachineConfig(device_type="cpu") if lite else MachineConfig(),
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                _target=AvatarDataManager,
                dataparser=ZJUMocapDataParserConfig(),
                train_num_rays_per_batch=rays,
                eval_num_rays_per_batch=rays,
                # Caching every ZJU image at 1024^2 would need tens of GB: rotate through a subset.
                train_num_images_to_sample_from=-1 if lite else 64,
                train_num_times_to_repeat_images=-1 if lite else 200,
                pixel_sampler=ForegroundPixelSamplerConfig(),
            ),
            model=HFAvatarModelConfig(
                eval_num_rays_per_chunk=2048 if lite else 8192,
                sdf_field=AvatarFieldConfig(
                    implementation="torch" if lite else "tcnn",
                    # On a CPU the torch hash grid's cost grows with its table (backward zero-fills it);
                    # 2^16 entries per level kept the geometry cleaner than 2^15 with 8 levels.
                    log2_hashmap_size=16 if lite else 19,
                    max_resolution=256 if lite else 2048,
                    hidden_dim=32 if lite else 64,
                    # Few views and frames: view- and pose-dependent colour would only overfit.
                    sh_levels=0 if lite else 2,
                    color_grid_features=True,
                    # In 800 steps the learned sharpness cannot climb far from where it starts; starting at
                    # std 8 mm rather than 16 leaves smoother surfaces (docs/results.md, "Fine geometry").
                    init_inv_s=128.0 if lite else 64.0,
                ),
                sampler=InnerSamplerConfig(num_samples=32 if lite else 64),
                deformation=BackwardDeformationConfig(),
                # 7.6 mm nodes on every axis, read as a C2 spline: meshed at 256^3 the prior alone is as
                # close to the body as its exact distances are (docs/results.md, "Fine geometry").
                prior_sdf_resolution=256,
                prior_sdf_isotropic=True,
                cos_anneal_end=500 if lite else 5000,
                # The residual's cost saturates past 5 mm, so it can weigh 10x the full preset's: drifts of a
                # few millimetres that 256 px images cannot see are pulled back, clothing is not held back.
                residual_loss_mult=0.5 if lite else 0.05,
                residual_loss_saturation=0.005 if lite else 0.0,
            ),
        ),
        optimizers=_optimizers(5e-3 if lite else 1e-3, max_steps),
        viewer=ViewerConfig(num_rays_per_chunk=4096, default_composite_depth=False),
        vis="viewer",
    )


hfavatar_method = MethodSpecification(
    config=hfavatar_trainer(lite=False),
    description="HF-Avatar: body-prior SDF + hash-grid residual, inner sampling, iterative backward deformation.",
)
hfavatar_lite_method = MethodSpecification(
    config=hfavatar_trainer(lite=True),
    description="HF-Avatar sized for CPU: trains the default synthetic capture on 2 cores in minutes.",
)
