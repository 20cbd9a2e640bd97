"""Pixel sampling for avatars: most rays on and around the person, the rest anywhere.

nerfstudio's sampler either samples only inside the mask (then nothing teaches the model where the
person ends) or ignores it (then most rays land on empty background, which the inner sampler skips
anyway). We take a fixed share from a band around the person (the mask dilated by a few pixels) and
the rest uniformly, and keep the mask per ray as the target of the mask loss.

Why the band and not the mask itself: drawn from the mask, foreground pixels are sampled ~25 times
more often than the background right beside them (the person covers ~10% of our synthetic images),
so wherever the silhouette is uncertain (a blurry surface, a pixel the surface half covers) the
losses side with the foreground and the avatar grows fat. Inside the band, both sides of the outline
are sampled equally often.

The band's pixels are drawn by index from a list made once per set of masks, not by nerfstudio's
rejection sampling: that loop reads a count back every round (~30 host-device syncs a step on a GPU).

Real masks' outlines are a few pixels off (CIHP's, a matting network's). With ``mask_outline_px`` the
sampler also hands each ray a ``mask_outline`` flag: the pixel lies within that many pixels of its mask's
outline, where the label is a guess; the model leaves such rays out of its image losses, as the
NeuralBody-style ZJU-MoCap pipelines mark the mask border "ignore". Geometry there is then set by the
views in which that surface is not at the outline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Type, Union

import numpy as np
import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nerfstudio.data.pixel_samplers import PixelSampler, PixelSamplerConfig


def dilate_masks(masks: Float[Tensor, "N H W 1"], radius: int) -> Bool[Tensor, "N H W 1"]:
    """Foreground masks grown by ``radius`` pixels (a square neighbourhood; pixels past the border count
    as background), on the masks' device.

    OpenCV's dilation rather than torch's max pooling: nerfstudio keeps the cached masks on the CPU, even
    when training on a GPU, and there max pooling costs in proportion to the radius. A ZJU-sized reload
    (64 masks of 1024^2, radius 31) took ~14 s on 2 cores that way and takes 0.08 s with OpenCV, whose cost
    does not grow with the radius."""
    import cv2

    foreground = masks[..., 0] > 0.5
    if radius <= 0:
        return foreground[..., None]
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * radius + 1, 2 * radius + 1))
    planes = foreground.cpu().numpy().astype(np.uint8)
    grown = np.stack([cv2.dilate(plane, kernel) for plane in planes]) if len(planes) else planes
    return torch.from_numpy(grown).to(masks.device).bool()[..., None]


def mask_outlines(masks: Float[Tensor, "N H W 1"], radius: int) -> Bool[Tensor, "N H W 1"]:
    """Pixels within ``radius`` pixels (square neighbourhood) of a change of label: foreground pixels
    with background that near, and background pixels with foreground that near. ``radius`` 0: none."""
    if radius <= 0:
        return torch.zeros(masks.shape, dtype=torch.bool, device=masks.device)
    grown = dilate_masks(masks, radius)
    background = (masks[..., :1] <= 0.5).float()  # masks come as floats or (from nerfstudio) as bools
    shrunk = ~dilate_masks(background, radius)  # eroding the foreground = dilating the background
    return grown & ~shrunk


def flat_pixel_indices(pixels: Bool[Tensor, "N H W 1"]) -> Int[Tensor, "K"]:
    """Row-major indices into ``N * H * W`` of the true pixels (int32 when they fit, to halve the
    memory a band of many large images takes)."""
    indices = pixels.reshape(-1).nonzero().reshape(-1)
    return indices.int() if pixels.numel() < 2**31 else indices


def unflatten_pixel_indices(flat: Int[Tensor, "K"], image_height: int, image_width: int) -> Int[Tensor, "K 3"]:
    """``(image, row, column)`` of row-major flat pixel indices."""
    flat = flat.long()
    pixels_per_image = image_height * image_width
    return torch.stack([flat // pixels_per_image, (flat // image_width) % image_height, flat % image_width], dim=-1)


@dataclass
class ForegroundPixelSamplerConfig(PixelSamplerConfig):
    _target: Type = field(default_factory=lambda: ForegroundPixelSampler)
    foreground_fraction: float = 0.7
    """Share of each batch drawn from the band around the person (the dilated mask)."""
    band_width: float = 0.03
    """How far the band reaches beyond the mask, as a fraction of the image's longer side (0: the mask)."""
    mask_outline_px: int = 0
    """Rays within this many pixels of their mask's outline are flagged ``mask_outline`` and left out of
    the image losses (masks from a segmentation network are that far off). 0: every label is used."""


class ForegroundPixelSampler(PixelSampler):
    config: ForegroundPixelSamplerConfig

    def __init__(self, config: ForegroundPixelSamplerConfig, **kwargs) -> None:
        super().__init__(config, **kwargs)
        self._band_source: Optional[Tensor] = None
        self._band: Optional[Tensor] = None
        self._band_pixels: Optional[Tensor] = None
        self._outline_source: Optional[Tensor] = None
        self._outline: Optional[Tensor] = None

    def band(self, mask: Tensor) -> Tensor:
        """The dilated mask, kept while nerfstudio hands the same mask tensor to every step (until it
        reloads images). Compared by identity: holding the source keeps its memory from being reused."""
        if mask is not self._band_source:
            radius = int(round(self.config.band_width * max(mask.shape[1], mask.shape[2])))
            self._band_source, self._band = mask, dilate_masks(mask, radius)
            self._band_pixels = flat_pixel_indices(self._band)
        return self._band

    def outline(self, mask: Tensor) -> Bool[Tensor, "N H W 1"]:
        """:func:`mask_outlines` of the cached masks, made once per set of masks like the band."""
        if mask is not self._outline_source:
            self._outline_source, self._outline = mask, mask_outlines(mask, self.config.mask_outline_px)
        return self._outline

    def collate_image_dataset_batch(self, batch: Dict, num_rays_per_batch: int, keep_full_image: bool = False):
        if self.config.mask_outline_px > 0 and batch.get("mask") is not None:
            batch = {**batch, "mask_outline": self.outline(batch["mask"])}  # collated per ray with the rest
        return super().collate_image_dataset_batch(batch, num_rays_per_batch, keep_full_image)

    def band_pixels(self, mask: Tensor) -> Int[Tensor, "K"]:
        """Flat indices of the band's pixels (see :func:`flat_pixel_indices`), made with the band."""
        self.band(mask)
        return self._band_pixels

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
        num_band = int(round(batch_size * self.config.foreground_fraction))
        band_pixels = self.band_pixels(mask)
        if band_pixels.numel() == 0:  # no person in any cached image: nothing to draw around
            return super().sample_method(batch_size, num_images, image_height, image_width, None, device)
        choice = torch.randint(band_pixels.numel(), (num_band,), device=band_pixels.device)
        band = unflatten_pixel_indices(band_pixels[choice], image_height, image_width).to(device)
        anywhere = super().sample_method(batch_size - num_band, num_images, image_height, image_width, None, device)
        return torch.cat([band, anywhere], dim=0)
