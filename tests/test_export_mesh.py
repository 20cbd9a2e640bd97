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
