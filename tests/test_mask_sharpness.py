"""``mask_loss_sets_sharpness``: whether the mask loss may move NeuS's learned sharpness."""

from __future__ import annotations

import pytest
import torch


@pytest.mark.slow
def test_the_mask_loss_moves_the_sharpness_only_when_allowed(tmp_path):
    from ns_train_fixture import trained_on_tiny_capture

    pipeline = trained_on_tiny_capture(tmp_path, 1, "--pipeline.model.mask-loss-sets-sharpness", "False").pipeline
    model = pipeline.model
    model.train()
    ray_bundle, batch = pipeline.datamanager.next_train(1)

    def mask_loss_gradients():
        model.zero_grad(set_to_none=True)
        torch.manual_seed(0)  # the same samples along the rays for both calls
        outputs = model(ray_bundle)
        model.get_loss_dict(outputs, batch)["mask_loss"].backward()
        sharpness = model.field.log_inv_s.grad
        shape = [p.grad for p in model.field.parameters() if p is not model.field.log_inv_s and p.grad is not None]
        return (0.0 if sharpness is None else float(sharpness.abs())), sum(float(g.abs().sum()) for g in shape)

    held_sharpness, held_shape = mask_loss_gradients()
    assert held_sharpness == 0.0
    assert held_shape > 0.0  # the SDF still learns from the mask
    model.config.mask_loss_sets_sharpness = True
    free_sharpness, free_shape = mask_loss_gradients()
    assert free_sharpness > 0.0
    assert free_shape == pytest.approx(held_shape, rel=1e-4)  # same accumulation, same pull on the shape
