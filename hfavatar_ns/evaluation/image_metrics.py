"""Image metrics of rendered avatars: whole image, the foreground-mask bounding-box crop, and LPIPS.

Human-avatar papers differ in where they measure (shared/reference/anchors.md §2a): NeuralBody, ARAH and
3DGS-Avatar score the crop to the body's 2D bounding box, HumanNeRF the whole image. The crop protocol
here takes the bounding box of the foreground mask (all pixels the mask marks, inclusive).

LPIPS needs pretrained backbone weights that torchvision downloads on first use; evaluation must not
download anything, so :func:`lpips_metric` builds the metric only when the weights are already cached.
"""

from __future__ import annotations

import functools

from pathlib import Path
from typing import Dict, Literal, Optional, Tuple

import torch
from jaxtyping import Float
from torch import Tensor

LpipsNet = Literal["vgg", "alex"]
_TORCHVISION_BACKBONE = {"vgg": ("vgg16", "VGG16_Weights"), "alex": ("alexnet", "AlexNet_Weights")}
_lpips_note_printed = False


def mask_bounding_box(mask: Float[Tensor, "H W *c"]) -> Tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` (bottom/right exclusive) of the pixels where ``mask > 0.5``.

    An empty mask gives the whole image (nothing to crop to).
    """
    mask2d = mask.reshape(mask.shape[0], mask.shape[1], -1)[..., 0] > 0.5
    height, width = mask2d.shape
    rows = mask2d.any(dim=1).nonzero().reshape(-1)
    cols = mask2d.any(dim=0).nonzero().reshape(-1)
    if rows.numel() == 0:
        return 0, height, 0, width
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def crop_to_mask(image: Float[Tensor, "H W C"], mask: Float[Tensor, "H W *c"]) -> Float[Tensor, "h w C"]:
    """``image`` cropped to the bounding box of ``mask`` (see :func:`mask_bounding_box`)."""
    top, bottom, left, right = mask_bounding_box(mask)
    return image[top:bottom, left:right]


def psnr(predicted: Float[Tensor, "*bs C"], target: Float[Tensor, "*bs C"]) -> Float[Tensor, ""]:
    """Peak signal-to-noise ratio for values in [0, 1] (a tensor: training logs it without a device sync)."""
    mse = torch.mean((predicted.clamp(0, 1) - target) ** 2).clamp(min=1e-10)
    return -10.0 * torch.log10(mse)


OUTLINE_BANDS_PX: Dict[str, Tuple[float, float]] = {
    "inside_6+": (float("-inf"), -6.0),
    "inside_3-6": (-6.0, -3.0),
    "inside_0-3": (-3.0, 0.0),
    "outside_0-1": (0.0, 1.0),
    "outside_1+": (1.0, float("inf")),
}
"""Bands of signed distance from a mask's outline, pixels (``(low, high]``; negative inside the person)."""


def signed_outline_distance(mask: Float[Tensor, "H W *c"]) -> Float[Tensor, "H W"]:
    """Each pixel's Euclidean distance to the other side of the mask's outline: negative for the person's
    pixels (-1 for the outermost), positive for the background's (1 for those touching the person)."""
    import cv2
    import numpy as np

    person = (mask.reshape(mask.shape[0], mask.shape[1], -1)[..., 0] > 0.5).cpu().numpy().astype(np.uint8)
    inside = cv2.distanceTransform(person, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(1 - person, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return torch.from_numpy(np.where(person > 0, -inside, outside)).to(mask.device)


def squared_error_by_outline_distance(
    predicted: Float[Tensor, "H W C"], target: Float[Tensor, "H W C"], mask: Float[Tensor, "H W *c"]
) -> Dict[str, float]:
    """The image's squared colour error (mean over channels, summed over pixels) in each band of
    :data:`OUTLINE_BANDS_PX`: whether a render loses to a misplaced or blurred outline or to its colours."""
    error = ((predicted.clamp(0, 1) - target) ** 2).mean(dim=-1)
    distance = signed_outline_distance(mask)
    bands = OUTLINE_BANDS_PX.items()
    return {name: float(error[(distance > low) & (distance <= high)].sum()) for name, (low, high) in bands}


def ssim(predicted: Float[Tensor, "H W C"], target: Float[Tensor, "H W C"]) -> float:
    """SSIM (torchmetrics, Gaussian window 11, shrunk to an odd size that fits a small crop)."""
    from torchmetrics.functional import structural_similarity_index_measure

    side = min(predicted.shape[0], predicted.shape[1])
    kernel = min(11, side if side % 2 == 1 else side - 1)
    if kernel < 3:
        return float("nan")
    sigma = 1.5 * kernel / 11.0
    value = structural_similarity_index_measure(
        predicted.clamp(0, 1).permute(2, 0, 1)[None],
        target.permute(2, 0, 1)[None],
        data_range=1.0,
        kernel_size=kernel,
        sigma=sigma,
    )
    return float(value)  # type: ignore[arg-type]


def lpips_weights_path(net: LpipsNet) -> Path:
    """Where torchvision keeps the backbone weights torchmetrics' LPIPS(``net``) loads."""
    import torchvision

    _, weights_enum = _TORCHVISION_BACKBONE[net]
    url = getattr(torchvision.models, weights_enum).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name


def lpips_available(net: LpipsNet) -> bool:
    """Whether LPIPS(``net``) can be built offline: backbone weights cached, linear heads in torchmetrics."""
    try:
        import torchmetrics.functional.image.lpips as lpips_module

        heads = Path(lpips_module.__file__).parent / "lpips_models" / f"{net}.pth"
        return heads.is_file() and lpips_weights_path(net).is_file()
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return False


@functools.lru_cache(maxsize=None)
def lpips_metric(net: LpipsNet = "vgg"):
    """torchmetrics' LPIPS on inputs in [0, 1] (built once per backbone), or ``None`` (with a one-time note)
    when its weights are absent."""
    global _lpips_note_printed
    if not lpips_available(net):
        if not _lpips_note_printed:
            print(
                f"hfavatar: LPIPS ({net}) is not reported: its backbone weights are not at {lpips_weights_path(net)} "
                "and evaluation does not download. Put the torchvision weights file there to get 'lpips'."
            )
            _lpips_note_printed = True
        return None
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(net_type=net, normalize=True)


def avatar_image_metrics(
    predicted: Float[Tensor, "H W 3"],
    target: Float[Tensor, "H W 3"],
    mask: Float[Tensor, "H W 1"],
    lpips: Optional[torch.nn.Module] = None,
) -> Dict[str, float]:
    """``psnr``/``ssim`` on the whole image, ``psnr_bbox``/``ssim_bbox`` on the mask's bounding-box crop,
    and ``lpips`` on the crop (as ARAH and 3DGS-Avatar do) when an LPIPS metric is given."""
    predicted = predicted.clamp(0, 1)
    crop_predicted, crop_target = crop_to_mask(predicted, mask), crop_to_mask(target, mask)
    metrics = {
        "psnr": float(psnr(predicted, target)),
        "ssim": ssim(predicted, target),
        "psnr_bbox": float(psnr(crop_predicted, crop_target)),
        "ssim_bbox": ssim(crop_predicted, crop_target),
    }
    if lpips is not None:
        lpips = lpips.to(predicted.device)
        value = lpips(crop_predicted.permute(2, 0, 1)[None], crop_target.permute(2, 0, 1)[None].clamp(0, 1))
        metrics["lpips"] = float(value)
    return metrics
