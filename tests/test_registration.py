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


def test_torch_notices_inside_nerfstudio_are_silenced_and_ours_are_not():
    """Importing the plugin (as every ns-* command does) hides the notices torch raises in nerfstudio's own
    code on every run, and only there."""
    import importlib
    import warnings

    import hfavatar_ns

    notice = "Converting a tensor with requires_grad=True to a scalar may lead to unexpected behavior."
    with warnings.catch_warnings(record=True) as caught:
        importlib.reload(hfavatar_ns)
        for module in ("nerfstudio.utils.writer", "hfavatar_ns.models.hfavatar_model"):
            warnings.warn_explicit(notice, UserWarning, f"{module.replace('.', '/')}.py", 1, module=module)
        warnings.warn_explicit(
            "This DataLoader will create 4 worker processes in total.", UserWarning, "dataloader.py", 1,
            module="torch.utils.data.dataloader",
        )  # fmt: skip
    assert [w.filename for w in caught] == ["hfavatar_ns/models/hfavatar_model.py"]
