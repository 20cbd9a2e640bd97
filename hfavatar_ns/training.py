"""Train an avatar from Python (tests, benchmarks, notebooks): the same trainer `ns-train` runs."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from nerfstudio.engine.trainer import Trainer, TrainerConfig

from hfavatar_ns.hfavatar_config import hfavatar_trainer


def lite_config(
    data: Path, output_dir: Path, max_steps: int, seed: int = 42, experiment_name: Optional[str] = None
) -> TrainerConfig:
    """The ``hfavatar-lite`` method on ``data``, without viewer or logging, for ``max_steps`` steps."""
    return method_config(True, data, output_dir, max_steps, seed, experiment_name)


def method_config(
    lite: bool,
    data: Path,
    output_dir: Path,
    max_steps: int,
    seed: int = 42,
    experiment_name: Optional[str] = None,
    device: Optional[str] = None,
) -> TrainerConfig:
    """``hfavatar-lite`` (``lite``) or ``hfavatar`` on ``data`` for ``max_steps`` steps, without viewer;
    ``device`` ("cpu"/"cuda") overrides the method's own choice."""
    config = hfavatar_trainer(lite=lite, max_steps=max_steps)
    if device is not None:
        config.machine.device_type = device
    config.pipeline.datamanager.data = Path(data)
    config.pipeline.datamanager.dataparser.data = Path(data)
    config.output_dir = Path(output_dir)
    config.experiment_name = experiment_name or Path(data).name
    config.timestamp = "run"
    config.max_num_iterations = max_steps
    config.steps_per_save = max_steps
    config.save_only_latest_checkpoint = True
    config.vis = "tensorboard"
    config.machine.seed = seed
    # Training-time evaluation only costs time here; callers evaluate what they need.
    config.steps_per_eval_batch = config.steps_per_eval_image = max_steps + 1
    config.steps_per_eval_all_images = max_steps + 1
    return config


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's generators (``ns-train`` does this in its launcher, which
    code that sets up a trainer itself bypasses)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_up_trainer(config: TrainerConfig) -> Trainer:
    """The trainer of ``config``, set up in this process the way ``ns-train`` does on one device,
    seeded with ``config.machine.seed`` first: the same config trains the same avatar on a CPU."""
    seed_everything(config.machine.seed)
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    return trainer


def train(config: TrainerConfig) -> Trainer:
    """Set up and run the trainer in this process; returns it (``trainer.pipeline.model`` is the avatar)."""
    config.set_timestamp()
    config.save_config()
    trainer = set_up_trainer(config)
    trainer.train()
    return trainer
