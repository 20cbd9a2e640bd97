"""``hfavatar-synth OUTPUT_DIR --preset tiny|default|zju``: write a synthetic capture (raw ZJU-MoCap layout)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import tyro

from hfavatar_ns.errors import exit_on_input_error
from hfavatar_ns.synth.config import SynthConfig


@dataclass
class SynthCommand:
    """Make a synthetic multi-view capture with ground-truth geometry, in the raw ZJU-MoCap layout.

    Presets: tiny (4 cameras, 6 frames, 96 px; for tests), default (8 cameras, 30 frames, 256 px;
    the demo), zju (23 cameras, 300 frames, 1024 px). Options below override the preset.
    """

    output_dir: tyro.conf.Positional[Path]
    """Folder to write (must be empty or new unless --overwrite)."""
    preset: Literal["tiny", "default", "zju"] = "default"
    cameras: Optional[int] = None
    """Number of cameras (preset value if not given)."""
    frames: Optional[int] = None
    """Number of frames (preset value if not given)."""
    resolution: Optional[int] = None
    """Square image size in pixels (preset value if not given)."""
    seed: Optional[int] = None
    """Random seed (preset value, 0, if not given)."""
    body_model: Literal["free", "smpl"] = "free"
    """Body model driving the subject: the licence-free model, or SMPL from --body-model-dir."""
    body_model_dir: Optional[Path] = None
    """Folder with SMPL model files (only with --body-model smpl)."""
    gender: Literal["neutral", "male", "female"] = "neutral"
    """SMPL gender (ignored by the free model)."""
    overwrite: bool = False
    """Write into a non-empty output folder."""
    workers: int = 1
    """Processes rendering frames in parallel (the zju preset takes over an hour in one process)."""

    def config(self) -> SynthConfig:
        return SynthConfig.from_preset(
            self.preset,
            num_cameras=self.cameras,
            num_frames=self.frames,
            resolution=self.resolution,
            seed=self.seed,
            body_model=self.body_model,
            body_model_dir=self.body_model_dir,
            gender=self.gender,
        )


@exit_on_input_error
def main(argv: Optional[list] = None) -> None:
    """Console entry point ``hfavatar-synth``."""
    command = tyro.cli(SynthCommand, args=argv)
    from hfavatar_ns.synth.writer import generate_capture

    config = command.config()
    started = time.perf_counter()
    output = generate_capture(command.output_dir, config, overwrite=command.overwrite, workers=command.workers)
    seconds = time.perf_counter() - started
    print(
        f"Wrote {config.num_cameras} cameras x {config.num_frames} frames at {config.resolution}x{config.resolution} "
        f"to {output} in {seconds:.1f} s."
    )


if __name__ == "__main__":
    main()
