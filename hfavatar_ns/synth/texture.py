"""Procedural albedo evaluated at canonical positions (so the texture moves with the subject).

The renderer calls :func:`albedo` with the canonical position of every ray hit (interpolated with
the hit's barycentrics), so detail is as fine as the texture functions, not the mesh: stripes and
woven noise on the top, a tartan on the skirt, denim, skin with fine mottling, hair strands, shoes
with white soles.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float, Int

from hfavatar_ns.synth.garment import HAIR, SHOES, SHORTS, SKIN, SKIRT, TOP

Array = np.ndarray

_TOP_COLOURS = np.array([[0.10, 0.22, 0.52], [0.55, 0.10, 0.12], [0.10, 0.40, 0.25], [0.30, 0.20, 0.45]])
_PLAID_COLOURS = np.array([[0.62, 0.08, 0.10], [0.10, 0.18, 0.45], [0.12, 0.35, 0.18], [0.55, 0.40, 0.12]])


@dataclass
class TextureParams:
    """Everything the texture depends on besides the point and its material."""

    seed: int = 0
    skirt_axis: Float[Array, "2"] = field(default_factory=lambda: np.zeros(2))
    """(x, z) of the skirt's vertical axis in canonical space (the tartan wraps around it)."""
    sole_height: float = -1.0
    """Canonical height below which shoes are sole."""
    sleeve_x: float = 0.15
    """Canonical |x| beyond which the top is a sleeve (stripes run around the arm there)."""

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.seed, 3])
        self.top_colour = _TOP_COLOURS[rng.integers(len(_TOP_COLOURS))]
        self.plaid_colour = _PLAID_COLOURS[rng.integers(len(_PLAID_COLOURS))]
        self.skin_colour = np.array([0.86, 0.66, 0.54]) * rng.uniform(0.8, 1.05)
        self.stripe_period = rng.uniform(0.025, 0.04)
        self.plaid_period = rng.uniform(0.05, 0.08)


def _hash(ix: Array, iy: Array, iz: Array, seed: int) -> Array:
    """Deterministic pseudo-random value in [0, 1) per integer lattice point."""
    h = ix.astype(np.uint64) * np.uint64(0x9E3779B1) ^ iy.astype(np.uint64) * np.uint64(0x85EBCA77)
    h ^= iz.astype(np.uint64) * np.uint64(0xC2B2AE3D) ^ np.uint64(seed * 0x27D4EB2F + 0x165667B1)
    h ^= h >> np.uint64(15)
    h *= np.uint64(0x2C1B3C6D)
    h ^= h >> np.uint64(12)
    h *= np.uint64(0x297A2D39)
    h ^= h >> np.uint64(15)
    return (h & np.uint64(0xFFFFFF)).astype(np.float64) / float(0x1000000)


def value_noise(points: Float[Array, "N 3"], scale: float | Array, seed: int) -> Float[Array, "N"]:
    """Smooth 3D value noise in [0, 1] with feature size ``scale`` metres (per axis if an array)."""
    p = points / scale
    cell = np.floor(p)
    frac = p - cell
    w = frac * frac * (3 - 2 * frac)
    cell = cell.astype(np.int64)
    total = np.zeros(len(points))
    for dx in (0, 1):
        for dy in (0, 1):
            for dz in (0, 1):
                corner = _hash(cell[:, 0] + dx, cell[:, 1] + dy, cell[:, 2] + dz, seed)
                weight = (w[:, 0] if dx else 1 - w[:, 0]) * (w[:, 1] if dy else 1 - w[:, 1]) * (w[:, 2] if dz else 1 - w[:, 2])
                total += weight * corner
    return total


def _band(coordinate: Array, period: float, width: float) -> Array:
    """1 inside a band of relative ``width`` repeating every ``period``, 0 outside (hard edges)."""
    return (np.mod(coordinate / period, 1.0) < width).astype(np.float64)


def albedo(
    points: Float[Array, "N 3"], material: Int[Array, "N"], params: TextureParams
) -> Float[Array, "N 3"]:
    """Diffuse colour in [0, 1] at canonical ``points`` of the given materials."""
    seed = params.seed
    colour = np.zeros((len(points), 3))
    fine = value_noise(points, 0.003, seed)  # weave / pores, a few millimetres
    medium = value_noise(points, 0.02, seed + 1)

    m = material == SKIN
    if m.any():
        mottle = 0.92 + 0.08 * medium[m] + 0.05 * (fine[m] - 0.5)
        colour[m] = params.skin_colour * mottle[:, None]

    m = material == HAIR
    if m.any():
        strands = value_noise(points[m], np.array([0.0025, 0.04, 0.0025]), seed + 2)
        colour[m] = np.array([0.16, 0.10, 0.06]) * (0.55 + 0.9 * strands)[:, None]

    m = material == TOP
    if m.any():
        x = np.abs(points[m, 0])
        across = np.where(x > params.sleeve_x, x - params.sleeve_x, points[m, 1])  # sleeves: around the arm
        y = across + 0.004 * np.sin((points[m, 0] + points[m, 2]) * 40.0)
        stripe = _band(y, params.stripe_period, 0.45)
        pin = _band(y + 0.7 * params.stripe_period, params.stripe_period, 0.08)
        base = (1 - stripe)[:, None] * np.array([0.88, 0.87, 0.82]) + stripe[:, None] * params.top_colour
        base = (1 - pin)[:, None] * base + pin[:, None] * np.array([0.85, 0.65, 0.15])
        colour[m] = base * (0.85 + 0.25 * fine[m])[:, None]

    m = material == SHORTS
    if m.any():
        twill = value_noise(points[m] @ np.array([[1, 0, 0], [1, 1, 0], [0, 0, 1.0]]).T, 0.002, seed + 3)
        colour[m] = np.array([0.14, 0.19, 0.32]) * (0.7 + 0.6 * twill)[:, None]

    m = material == SKIRT
    if m.any():
        rel = points[m][:, [0, 2]] - params.skirt_axis
        u = np.arctan2(rel[:, 1], rel[:, 0]) * 0.2  # arc length on a 20 cm radius
        v = points[m, 1]
        period = params.plaid_period
        band_u, band_v = _band(u, period, 0.35), _band(v, period, 0.35)
        line_u, line_v = _band(u + 0.6 * period, period, 0.06), _band(v + 0.6 * period, period, 0.06)
        dark = 0.5 * (band_u + band_v)
        base = params.plaid_colour[None] * (1 - 0.55 * dark)[:, None]
        line = np.clip(line_u + line_v, 0, 1)[:, None]
        base = (1 - line) * base + line * np.array([0.92, 0.88, 0.75])
        colour[m] = base * (0.88 + 0.2 * fine[m])[:, None]

    m = material == SHOES
    if m.any():
        sole = (points[m, 1] < params.sole_height)[:, None]
        colour[m] = np.where(sole, np.array([0.9, 0.9, 0.88]), np.array([0.08, 0.08, 0.09])) * (0.9 + 0.2 * fine[m])[:, None]
    return np.clip(colour, 0.0, 1.0)
