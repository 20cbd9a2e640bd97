"""Normal smoothness: near-surface point choice and the normal difference of point pairs."""

import torch

from hfavatar_ns.model_components.normal_smoothness import near_surface_points, normal_difference


def test_only_points_near_the_surface_are_chosen():
    points = torch.arange(30, dtype=torch.float32).reshape(10, 3)
    sdf = torch.tensor([0.5, 0.001, -0.002, 0.3, 0.0, -0.2, 0.004, 0.1, -0.5, 0.2])[:, None]
    chosen = near_surface_points(points, sdf, band=0.01, max_points=100)
    assert torch.equal(chosen, points[[1, 2, 4, 6]])
    assert not chosen.requires_grad
    assert near_surface_points(points, sdf, band=0.01, max_points=2).shape == (2, 3)
    assert near_surface_points(points, sdf + 1.0, band=0.01, max_points=2) is None


def test_normal_difference_ignores_length_and_grows_with_angle():
    up = torch.tensor([[0.0, 0.0, 1.0]])
    assert normal_difference(up, 5.0 * up).item() < 1e-12
    assert abs(normal_difference(up, -up).item() - 4.0) < 1e-6
    tilted = torch.tensor([[0.0, 1.0, 1.0]])
    sideways = torch.tensor([[0.0, 1.0, 0.0]])
    assert 0 < normal_difference(up, tilted).item() < normal_difference(up, sideways).item()


def test_bumpy_sdf_costs_more_than_a_plane():
    """On a plane every pair of normals agrees; a bumpy height field is penalised."""
    torch.manual_seed(0)
    points = torch.rand(500, 3)
    neighbours = points + 0.01 * torch.randn_like(points)

    def gradients(sdf_fn, x):
        x = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(sdf_fn(x).sum(), x)
        return grad

    plane = lambda x: x[:, 2]  # noqa: E731
    bumpy = lambda x: x[:, 2] - 0.01 * torch.sin(200.0 * x[:, 0])  # noqa: E731
    assert normal_difference(gradients(plane, points), gradients(plane, neighbours)).item() < 1e-10
    assert normal_difference(gradients(bumpy, points), gradients(bumpy, neighbours)).item() > 0.1


def test_the_model_adds_the_loss_and_it_reaches_the_field(tiny_avatar_run):
    """Training rays towards the body: the loss is in the loss dict and its gradient reaches the hash grid."""
    from nerfstudio.cameras.rays import RayBundle

    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    model = load_avatar_run(tiny_avatar_run).model
    model.train()
    torch.manual_seed(0)
    targets = model.body.published_vertices[0][torch.randint(0, model.body.published_vertices.shape[1], (256,))]
    origins = targets.mean(dim=0) + torch.tensor([0.0, -3.0, 0.0])
    directions = torch.nn.functional.normalize(targets - origins, dim=-1)
    rays = RayBundle(
        origins=origins.expand(256, 3).contiguous(),
        directions=directions,
        pixel_area=torch.full((256, 1), 1e-6),
        camera_indices=torch.zeros(256, 1, dtype=torch.long),
        nears=torch.zeros(256, 1),
        fars=torch.full((256, 1), 6.0),
        metadata={"frame_idx": torch.zeros(256, 1, dtype=torch.long)},
    )
    outputs = model(rays)
    batch = {"image": torch.zeros(256, 3), "mask": torch.ones(256, 1)}
    losses = model.get_loss_dict(outputs, batch)
    assert "normal_smoothness_loss" in losses and losses["normal_smoothness_loss"] > 0
    model.field.encoding.zero_grad()
    losses["normal_smoothness_loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.field.encoding.parameters())
