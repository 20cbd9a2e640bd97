import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from smpl_fixture import write_synthetic_smpl  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_smpl_dir(tmp_path_factory) -> Path:
    """A body-model folder holding a structurally valid (fake) SMPL_NEUTRAL.pkl in smplx's layout."""
    root = tmp_path_factory.mktemp("body_models")
    write_synthetic_smpl(root)
    return root


@pytest.fixture(scope="session")
def tiny_avatar_run(tmp_path_factory) -> Path:
    """config.yml of a 2-step hfavatar-lite run on the tiny synthetic capture (for CLI/render tests)."""
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture
    from hfavatar_ns.training import lite_config, train

    root = tmp_path_factory.mktemp("tiny_avatar")
    capture = generate_capture(root / "capture", SynthConfig.from_preset("tiny"), progress=False)
    config = lite_config(capture, root / "outputs", 2)
    train(config)
    return config.get_base_dir() / "config.yml"


def pytest_collection_modifyitems(config, items):
    """``gpu`` tests need CUDA: without it they are reported as skipped, with the reason (each has a CPU twin)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (its CPU twin runs here)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
