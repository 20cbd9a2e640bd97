"""What the benchmark scripts share: the options that choose a run, and the trainer config they give."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional


def add_run_arguments(parser: argparse.ArgumentParser, default_steps: int) -> None:
    parser.add_argument("--data", type=Path, default=Path("data/synth-default"))
    parser.add_argument("--preset", default="default", help="hfavatar-synth preset made when --data is missing")
    parser.add_argument("--method", choices=["hfavatar-lite", "hfavatar"], default="hfavatar-lite")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the method's own)")
    parser.add_argument("--implementation", choices=["torch", "tcnn"], default=None, help="hash-grid backend")
    parser.add_argument("--steps", type=int, default=default_steps)
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                        help="override a config field, e.g. pipeline.model.eikonal_loss_mult=0.3 (repeatable)")
    parser.add_argument("--output", type=Path, default=Path("outputs/benchmarks"))


def override(config, assignment: str) -> None:
    """Set ``a.b.c=value`` on a nested config; the value is parsed as the field's current type."""
    path, _, text = assignment.partition("=")
    *parents, name = path.split(".")
    target = config
    for parent in parents:  # config fields, or keys of a dict such as ``optimizers.body.optimizer.lr``
        target = target[parent] if isinstance(target, dict) else getattr(target, parent)
    current = target[name] if isinstance(target, dict) else getattr(target, name)
    if text == "None":
        value = None
    elif isinstance(current, bool) or (current is None and text.lower() in ("true", "false")):
        value = text.lower() in ("1", "true", "yes")
    elif current is None:
        value = text
    else:
        value = type(current)(text)
    if isinstance(target, dict):
        target[name] = value
    else:
        setattr(target, name, value)


def run_config(args: argparse.Namespace, max_steps: int, experiment_name: str):
    """The trainer config of the chosen method on ``args.data`` (made first when missing), overrides applied."""
    from hfavatar_ns.synth.config import SynthConfig
    from hfavatar_ns.synth.writer import generate_capture
    from hfavatar_ns.training import method_config

    if not (args.data / "annots.npy").exists():
        generate_capture(args.data, SynthConfig.from_preset(args.preset))
    config = method_config(
        args.method == "hfavatar-lite", args.data, args.output, max_steps, experiment_name=experiment_name,
        device=args.device,
    )  # fmt: skip
    if args.implementation is not None:
        config.pipeline.model.sdf_field.implementation = args.implementation
    for assignment in args.set:
        override(config, assignment)
    config.set_timestamp()
    return config


def print_report(report: dict, json_path: Optional[Path]) -> None:
    """Print a benchmark's figures as JSON, and write them to ``json_path`` when given."""
    text = json.dumps(report, indent=2)
    print(text)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(text)
