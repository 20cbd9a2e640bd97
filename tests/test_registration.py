"""The plugin is visible to nerfstudio's commands through its entry points."""

import subprocess
import sys


def test_methods_are_registered():
    from nerfstudio.configs.method_configs import all_methods

    assert "hfavatar" in all_methods and "hfavatar-lite" in all_methods
    lite = all_methods["hfavatar-lite"]
    assert lite.pipeline.model.sdf_field is not None  # the attribute ns-export marching-cubes looks for
    assert type(lite.pipeline.datamanager.dataparser).__name__ == "ZJUMocapDataParserConfig"


def test_ns_train_help_lists_the_plugin():
    result = subprocess.run(
        [sys.executable, "-m", "nerfstudio.scripts.train", "hfavatar-lite", "--help"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "zju-mocap" in result.stdout


def test_input_errors_print_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "nerfstudio.scripts.train", "hfavatar-lite", "--data", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "error:" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
