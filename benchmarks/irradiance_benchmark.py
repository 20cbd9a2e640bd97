"""Which irradiance model guesses best the light on the side one camera never sees.

Each model is fitted to the normals a camera on one side sees, under several lightings (one light, as the
synthetic captures are lit; a key and a fill; three lights; a light behind the person; an overhead room
light), and scored on the seen normals and on the others (RMS irradiance error; the target's own spread
is given for scale). CPU, about a minute:

    python benchmarks/irradiance_benchmark.py --json outputs/benchmarks/irradiance.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hfavatar_ns.evaluation.irradiance_fit import Lighting, seen_and_unseen_error, sphere_normals
from hfavatar_ns.fields.shading import DirectionalLightShading, SphericalHarmonicsShading
from hfavatar_ns.synth.config import LIGHTINGS as SYNTH_LIGHTINGS

LIGHTINGS = {
    "one light": Lighting(*SYNTH_LIGHTINGS["one_light"]),
    "key and fill": Lighting(0.3, (((0.35, -0.55, 0.75), 0.7), ((-0.5, 0.6, 0.2), 0.3))),
    "three lights": Lighting(0.2, (((0.3, 0.2, 0.9), 0.5), ((-0.8, 0.3, 0.2), 0.3), ((0.4, -0.9, 0.1), 0.3))),
    "light behind the person": Lighting(0.4, (((-0.9, 0.1, 0.4), 0.8),)),
    "overhead room light": Lighting(0.5, (((0.0, 0.0, 1.0), 0.6),)),
}
CAMERA_SIDES = {"front": (1.0, 0.2, 0.1), "side": (0.3, -1.0, 0.2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, default=Path("outputs/benchmarks/irradiance.json"))
    args = parser.parse_args()

    import torch

    models = {
        "one light + ambient": lambda side: (lambda: DirectionalLightShading(torch.tensor(side))),
        "spherical harmonics, 9 terms": lambda side: (lambda: SphericalHarmonicsShading(3)),
        "spherical harmonics, 4 terms": lambda side: (lambda: SphericalHarmonicsShading(2)),
    }
    rows = []
    print("| lighting | camera | target spread | " + " | ".join(f"{name}: seen / unseen" for name in models) + " |")
    print("|---|---|---|" + "---|" * len(models))
    for lighting_name, lighting in LIGHTINGS.items():
        spread = float(lighting.irradiance(sphere_normals(8000)).std())
        for side_name, side in CAMERA_SIDES.items():
            errors = {name: seen_and_unseen_error(make(side), lighting, side) for name, make in models.items()}
            rows.append({"lighting": lighting_name, "camera": side_name, "target_spread": spread, "errors": errors})
            cells = " | ".join(f"{seen:.3f} / {unseen:.3f}" for seen, unseen in errors.values())
            print(f"| {lighting_name} | {side_name} | {spread:.3f} | {cells} |", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"rows": rows}, indent=2))


if __name__ == "__main__":
    main()
