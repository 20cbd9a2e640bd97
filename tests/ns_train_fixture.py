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


def trained_on_tiny_capture(root: Path, steps: int, *flags: str):
    """A trainer that ran ``steps`` steps of `ns-train hfavatar-lite FLAGS` on a tiny synthetic capture made
    under ``root``."""
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture
    from hfavatar_ns.training import set_up_trainer

    capture = generate_capture(root / "capture", SynthConfig.from_preset("tiny"), progress=False)
    config = ns_train_config(capture, root / "out", steps, *flags)
    config.set_timestamp()
    trainer = set_up_trainer(config)
    trainer.train()
    return trainer
