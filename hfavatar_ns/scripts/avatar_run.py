"""Load a trained hfavatar run (model + its configuration) for the command-line tools."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hfavatar_ns.errors import InputError


@dataclass
class LoadedAvatar:
    """A trained avatar and the run configuration it came from."""

    model: "object"
    config: "object"
    pipeline: "object" = None
    """The nerfstudio pipeline."""

    @property
    def capture_root(self) -> Path:
        return Path(self.config.pipeline.datamanager.dataparser.data)


def load_avatar_run(config_path: Path) -> LoadedAvatar:
    """The trained model (eval mode) and its TrainerConfig, from a run's config.yml."""
    from nerfstudio.utils.eval_utils import eval_setup

    from hfavatar_ns.checkpoints import allow_nerfstudio_checkpoints

    if not Path(config_path).is_file():
        raise InputError(f"No config at {config_path}: pass the config.yml of an hfavatar run (outputs/.../config.yml).")
    allow_nerfstudio_checkpoints()
    config, pipeline, _, _ = eval_setup(Path(config_path), test_mode="inference")
    model = pipeline.model
    if not hasattr(model, "animate"):
        raise InputError(f"{config_path} is not an hfavatar run (its model is {type(model).__name__}).")
    model.eval()
    return LoadedAvatar(model=model, config=config, pipeline=pipeline)
