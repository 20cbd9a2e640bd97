"""How many tensor ops a training step dispatches, and how many of them make the host wait.

On a GPU, nerfstudio-style training in eager PyTorch is often bound by launching kernels, not by
running them: each op costs the host a few microseconds to dispatch, and an op whose output size
or value the host must read (``.item()``, ``nonzero``, boolean-mask indexing, ``unique``) or a
Python constant copied to the device stalls the host until the GPU catches up. These counts do not
depend on the device, so they are measured here on the CPU, where they predict the GPU step's
overhead without needing a GPU.

    python benchmarks/op_count_benchmark.py --data data/synth-tiny --steps 3

Every op the dispatcher sees is counted (forward and backward, nerfstudio's own included) and
attributed to the innermost line of hfavatar or nerfstudio code that issued it (backward ops to
the ``backward()`` call). Prints JSON; ``--top`` lines of the busiest sources go to stderr.
On a CPU every value read is counted, including the optimiser's step counters (nerfstudio's Adam
keeps them on the CPU in a GPU run too, so those few do not wait for the device there).
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
from pathlib import Path
from typing import Counter, Dict

import torch
from torch.utils._python_dispatch import TorchDispatchMode

# Ops whose result the host needs before it can go on (a GPU sync), or that copy host data over.
HOST_WAITING_OPS = {
    "aten._local_scalar_dense.default": "reads a value (.item(), int(), .tolist(), bool())",
    "aten.nonzero.default": "nonzero / boolean-mask indexing",
    "aten.masked_select.default": "boolean-mask select",
    "aten._unique2.default": "unique",
    "aten.unique_dim.default": "unique",
    "aten.repeat_interleave.Tensor": "repeat_interleave without output_size",
    "aten.lift_fresh.default": "a tensor made from Python data (torch.tensor(...))",
}


def source_line() -> str:
    """The innermost frame in hfavatar or nerfstudio code, as ``package/path.py:line``."""
    for frame in reversed(traceback.extract_stack(limit=48)):
        path = frame.filename
        for package in ("hfavatar_ns/", "nerfstudio/", "dataparsers/"):
            if package in path and "site-packages/torch/" not in path:
                return f"{package}{path.split(package, 1)[1]}:{frame.lineno}"
    return "(other)"


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.by_line: Counter[str] = collections.Counter()
        self.host_waits: Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        where = source_line()
        self.by_line[where] += 1
        name = str(func)
        if name in HOST_WAITING_OPS:
            self.host_waits[f"{name} at {where}"] += 1
        return func(*args, **(kwargs or {}))


def main() -> None:
    from benchmark_run import add_run_arguments, print_report, run_config
    from hfavatar_ns.training import set_up_trainer
    from speed_benchmark import time_training

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, default_steps=3)
    parser.add_argument("--start-step", type=int, default=10, help="first counted step (after warm-up)")
    parser.add_argument("--top", type=int, default=25, help="source lines and files to list on stderr")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    config = run_config(args, 30000, experiment_name=f"op-count-{args.method}")
    trainer = set_up_trainer(config)
    time_training(trainer, 2, 1, start_step=0)  # first steps build per-frame caches; not counted
    counter = OpCounter()
    with counter:
        time_training(trainer, args.steps, 0, start_step=args.start_step)
    steps = args.steps
    by_file: Counter[str] = collections.Counter()
    for line, count in counter.by_line.items():
        by_file[line.rsplit(":", 1)[0]] += count
    report: Dict[str, object] = {
        "method": args.method,
        "data": str(args.data),
        "steps_counted": steps,
        "ops_per_step": sum(counter.by_line.values()) / steps,
        "host_waiting_ops_per_step": sum(counter.host_waits.values()) / steps,
        "ops_per_step_by_file": {name: count / steps for name, count in by_file.most_common()},
        "host_waiting_ops_per_step_by_line": {name: count / steps for name, count in counter.host_waits.most_common()},
    }
    for title, counts in (("files", by_file), ("lines", counter.by_line)):
        print(f"busiest {title} (ops per step):", file=sys.stderr)
        for name, count in counts.most_common(args.top):
            print(f"  {count / steps:8.1f}  {name}", file=sys.stderr)
    print_report(report, args.json)


if __name__ == "__main__":
    main()
