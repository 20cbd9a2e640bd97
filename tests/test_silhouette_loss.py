"""The silhouette loss acts only where the silhouette is wrong."""

import torch

from hfavatar_ns.model_components.silhouette_loss import silhouette_loss

SHARPNESS = 50.0


def gradient_of(min_sdf: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    min_sdf = min_sdf.clone().requires_grad_(True)
    loss = silhouette_loss(min_sdf, mask, SHARPNESS)
    loss.backward()
    return min_sdf.grad


def test_foreground_ray_that_crosses_the_surface_is_left_alone():
    min_sdf = torch.tensor([[-0.01], [0.02]])
    mask = torch.tensor([[1.0], [1.0]])
    grad = gradient_of(min_sdf, mask)
    assert grad[0] == 0.0  # already crosses: no push to inflate the surface
    assert grad[1] > 0.0  # misses: gradient descent lowers its min SDF (grows the surface towards it)


def test_background_rays_are_pushed_outside():
    min_sdf = torch.tensor([[-0.01], [0.01]])
    mask = torch.tensor([[0.0], [0.0]])
    grad = gradient_of(min_sdf, mask)
    assert (grad < 0).all()  # descent raises min SDF on both: stay clear of the surface


def test_rays_without_samples_and_empty_batches():
    assert silhouette_loss(torch.full((2, 1), float("inf")), torch.ones(2, 1), SHARPNESS) is None
    assert silhouette_loss(torch.tensor([[-0.1]]), torch.ones(1, 1), SHARPNESS) is None
    value = silhouette_loss(torch.tensor([[float("inf")], [0.0]]), torch.zeros(2, 1), SHARPNESS)
    assert torch.isclose(value, torch.log(torch.tensor(2.0)))  # only the finite ray counts: BCE(0.5, 0)
