"""What a synthetic capture holds: :class:`SynthConfig` and its presets (the only place defaults live)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Literal, Optional, Tuple

from hfavatar_ns.synth.capture_errors import FitErrorSpec, MaskErrorSpec

PresetName = Literal["tiny", "default", "zju", "mono", "detail"]


LightSet = Tuple[float, Tuple[Tuple[Tuple[float, float, float], float], ...]]
"""An ambient strength and the distant lights: (direction towards the light, world z-up, any length; strength)."""

LIGHTINGS: Dict[str, LightSet] = {
    "one_light": (0.45, (((0.35, -0.55, 0.75), 0.7),)),  # from above, slightly to one side
    "three_lights": (
        0.2,
        (
            ((0.35, -0.55, 0.75), 0.45),  # key: the one light's direction
            ((-0.6, 0.5, 0.35), 0.25),  # fill, from the opposite side
            ((0.2, 0.9, 0.2), 0.3),  # low and from a third side
        ),
    ),
}
"""The lights of a synthetic capture, by ``SynthConfig.lighting``."""


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
    monocular: bool = False
    """Train from one camera (``Camera_B1``); the other cameras are written for evaluation only."""
    fit_joint_noise_deg: float = 0.0
    """RMS rotation error of every body joint in the written fits (degrees); the truth is kept in ``ground_truth/fits``."""
    fit_rotation_noise_deg: float = 0.0
    """RMS error of the written global rotation ``Rh`` (degrees)."""
    fit_translation_noise_m: float = 0.0
    """RMS error of the written global translation ``Th`` (metres)."""
    fit_shape_noise: float = 0.0
    """Standard deviation of the error of each written shape coefficient (body models with a shape space)."""
    fit_noise_correlation_frames: float = 8.0
    """Frames over which fit errors drift (0: independent per frame); a quarter of their variance flickers."""
    mask_boundary_jitter_px: float = 0.0
    """RMS displacement of the written masks' outlines (pixels); true masks go to ``ground_truth/mask_cihp``."""
    mask_missing_limb_rate: float = 0.0
    """Share of written masks that miss a visible hand or foot."""
    mask_blob_rate: float = 0.0
    """Share of written masks with a blob of background labelled as the person, at its outline."""
    outfit: Literal["clothed", "bare"] = "clothed"
    """clothed: cloth thickness, wrinkles, hair, shoes and a flared skirt, none of which the body model has;
    bare: the body model's own surface (textured as if clothed), so the body prior is exact."""
    lighting: Literal["one_light", "three_lights"] = "one_light"
    """one_light: an ambient light and one distant light from above, slightly to one side; three_lights: a
    weaker ambient and three distant lights from three sides (a key, a fill and a third), which a shading model
    of one light can only approximate."""
    backpack: bool = False
    """A box strapped to the back (about 30 x 36 x 14 cm, rigid with the upper spine): geometry the body model
    lacks, on a body it may otherwise describe exactly (with ``outfit="bare"``)."""

    @property
    def fit_errors(self) -> FitErrorSpec:
        return FitErrorSpec(
            joint_deg=self.fit_joint_noise_deg,
            global_rotation_deg=self.fit_rotation_noise_deg,
            translation_m=self.fit_translation_noise_m,
            shape=self.fit_shape_noise,
            correlation_frames=self.fit_noise_correlation_frames,
        )

    @property
    def mask_errors(self) -> MaskErrorSpec:
        return MaskErrorSpec(
            boundary_jitter_px=self.mask_boundary_jitter_px,
            missing_limb_rate=self.mask_missing_limb_rate,
            blob_rate=self.mask_blob_rate,
        )

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
    # One camera, as a phone video: 36 training frames walk a full circle (every side faces the camera),
    # 12 more are novel poses; 4 held-out cameras around the ring score novel views.
    "mono": SynthConfig(
        preset="mono", num_cameras=5, num_frames=48, resolution=256, frame_step=4, turn_period=144.0, monocular=True
    ),
    # Folds resolvable: at 512 px the subject spans ~4 mm a pixel, so a 2-5 cm fold covers 5-12 pixels.
    "detail": SynthConfig(preset="detail", num_cameras=8, num_frames=20, resolution=512, frame_step=3),
}
