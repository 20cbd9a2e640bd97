"""The trainer configuration `ns-train` builds from its command line, for tests that check a flag end to end."""

from pathlib import Path


def ns_train_config(data: Path, output_dir: Path, steps: int, *flags: str):
    """The TrainerConfig `ns-train hfavatar-lite --data DATA FLAGS` builds (same entry points, same tyro CLI)."""
    import tyro
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    args = ["hfavatar-lite", "--data", str(data), "--output-dir", str(output_dir), "--vis", "tensorboard",
            "--max-num-iterations", str(steps), "--steps-per-save", str(steps), *flags]  # fmt: skip
    config = tyro.cli(AnnotatedBaseConfigUnion, args=args)
    config.pipeline.datamanager.data = config.data  # what ns-train's main does with its --data alias
    return config
