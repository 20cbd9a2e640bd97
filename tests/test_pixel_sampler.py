"""The pixel sampler draws around the person (a band past the mask's outline) and anywhere."""

import torch

from hfavatar_ns.data.pixel_sampler import ForegroundPixelSamplerConfig, dilate_masks


def square_masks(size: int = 40, lo: int = 15, hi: int = 25) -> torch.Tensor:
    masks = torch.zeros(2, size, size, 1)
    masks[:, lo:hi, lo:hi] = 1.0
    return masks


def draw(count: int, foreground_fraction: float, band_width: float):
    """Pixel indices (image, row, column) the sampler draws from two 40x40 square masks, and the masks."""
    masks = square_masks()
    config = ForegroundPixelSamplerConfig(
        num_rays_per_batch=count, foreground_fraction=foreground_fraction, band_width=band_width
    )
    torch.manual_seed(0)
    indices = config.setup().sample_method(count, 2, 40, 40, mask=masks)
    return indices.unbind(-1), masks


def test_dilation_grows_the_mask_by_its_radius():
    masks = square_masks()
    band = dilate_masks(masks, 3)
    assert band.dtype == torch.bool and band.shape == masks.shape
    rows = band[0, :, :, 0].any(dim=1).nonzero().reshape(-1)
    assert (rows.min().item(), rows.max().item()) == (12, 27)
    assert band[0, 12, 12, 0] and not band[0, 11, 20, 0]  # square neighbourhood: the corners too
    assert torch.equal(dilate_masks(masks, 0), masks > 0.5)


def test_band_samples_both_sides_of_the_outline_alike():
    (c, y, x), masks = draw(4000, foreground_fraction=1.0, band_width=0.1)
    assert ((y >= 11) & (y < 29) & (x >= 11) & (x < 29)).all()  # radius 4: never beyond the band
    inside = masks[c, y, x, 0] > 0.5
    # The band is 18x18 around a 10x10 mask: 100/324 of its pixels are foreground.
    assert abs(inside.float().mean().item() - 100 / 324) < 0.03


def test_the_rest_of_the_batch_goes_anywhere():
    (c, y, x), masks = draw(1000, foreground_fraction=0.5, band_width=0.0)
    inside = masks[c, y, x, 0] > 0.5
    assert inside[:500].all()  # band_width 0: the band is the mask itself
    assert inside[500:].float().mean().item() < 0.2  # uniform: 100 of 1600 pixels are foreground


def test_band_follows_new_masks():
    sampler = ForegroundPixelSamplerConfig(band_width=0.05).setup()
    first, second = square_masks(), square_masks(lo=2, hi=6)
    assert sampler.band(first) is sampler.band(first)  # same tensor: dilated once
    assert torch.equal(sampler.band(second), dilate_masks(second, 2))
