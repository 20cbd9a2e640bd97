"""Setting a trainer up from Python seeds it the way `ns-train` does: same config, same avatar."""

import torch

from hfavatar_ns.synth.config import SynthConfig
from hfavatar_ns.synth.writer import generate_capture
from hfavatar_ns.training import lite_config, set_up_trainer


def initial_parameters(capture, output, seed):
    config = lite_config(capture, output, 2, seed=seed)
    config.set_timestamp()
    model = set_up_trainer(config).pipeline.model
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def test_the_same_seed_gives_the_same_initial_avatar(tmp_path):
    capture = generate_capture(tmp_path / "capture", SynthConfig.from_preset("tiny"), progress=False)
    torch.manual_seed(123)  # whatever ran before must not matter
    first = initial_parameters(capture, tmp_path / "a", seed=42)
    torch.rand(1000)
    second = initial_parameters(capture, tmp_path / "b", seed=42)
    other = initial_parameters(capture, tmp_path / "c", seed=7)
    assert first.keys() == second.keys()
    for name in first:
        assert torch.equal(first[name], second[name]), name
    table = "field.encoding.hash_table"
    assert not torch.equal(first[table], other[table])
