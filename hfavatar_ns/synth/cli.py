"""``hfavatar-synth OUTPUT_DIR --preset tiny|default|zju|mono``: write a synthetic capture (raw ZJU-MoCap layout)."""

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

    Presets: tiny (6 cameras, 6 frames, 96 px; for tests), default (8 cameras, 30 frames, 256 px;
    the demo), zju (23 cameras, 300 frames, 1024 px), mono (one training camera and 4 held-out ones,
    48 frames of a full circle walked, 256 px). Options below override the preset.

    The --fit-* and --mask-* options write fits and masks with the errors a real pipeline makes (the
    images and the ground truth stay exact; the exact fits and masks go to ground_truth/).
    """

    output_dir: tyro.conf.Positional[Path]
    """Folder to write (must be empty or new unless --overwrite)."""
    preset: Literal["tiny", "default", "zju", "mono", "detail"] = "default"
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
    fit_joint_noise_deg: float = 0.0
    """RMS rotation error of every body joint in the written fits, degrees (EasyMocap on ZJU-MoCap: a few)."""
    fit_rotation_noise_deg: float = 0.0
    """RMS error of the written global rotation Rh, degrees."""
    fit_translation_noise_m: float = 0.0
    """RMS error of the written global translation Th, metres."""
    fit_shape_noise: float = 0.0
    """Standard deviation of each written shape coefficient's error (SMPL; the free body has no shape space)."""
    fit_noise_correlation_frames: float = 8.0
    """Frames over which fit errors drift (0: independent per frame)."""
    mask_boundary_jitter_px: float = 0.0
    """RMS displacement of the written mask outlines, pixels."""
    mask_missing_limb_rate: float = 0.0
    """Share of written masks missing a visible hand or foot."""
    mask_blob_rate: float = 0.0
    """Share of written masks with a blob of background labelled as the person."""
    outfit: Literal["clothed", "bare"] = "clothed"
    """clothed: clothing, hair, shoes and a skirt the body model lacks; bare: the body model's own surface,
    so the body prior is exact."""
    lighting: Literal["one_light", "three_lights"] = "one_light"
    """one_light: an ambient and one distant light; three_lights: a weaker ambient and lights from three sides."""
    backpack: bool = False
    """Strap a box (about 30 x 36 x 14 cm) to the subject's back: geometry no body model has."""
    video: Optional[Path] = None
    """Also write the first camera's frames as this video file (H.264 MP4), the input of hfavatar-process-video."""
    video_fps: float = 10.0

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
            fit_joint_noise_deg=self.fit_joint_noise_deg,
            fit_rotation_noise_deg=self.fit_rotation_noise_deg,
            fit_translation_noise_m=self.fit_translation_noise_m,
            fit_shape_noise=self.fit_shape_noise,
            fit_noise_correlation_frames=self.fit_noise_correlation_frames,
            mask_boundary_jitter_px=self.mask_boundary_jitter_px,
            mask_missing_limb_rate=self.mask_missing_limb_rate,
            mask_blob_rate=self.mask_blob_rate,
            outfit=self.outfit,
            backpack=self.backpack,
            lighting=self.lighting,
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
    errors = [name for name, spec in (("fits", config.fit_errors), ("masks", config.mask_errors)) if spec.any]
    print(
        f"Wrote {config.num_cameras} cameras x {config.num_frames} frames at {config.resolution}x{config.resolution} "
        f"to {output} in {seconds:.1f} s"
        + (f"; the {' and '.join(errors)} have errors (exact ones in ground_truth/)." if errors else ".")
    )
    if command.video is not None:
        from hfavatar_ns.synth.writer import write_camera_video

        write_camera_video(output, command.video, fps=command.video_fps)
        print(f"Wrote the first camera's {config.num_frames} frames to {command.video}.")


if __name__ == "__main__":
    main()
