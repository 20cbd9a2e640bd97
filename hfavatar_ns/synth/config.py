"""What a synthetic capture holds: :class:`SynthConfig` and its presets (the only place defaults live)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Literal, Optional

PresetName = Literal["tiny", "default", "zju"]


@dataclass
class SynthConfig:
    """A synthetic capture: subject, motion, cameras and output options. Deterministic for ``seed``."""

    preset: str = "default"
    """Name of the preset these values came from (recorded in ``body_model.json``)."""
    num_cameras: int = 8
    """Cameras in the ring (``Camera_B1`` ... ``Camera_B{n}``)."""
    num_frames: int = 30
    """Frames written (``000000.jpg`` ...)."""
    resolution: int = 256
    """Square image size in pixels (ZJU-MoCap images are 1024x1024)."""
    frame_step: int = 2
    """Motion time steps between written frames (motion runs at 30 steps per second)."""
    seed: int = 0
    """Seed for every random choice: camera jitter, distortion, motion variation, texture, wrinkles."""
    body_model: Literal["free", "smpl"] = "free"
    """Body model that drives the subject and writes ``new_vertices``."""
    body_model_dir: Optional[Path] = None
    """Folder with the SMPL model files (only for ``body_model="smpl"``)."""
    gender: str = "neutral"
    """Body model gender (SMPL only)."""
    camera_distance: float = 3.6
    """Distance of the cameras from the ring's axis, metres."""
    camera_elevation: float = 0.45
    """Height of the cameras above the subject's centre, metres."""
    max_distortion: float = 0.02
    """Largest radial coefficient ``|k1|`` (``k2`` is a fifth of it, ``p1``/``p2`` ~1e-4)."""
    frame_margin: float = 0.08
    """Fraction of the half image kept free around the subject when the focal length is fitted."""
    gait_period: float = 30.0
    """Motion steps per walking cycle (two steps)."""
    turn_period: float = 240.0
    """Motion steps per full turn along the circular path."""
    path_radius: float = 0.3
    """Radius of the circle the subject walks along, metres."""
    jpeg_quality: int = 95
    """JPEG quality of the images."""
    write_posed_meshes: bool = True
    """Write ``ground_truth/posed/{i:06d}.ply`` for every frame."""

    @staticmethod
    def from_preset(name: str, **overrides) -> "SynthConfig":
        """The preset ``name`` with some fields replaced (``None`` values are ignored)."""
        if name not in PRESETS:
            raise ValueError(f"Unknown synth preset {name!r}; choose one of {', '.join(PRESETS)}.")
        overrides = {key: value for key, value in overrides.items() if value is not None}
        return dataclasses.replace(PRESETS[name], **overrides)


PRESETS: Dict[str, SynthConfig] = {
    # Unit tests: seconds to make.
    # Tests: 3 training cameras 60 degrees apart and 3 held-out ones between them.
    "tiny": SynthConfig(preset="tiny", num_cameras=6, num_frames=6, resolution=96, frame_step=5),
    # The demo: trains on 2 CPU cores in minutes; 60 motion steps = two walking cycles and a 90 degree turn.
    "default": SynthConfig(preset="default", num_cameras=8, num_frames=30, resolution=256, frame_step=2),
    # ZJU-MoCap sized: 23 cameras, 300 frames, 1024x1024.
    "zju": SynthConfig(preset="zju", num_cameras=23, num_frames=300, resolution=1024, frame_step=1),
}
