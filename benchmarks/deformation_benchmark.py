"""Timings of the backward deformation on the CPU (prints figures; not a test).

    .venv/bin/python benchmarks/deformation_benchmark.py [--points 16384] [--frames 8]

Uses the synthetic SMPL-structured body of the test suite (6890 vertices), so no licensed files.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from smpl_fixture import write_synthetic_smpl  # noqa: E402

from hfavatar_ns.body.base import PosedBody  # noqa: E402
from hfavatar_ns.body.body_frames import BodyFrames  # noqa: E402
from hfavatar_ns.body.factory import make_body_model  # noqa: E402
from hfavatar_ns.body.posing import BodyModelSpec  # noqa: E402
from hfavatar_ns.body.skinning import linear_blend_skinning  # noqa: E402
from hfavatar_ns.deformation.backward import BackwardDeformationConfig  # noqa: E402
from hfavatar_ns.deformation.weight_grid import PerFrameWeightGrids  # noqa: E402


def _time(fn, repeats: int) -> float:
    """Median wall time in ms (the median, because shared machines make single runs noisy)."""
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=16384)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU, load average {load:.1f}")

    with tempfile.TemporaryDirectory() as folder:
        write_synthetic_smpl(Path(folder))
        body = make_body_model("smpl", Path(folder))
    canonical = body.canonical()
    poses = torch.randn(args.frames, 72) * 0.1
    transforms = body.pose(poses).bone_transforms
    weights = canonical.skinning_weights
    posed = linear_blend_skinning(
        canonical.vertices.expand(args.frames, -1, -1), weights.expand(args.frames, -1, -1), transforms
    )

    grids = PerFrameWeightGrids(posed, weights, resolution=32)
    start = time.perf_counter()
    grids.build([0, 1])
    print(f"observation weight grid build (24 x 32^3, k=10): {(time.perf_counter() - start) / 2 * 1e3:.0f} ms / frame")

    start = time.perf_counter()
    zeros = torch.zeros(args.frames, 3)
    body_frames = BodyFrames.from_posed(
        canonical, torch.zeros(10), list(range(args.frames)), poses, zeros, zeros,
        PosedBody(posed, transforms[..., :3, 3], transforms), BodyModelSpec("smpl"),
    )  # fmt: skip
    deformation = BackwardDeformationConfig().setup(body=body_frames)
    print(f"BackwardDeformation setup (canonical 24 x 64^3 grid): {(time.perf_counter() - start) * 1e3:.0f} ms")
    start = time.perf_counter()
    deformation.observation_grids.build()
    print(f"  + all {args.frames} observation grids: {(time.perf_counter() - start) * 1e3:.0f} ms")

    frame_indices = torch.randint(0, args.frames, (args.points,))
    points = posed[frame_indices, torch.randint(0, posed.shape[1], (args.points,))]
    points = points + 0.03 * torch.randn_like(points)
    grid_ms = _time(lambda: deformation.observation_grids.query(points, frame_indices), args.repeats)
    print(f"observation grid lookup, {args.points} points, mixed frames: {grid_ms:.1f} ms")

    for step, label in ((0, "skinning only (before non-rigid kick-in)"), (10**6, "with non-rigid offset MLP")):
        deformation.set_progress(step)

        def forward_only() -> None:
            with torch.no_grad():
                deformation(points, frame_indices)

        def forward_backward() -> None:
            deformation.zero_grad(set_to_none=True)
            canonical_points, _ = deformation(points, frame_indices)
            canonical_points.square().sum().backward()

        print(f"{label}, {args.points} points, 3 iterations:")
        print(f"  forward (no grad):  {_time(forward_only, args.repeats):7.1f} ms")
        print(f"  forward + backward: {_time(forward_backward, args.repeats):7.1f} ms")


if __name__ == "__main__":
    main()
