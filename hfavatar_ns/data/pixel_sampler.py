"""Pixel sampling for avatars: most rays on the person, the rest anywhere.

nerfstudio's sampler either samples only inside the mask (then nothing teaches the model where the
person ends) or ignores it (then most rays land on empty background, which the inner sampler skips
anyway). We take a fixed share from the foreground and the rest uniformly, and keep the mask per ray
as the target of the mask loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Type, Union

import torch
from jaxtyping import Int
from torch import Tensor

from nerfstudio.data.pixel_samplers import PixelSampler, PixelSamplerConfig


@dataclass
class ForegroundPixelSamplerConfig(PixelSamplerConfig):
    _target: Type = field(default_factory=lambda: ForegroundPixelSampler)
    foreground_fraction: float = 0.7
    """Share of each batch drawn from foreground pixels."""


class ForegroundPixelSampler(PixelSampler):
    config: ForegroundPixelSamplerConfig

    def sample_method(
        self,
        batch_size: int,
        num_images: int,
        image_height: int,
        image_width: int,
        mask: Optional[Tensor] = None,
        device: Union[torch.device, str] = "cpu",
    ) -> Int[Tensor, "batch_size 3"]:
        if mask is None:
            return super().sample_method(batch_size, num_images, image_height, image_width, None, device)
        num_foreground = int(round(batch_size * self.config.foreground_fraction))
        foreground = super().sample_method(num_foreground, num_images, image_height, image_width, mask, device)
        anywhere = super().sample_method(batch_size - num_foreground, num_images, image_height, image_width, None, device)
        return torch.cat([foreground, anywhere], dim=0)
