"""The hash grid's torch path: nerfstudio's values and gradients, in a few ops with no host copies."""

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nerfstudio.field_components.encodings import HashEncoding

from hfavatar_ns.fields.hash_grid import DeviceHashEncoding

SETTINGS = dict(num_levels=8, min_res=4, max_res=256, log2_hashmap_size=12, features_per_level=2, implementation="torch")


class DispatchLog(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def twin_encodings():
    torch.manual_seed(0)
    reference = HashEncoding(**SETTINGS)
    ours = DeviceHashEncoding(**SETTINGS)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def test_same_checkpoint_keys_as_nerfstudio():
    reference, ours = twin_encodings()
    assert ours.state_dict().keys() == reference.state_dict().keys()


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_same_values_and_gradients_as_nerfstudio(device):
    reference, ours = twin_encodings()
    torch.manual_seed(1)
    points = torch.rand(3000, 3, dtype=torch.float64)
    points[:3] = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)  # on nodes of every level
    points = points.to(device)
    reference.to(device).double(), ours.to(device).double()
    upstream = torch.randn(3000, 16, dtype=torch.float64).to(device)
    results = []
    for encoding in (reference, ours):
        inputs = points.clone().requires_grad_(True)
        values = encoding(inputs)
        point_grad, table_grad = torch.autograd.grad((values * upstream).sum(), [inputs, encoding.hash_table], create_graph=True)
        (second,) = torch.autograd.grad(point_grad.square().sum(), encoding.hash_table)  # the eikonal's path
        results.append((values, point_grad, table_grad, second))
    for theirs, mine in zip(*results):
        assert torch.allclose(theirs, mine, atol=1e-9)


def test_forward_makes_no_host_constants_and_few_ops():
    """nerfstudio's torch path builds its hash primes from a Python list at each of its eight hashes
    (a blocking host-to-device copy on a GPU); ours keeps them in buffers."""
    reference, ours = twin_encodings()
    points = torch.rand(100, 3)
    with DispatchLog() as theirs_log:
        reference(points)
    with DispatchLog() as our_log:
        ours(points)
    assert theirs_log.ops.count("aten.lift_fresh.default") == 8
    assert "aten.lift_fresh.default" not in our_log.ops
    assert len(our_log.ops) < len(theirs_log.ops) / 3
