"""hfavatar-export on a (2-step) trained avatar: files, watertightness, world coordinates, errors."""

import subprocess
import sys

import numpy as np
import pytest
import trimesh

from hfavatar_ns.errors import InputError
from hfavatar_ns.scripts.export_mesh import ExportMeshConfig, export_meshes


def test_canonical_and_posed_meshes(tiny_avatar_run, tmp_path, capsys):
    written = export_meshes(
        ExportMeshConfig(load_config=tiny_avatar_run, output_dir=tmp_path, canonical=True, frame=0, resolution=48)
    )
    assert [path.name for path in written] == ["canonical.ply", "frame_000000.ply"]
    canonical = trimesh.load(written[0], process=False)
    posed = trimesh.load(written[1], process=False)
    assert canonical.is_watertight and posed.is_watertight
    assert len(posed.visual.vertex_colors) == len(posed.vertices)
    # hfavatar-synth's world is z-up with the ground at z = 0: the posed avatar stands on it. At 48^3 (4 cm
    # cells) a 2-step avatar's foot can part from the body and go with the smaller pieces (seen at z 0.127).
    assert posed.bounds[0, 2] == pytest.approx(0.0, abs=0.15) and posed.bounds[1, 2] > 1.3
    # Canonical space is the body model's (y up): a different place than the posed world mesh.
    assert not np.allclose(canonical.bounds, posed.bounds, atol=0.1)
    # The box to hand ns-export marching-cubes holds the canonical mesh.
    line = next(l for l in capsys.readouterr().out.splitlines() if "--bounding-box-min" in l)
    numbers = [float(v) for v in line.split("--bounding-box-min")[1].replace("--bounding-box-max", "").split()]
    low, high = np.array(numbers[:3]), np.array(numbers[3:])
    assert (low <= canonical.bounds[0] + 0.01).all() and (high >= canonical.bounds[1] - 0.01).all()


def test_unknown_frame_lists_the_known_ones(tiny_avatar_run, tmp_path):
    with pytest.raises(InputError, match=r"Frame 999 is not one of the avatar.s frames \(6 frames: 0, 1, 2"):
        export_meshes(ExportMeshConfig(load_config=tiny_avatar_run, output_dir=tmp_path, frame=999, resolution=16))


def test_nothing_to_export_is_a_clear_cli_error(tiny_avatar_run, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "hfavatar_ns.scripts.export_mesh", "--load-config", str(tiny_avatar_run)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Nothing to export" in result.stderr and "Traceback" not in result.stderr


def test_poses_alone_writes_the_given_fits_of_every_capture_frame(tiny_avatar_run, tmp_path, capsys):
    import yaml

    written = export_meshes(ExportMeshConfig(load_config=tiny_avatar_run, output_dir=tmp_path, poses=True))
    assert sorted(path.name for path in written) == [f"{i}.npy" for i in range(6)]
    assert all(path.parent == tmp_path / "refined_params" for path in written)
    assert not list(tmp_path.glob("*.ply"))  # nothing meshed
    output = " ".join(capsys.readouterr().out.split())
    assert "fits of 6 frames" in output and "did not refine poses" in output
    # A run without pose refinement gives back its capture's fits, in the capture's own format.
    capture = yaml.load(tiny_avatar_run.read_text(), Loader=yaml.Loader).pipeline.datamanager.dataparser.data
    for path in written:
        fits = np.load(path, allow_pickle=True).item()
        given = np.load(capture / "new_params" / path.name, allow_pickle=True).item()
        assert sorted(fits) == ["Rh", "Th", "poses", "shapes"]
        for key in fits:
            assert fits[key].dtype == np.float32 and fits[key].shape == given[key].shape
            np.testing.assert_allclose(fits[key], given[key], atol=1e-6)


def test_written_fits_hold_the_pose_refinement_corrections(synthetic_smpl_dir, tmp_path):
    import torch

    from hfavatar_ns.body.body_frames import BodyFrames
    from hfavatar_ns.body.posing import BodyModelSpec
    from hfavatar_ns.scripts.export_mesh import write_fits

    generator = torch.Generator().manual_seed(5)
    poses = torch.randn(3, 72, generator=generator) * 0.1
    rh, th = torch.randn(3, 3, generator=generator) * 0.3, torch.randn(3, 3, generator=generator)
    shapes = torch.zeros(3, 10)
    spec = BodyModelSpec("smpl", model_dir=synthetic_smpl_dir)
    body = BodyFrames.from_parameters(spec, [10, 12, 15], poses, shapes, rh, th)
    body.enable_refinement()
    body.translation_correction.data[1] = torch.tensor([0.01, -0.02, 0.03])
    body.rotation_correction.data[2] = torch.tensor([0.0, 0.05, 0.0])
    body.pose_correction.data[0, 16] = torch.tensor([0.1, 0.0, -0.1])
    corrections = {
        "poses": body.pose_correction.detach().flatten(1),
        "Rh": body.rotation_correction.detach(),
        "Th": body.translation_correction.detach(),
        "shapes": torch.zeros(3, 10),
    }

    written = write_fits(body, tmp_path)
    assert [path.name for path in written] == ["10.npy", "12.npy", "15.npy"]
    for row, path in enumerate(written):
        fit = np.load(path, allow_pickle=True).item()
        sizes = {"poses": 72, "Rh": 3, "Th": 3, "shapes": 10}
        assert {key: (value.shape, value.dtype) for key, value in fit.items()} == {
            key: ((1, size), np.float32) for key, size in sizes.items()
        }
        for key, given in (("poses", poses), ("Rh", rh), ("Th", th), ("shapes", shapes)):
            np.testing.assert_allclose(fit[key][0], (given[row] + corrections[key][row]).numpy(), atol=1e-6)
    assert np.load(written[1], allow_pickle=True).item()["Th"][0] != pytest.approx(th[1].numpy())
