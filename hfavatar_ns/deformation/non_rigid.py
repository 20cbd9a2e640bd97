"""The pose-conditioned non-rigid offset that corrects what skinning cannot (cloth, soft tissue).

``x_c <- x_c + offset(x_c, theta)`` for a canonical point ``x_c`` and the frame's 69-d body pose
``theta`` (the pose vector without the root orientation). The offset MLP reads a positional encoding of
``x_c`` whose frequencies are switched on progressively (coarse to fine, BARF-style), so it first
learns smooth corrections; it is off entirely before ``kick_in_step`` and its last layer starts at
zero, so the deformation starts as pure skinning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Tuple, Type

import torch
from jaxtyping import Float
from nerfstudio.configs.base_config import InstantiateConfig
from nerfstudio.field_components.mlp import MLP
from torch import Tensor, nn

POSE_DIM = 69
"""Body pose without the root orientation: 23 joints x 3 axis-angle values."""


def coarse_to_fine_alpha(step: int, start_step: int, end_step: int, num_frequencies: int) -> float:
    """How many frequency bands are open at ``step``: 0 until ``start_step``, all by ``end_step``."""
    if end_step <= start_step:
        return float(num_frequencies) if step >= start_step else 0.0
    progress = (step - start_step) / (end_step - start_step)
    return float(num_frequencies) * min(max(progress, 0.0), 1.0)


def windowed_positional_encoding(
    points: Float[Tensor, "*bs 3"], num_frequencies: int, alpha: float
) -> Float[Tensor, "*bs out"]:
    """``[x, w_k sin(2^k pi x), w_k cos(2^k pi x)]`` for ``k < num_frequencies``.

    Band ``k`` is weighted by ``w_k = (1 - cos(pi * clamp(alpha - k, 0, 1))) / 2``: closed while
    ``alpha <= k``, fully open once ``alpha >= k + 1``, eased in between. The output has
    ``3 + 6 * num_frequencies`` channels.
    """
    bands = torch.arange(num_frequencies, device=points.device, dtype=points.dtype)
    scaled = points[..., None, :] * (math.pi * 2.0**bands)[:, None]  # [*bs, L, 3]
    window = 0.5 * (1.0 - torch.cos(math.pi * (alpha - bands).clamp(0.0, 1.0)))[:, None]
    encoded = torch.cat([window * torch.sin(scaled), window * torch.cos(scaled)], dim=-1)
    return torch.cat([points, encoded.flatten(-2)], dim=-1)


@dataclass
class NonRigidOffsetConfig(InstantiateConfig):
    """Configuration of :class:`NonRigidOffset`."""

    _target: Type = field(default_factory=lambda: NonRigidOffset)
    num_frequencies: int = 6
    """Positional-encoding frequency bands of the canonical point."""
    num_layers: int = 6
    layer_width: int = 128
    skip_connections: Tuple[int, ...] = (4,)
    """Layers that re-read the input (nerfstudio MLP convention)."""
    enabled: bool = True
    """False: no non-rigid offset at all (skinning alone explains the motion; the ablation of this part)."""
    kick_in_step: int = 10_000
    """Training step from which the offset is applied; before it the offset is zero and costs nothing."""
    coarse_to_fine_start_step: int = 10_000
    """Step at which the first frequency band starts to open."""
    coarse_to_fine_end_step: int = 50_000
    """Step by which all frequency bands are open."""


class NonRigidOffset(nn.Module):
    """Pose-conditioned offset of canonical points; zero before kick-in and at initialisation.

    Call :meth:`set_progress` with the training step (a nerfstudio training callback); the step is
    kept in a buffer so a loaded checkpoint renders with the schedule it was trained to.
    """

    def __init__(self, config: NonRigidOffsetConfig, pose_dim: int = POSE_DIM) -> None:
        super().__init__()
        self.config = config
        self.pose_dim = pose_dim
        in_dim = 3 + 6 * config.num_frequencies + pose_dim
        self.mlp = MLP(
            in_dim=in_dim,
            num_layers=config.num_layers,
            layer_width=config.layer_width,
            out_dim=3,
            skip_connections=config.skip_connections or None,
            activation=nn.ReLU(),
            implementation="torch",  # the zero-initialised last layer needs torch layers
        )
        last = self.mlp.layers[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._step = 0  # host copy of ``step``: no device sync per forward
        self.register_load_state_dict_post_hook(lambda module, _keys: module._sync_step())

    def _sync_step(self) -> None:
        self._step = int(self.step)

    def set_progress(self, step: int) -> None:
        """Tell the module the current training step (kick-in and coarse-to-fine schedule)."""
        self._step = int(step)
        self.step.fill_(self._step)

    @property
    def active(self) -> bool:
        """Whether the offset is applied at the current step."""
        return self.config.enabled and self._step >= self.config.kick_in_step

    @property
    def alpha(self) -> float:
        """Open frequency bands at the current step (see :func:`windowed_positional_encoding`)."""
        cfg = self.config
        return coarse_to_fine_alpha(
            self._step, cfg.coarse_to_fine_start_step, cfg.coarse_to_fine_end_step, cfg.num_frequencies
        )

    def forward(self, points: Float[Tensor, "N 3"], pose: Float[Tensor, "N P"]) -> Float[Tensor, "N 3"]:
        """Offsets of canonical points under per-point body poses (``P = pose_dim``, poses[3:])."""
        if not self.active:
            return points.new_zeros(points.shape)
        encoded = windowed_positional_encoding(points, self.config.num_frequencies, self.alpha)
        return self.mlp(torch.cat([encoded, pose.to(points.dtype)], dim=-1))
