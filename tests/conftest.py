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
