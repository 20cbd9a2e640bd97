"""The errors a real capture pipeline puts in body fits and masks, added to exact ones.

Fits: per-joint rotation error, global rotation and translation error, and a shape error, each a
mix of a slow drift (smoothed over ``correlation_frames``) and a per-frame flicker, as video fitting
pipelines produce. Masks: the boundary moved by a few pixels (smoothly along the outline), a hand or
foot missing in some images, and blobs of background labelled as the person.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Sequence

import cv2
import numpy as np
from jaxtyping import Bool, Float, Int, UInt8
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from scipy.spatial.transform import Rotation

Array = np.ndarray

LIMB_ENDS: Dict[str, Sequence[int]] = {
    "left hand": (20, 22),
    "right hand": (21, 23),
    "left foot": (7, 10),
    "right foot": (8, 11),
}
"""SMPL joints whose skinned surface a mask may miss (wrist and hand, ankle and foot)."""


@dataclass(frozen=True)
class FitErrorSpec:
    joint_deg: float = 0.0
    """RMS rotation error of each body joint (degrees)."""
    global_rotation_deg: float = 0.0
    """RMS error of the global rotation ``Rh`` (degrees)."""
    translation_m: float = 0.0
    """RMS error of the global translation ``Th`` (metres)."""
    shape: float = 0.0
    """Standard deviation of the error of each shape coefficient (one error for the whole capture)."""
    correlation_frames: float = 8.0
    """Frames over which errors drift (Gaussian smoothing width); 0: independent per frame."""
    flicker: float = 0.25
    """Share of the error variance that is independent per frame."""

    @property
    def any(self) -> bool:
        return max(self.joint_deg, self.global_rotation_deg, self.translation_m, self.shape) > 0


@dataclass(frozen=True)
class MaskErrorSpec:
    boundary_jitter_px: float = 0.0
    """RMS displacement of the mask outline (pixels), smooth along it."""
    missing_limb_rate: float = 0.0
    """Share of images whose mask misses one visible hand or foot."""
    blob_rate: float = 0.0
    """Share of images with a blob of background labelled as the person."""
    blob_radius: float = 0.04
    """Blob radius as a share of the image size."""

    @property
    def any(self) -> bool:
        return max(self.boundary_jitter_px, self.missing_limb_rate, self.blob_rate) > 0


def correlated_noise(rng: np.random.Generator, num_frames: int, dims: int, correlation_frames: float, flicker: float) -> Float[Array, "F D"]:
    """Zero-mean noise with unit variance per component: a smooth drift over ``correlation_frames`` plus a
    ``flicker`` share of independent per-frame noise."""
    white = rng.standard_normal((num_frames, dims))
    if correlation_frames <= 0:
        return white
    # Smooth a longer sequence so both ends drift like the middle, then scale the drift to unit variance.
    pad = int(np.ceil(3 * correlation_frames))
    drift = gaussian_filter1d(rng.standard_normal((num_frames + 2 * pad, dims)), correlation_frames, axis=0)[pad:-pad or None]
    drift /= np.sqrt(np.sum(_gaussian_taps(correlation_frames) ** 2))
    return np.sqrt(1.0 - flicker) * drift + np.sqrt(flicker) * white


def _gaussian_taps(sigma: float) -> Float[Array, "T"]:
    radius = int(4 * sigma + 0.5)  # scipy's truncate=4
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return taps / taps.sum()


def _perturb_rotations(rotvecs: Float[Array, "F J 3"], noise: Float[Array, "F J 3"]) -> Float[Array, "F J 3"]:
    shape = rotvecs.shape
    perturbed = Rotation.from_rotvec(noise.reshape(-1, 3)) * Rotation.from_rotvec(rotvecs.reshape(-1, 3))
    return perturbed.as_rotvec().reshape(shape)


def perturb_fits(
    poses: Float[Array, "F 72"],
    Rh: Float[Array, "F 3"],
    Th: Float[Array, "F 3"],
    shapes: Float[Array, "B"],
    spec: FitErrorSpec,
    seed: int,
) -> Dict[str, Array]:
    """Fits with the errors of ``spec`` (the root's pose entries stay zero: its rotation is ``Rh``).

    Per-axis standard deviations are the RMS figures over ``sqrt(3)``, so the RMS error angle of a joint is
    ``spec.joint_deg`` and the RMS translation error ``spec.translation_m``.
    """
    rng = np.random.default_rng([seed, 11])
    count = len(poses)

    def noise(dims: int, rms: float) -> Array:
        return correlated_noise(rng, count, dims, spec.correlation_frames, spec.flicker) * rms / np.sqrt(3.0)

    joints = poses.reshape(count, 24, 3).copy()
    joints[:, 1:] = _perturb_rotations(joints[:, 1:], noise(69, np.radians(spec.joint_deg)).reshape(count, 23, 3))
    noisy_Rh = _perturb_rotations(Rh[:, None], noise(3, np.radians(spec.global_rotation_deg))[:, None])[:, 0]
    noisy_Th = Th + noise(3, spec.translation_m)
    noisy_shapes = shapes + spec.shape * rng.standard_normal(shapes.shape)
    return {"poses": joints.reshape(count, 72), "Rh": noisy_Rh, "Th": noisy_Th, "shapes": noisy_shapes}


def corrupt_mask(
    labels: UInt8[Array, "H W"],
    limb_ends: Dict[str, Bool[Array, "H W"]],
    spec: MaskErrorSpec,
    rng: np.random.Generator,
) -> UInt8[Array, "H W"]:
    """A part-label mask with the errors of ``spec`` (0 is background).

    Args:
        labels: the exact part labels.
        limb_ends: for each of :data:`LIMB_ENDS`, the pixels where that hand or foot is seen.
        spec: which errors and how strong.
        rng: the image's own generator (same seed, same errors, whatever order images are written in).
    """
    labels = labels.copy()
    height, width = labels.shape
    if spec.missing_limb_rate > 0 and rng.random() < spec.missing_limb_rate:
        seen = [name for name, pixels in limb_ends.items() if np.count_nonzero(pixels & (labels > 0)) > 0]
        if seen:
            labels[limb_ends[seen[rng.integers(len(seen))]]] = 0
    if spec.blob_rate > 0 and rng.random() < spec.blob_rate and (labels > 0).any():
        rows, columns = np.nonzero(labels > 0)
        # Centred on a random point of the person's outline: CIHP's errors bleed from the person outwards.
        boundary = _outline(labels > 0)
        if boundary.any():
            rows, columns = np.nonzero(boundary)
        pick = rng.integers(len(rows))
        radius = max(2.0, spec.blob_radius * max(height, width))
        axes = (int(radius * rng.uniform(0.6, 1.4)), int(radius * rng.uniform(0.6, 1.4)))
        blob = np.zeros_like(labels)
        cv2.ellipse(blob, (int(columns[pick]), int(rows[pick])), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
        labels[(blob > 0) & (labels == 0)] = 2
    if spec.boundary_jitter_px > 0:
        labels = jitter_boundary(labels, spec.boundary_jitter_px, rng)
    return labels


def _outline(foreground: Bool[Array, "H W"]) -> Bool[Array, "H W"]:
    eroded = cv2.erode(foreground.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return foreground & ~eroded


def jitter_boundary(labels: UInt8[Array, "H W"], rms_px: float, rng: np.random.Generator, smoothness_px: float = 4.0) -> UInt8[Array, "H W"]:
    """Move the outline of ``labels > 0`` in and out by a smooth random amount with RMS ``rms_px``; pixels
    that join the foreground take the largest label nearby."""
    foreground = (labels > 0).astype(np.uint8)
    inside = cv2.distanceTransform(foreground, cv2.DIST_L2, 5)
    outside = cv2.distanceTransform(1 - foreground, cv2.DIST_L2, 5)
    signed = np.where(foreground > 0, inside - 0.5, 0.5 - outside)
    field = gaussian_filter(rng.standard_normal(labels.shape), smoothness_px)
    field *= rms_px / max(float(field.std()), 1e-12)
    grown = (signed + field) > 0
    reach = int(np.ceil(3 * rms_px)) * 2 + 1
    nearby = cv2.dilate(labels, np.ones((reach, reach), np.uint8))
    result = np.where(grown, np.where(labels > 0, labels, nearby), 0).astype(np.uint8)
    return result


def limb_end_pixels(face_index: Int[Array, "H W"], face_bone: Int[Array, "Fc"]) -> Dict[str, Bool[Array, "H W"]]:
    """For each limb end, the pixels whose first hit is a face skinned mostly to its joints (``-1``: no hit)."""
    bones = np.where(face_index >= 0, face_bone[np.clip(face_index, 0, None)], -1)
    return {name: np.isin(bones, joints) for name, joints in LIMB_ENDS.items()}
