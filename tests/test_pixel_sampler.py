"""The pixel sampler draws around the person (a band past the mask's outline) and anywhere."""

import torch

from hfavatar_ns.data.pixel_sampler import (
    ForegroundPixelSamplerConfig,
    dilate_masks,
    flat_pixel_indices,
    mask_outlines,
    unflatten_pixel_indices,
)


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


def test_dilation_matches_its_definition_at_the_borders_too():
    """A pixel is in the band when a foreground pixel lies within ``radius`` rows and columns of it."""
    generator = torch.Generator().manual_seed(3)
    masks = (torch.rand(3, 23, 31, 1, generator=generator) > 0.97).float()
    masks[1, 0, 0, 0] = masks[2, 22, 30, 0] = 1.0  # corners: the neighbourhood leaves the image
    radius = 4
    foreground = masks[..., 0] > 0.5
    expected = torch.zeros_like(foreground)
    for row in range(23):
        for column in range(31):
            window = foreground[:, max(0, row - radius) : row + radius + 1, max(0, column - radius) : column + radius + 1]
            expected[:, row, column] = window.flatten(1).any(dim=1)
    assert torch.equal(dilate_masks(masks, radius)[..., 0], expected)
    assert torch.equal(dilate_masks(masks[:0], radius), masks[:0] > 0.5)  # no images


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


def test_flat_indices_name_the_true_pixels():
    masks = square_masks(size=8, lo=2, hi=5)
    masks[1] = 0.0
    masks[1, 7, 0] = 1.0
    flat = flat_pixel_indices(masks > 0.5)
    assert flat.dtype == torch.int32 and flat.numel() == 9 + 1
    image, row, column = unflatten_pixel_indices(flat, 8, 8).unbind(-1)
    assert (masks[image, row, column, 0] == 1.0).all()
    assert (image[-1].item(), row[-1].item(), column[-1].item()) == (1, 7, 0)


def test_drawing_from_the_band_never_reads_back_from_the_device():
    """Once the band of a set of masks is made, a batch is drawn without host-device syncs
    (nerfstudio's rejection sampling reads a count back every round)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class SyncWatcher(TorchDispatchMode):
        seen = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if str(func) in ("aten._local_scalar_dense.default", "aten.nonzero.default", "aten.masked_select.default"):
                self.seen.append(str(func))
            return func(*args, **(kwargs or {}))

    masks = square_masks()
    sampler = ForegroundPixelSamplerConfig(band_width=0.1).setup()
    sampler.sample_method(64, 2, 40, 40, mask=masks)  # makes the band (one nonzero)
    with SyncWatcher() as watcher:
        sampler.sample_method(64, 2, 40, 40, mask=masks)
    assert watcher.seen == []


def test_empty_masks_fall_back_to_uniform_sampling():
    masks = torch.zeros(2, 40, 40, 1)
    torch.manual_seed(0)
    indices = ForegroundPixelSamplerConfig(band_width=0.1).setup().sample_method(500, 2, 40, 40, mask=masks)
    assert indices.shape == (500, 3) and indices[:, 1].float().std() > 8  # spread over the image


def test_outline_flags_pixels_near_a_change_of_label_on_both_sides():
    masks = square_masks()  # foreground rows and columns 15..24
    outline = mask_outlines(masks, 2)[0, :, :, 0]
    assert outline.dtype == torch.bool
    row = outline[20]  # through the square's middle: columns 13..16 and 23..26 are within 2 px of an edge
    assert row.nonzero().reshape(-1).tolist() == [13, 14, 15, 16, 23, 24, 25, 26]
    assert not outline[20, 20] and not outline[20, 5]  # deep inside, far outside
    assert not mask_outlines(masks, 0).any()
    assert not mask_outlines(torch.ones(1, 9, 9, 1), 2).any()  # the image border is no outline


def test_collated_rays_carry_their_outline_flag():
    masks = square_masks().bool()
    images = torch.rand(2, 40, 40, 3)
    batch = {"image": images, "mask": masks, "image_idx": torch.tensor([5, 7])}
    sampler = ForegroundPixelSamplerConfig(num_rays_per_batch=256, band_width=0.1, mask_outline_px=1).setup()
    torch.manual_seed(0)
    rays = sampler.collate_image_dataset_batch(batch, 256)
    assert "mask_outline" not in batch  # the cached batch is left as it was
    image = (rays["indices"][:, 0] == 7).long()
    expected = mask_outlines(masks, 1)[image, rays["indices"][:, 1], rays["indices"][:, 2]]
    assert torch.equal(rays["mask_outline"], expected) and expected.any() and not expected.all()
    plain = ForegroundPixelSamplerConfig(num_rays_per_batch=256, band_width=0.1).setup()
    assert "mask_outline" not in plain.collate_image_dataset_batch(batch, 256)
