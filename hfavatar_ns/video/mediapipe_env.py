"""mediapipe 0.10.21 in an environment of its own, and running its pose landmarker there.

Why a separate environment: mediapipe 0.10.21 is the last release that ships its pose and segmentation
models inside the wheel (so it runs offline), and it needs protobuf >= 4.25, while nerfstudio 1.1.5
pins protobuf <= 3.20.3 (with 3.20 mediapipe's graphs fail to load). One environment cannot hold both,
so the landmarker runs as a subprocess in a small virtual environment with pinned versions
(``mediapipe_requirements.txt``; mediapipe's own optional dependencies for audio, text and jax are left
out, and its ``opencv-contrib-python`` is replaced by the headless OpenCV the project already uses).

The environment lives in ``<sys.prefix>/hfavatar-mediapipe`` (beside the installed hfavatar, removed with
it) unless ``HFAVATAR_MEDIAPIPE_ENV`` names another folder; ``hfavatar-process-video --install-mediapipe``
makes it once (it needs the package index; everything after that is offline).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from jaxtyping import Bool, Float, UInt8

from hfavatar_ns.errors import InputError

REQUIREMENTS = Path(__file__).with_name("mediapipe_requirements.txt")
WORKER = Path(__file__).with_name("mediapipe_worker.py")
ENV_VARIABLE = "HFAVATAR_MEDIAPIPE_ENV"
INSTALL_HINT = "hfavatar-process-video --install-mediapipe"


def environment_dir() -> Path:
    """Where the mediapipe environment is (or will be)."""
    chosen = os.environ.get(ENV_VARIABLE)
    return Path(chosen) if chosen else Path(sys.prefix) / "hfavatar-mediapipe"


def environment_python(env_dir: Path | None = None) -> Path:
    env_dir = env_dir or environment_dir()
    return env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def is_installed(env_dir: Path | None = None) -> bool:
    python = environment_python(env_dir)
    if not python.is_file():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import mediapipe, cv2; mediapipe.solutions.pose"], capture_output=True, env=_quiet_env()
    )
    return probe.returncode == 0


def install(env_dir: Path | None = None, quiet: bool = False) -> Path:
    """Make the environment (idempotent) and return its interpreter."""
    env_dir = env_dir or environment_dir()
    if is_installed(env_dir):
        return environment_python(env_dir)
    if not (3, 9) <= sys.version_info[:2] <= (3, 12):
        raise InputError(
            f"mediapipe 0.10.21 has wheels for Python 3.9-3.12 only; this is Python {sys.version.split()[0]}. "
            f"Point {ENV_VARIABLE} at a folder and run {INSTALL_HINT} from a Python 3.9-3.12 installation."
        )
    if not quiet:
        print(f"Making the mediapipe environment in {env_dir} (once; about 400 MB) ...", flush=True)
    venv.EnvBuilder(with_pip=True, clear=env_dir.exists()).create(env_dir)
    python = environment_python(env_dir)
    command = [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not is_installed(env_dir):
        raise InputError(
            f"Could not install mediapipe into {env_dir} (the package index must be reachable once):\n"
            f"{result.stderr.strip()[-2000:]}"
        )
    return python


def _quiet_env() -> dict:
    env = dict(os.environ)
    env.update(GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)  # the worker must see the mediapipe environment's packages only
    return env


@dataclass
class LandmarkerOutput:
    """mediapipe's pose landmarks and person segmentation for each image."""

    found: Bool[np.ndarray, "N"]
    """Whether a person was found in the image."""
    landmarks: Float[np.ndarray, "N 33 3"]
    """BlazePose landmarks: x, y in pixels, z (relative depth, pixel units, hips at 0)."""
    visibility: Float[np.ndarray, "N 33"]
    world: Float[np.ndarray, "N 33 3"]
    """Landmarks in metres about the hips' midpoint, in the camera's axes (x right, y down, z away)."""
    segmentation: UInt8[np.ndarray, "N H W"]
    """Person probability times 255."""


def run_landmarker(images: Sequence[Path], video: bool = True, progress: bool = True) -> LandmarkerOutput:
    """mediapipe's pose landmarker over ``images`` (consecutive video frames when ``video``)."""
    from tqdm import tqdm

    python = environment_python()
    if not is_installed():
        raise InputError(
            f"The video stage needs mediapipe 0.10.21, which lives in an environment of its own ({environment_dir()}) "
            f"because it cannot share one with nerfstudio. Make it once with `{INSTALL_HINT}` "
            "(needs the package index), or point HFAVATAR_MEDIAPIPE_ENV at an existing one."
        )
    with tempfile.TemporaryDirectory(prefix="hfavatar-mediapipe-") as work:
        job = Path(work) / "job.json"
        output = Path(work) / "landmarks.npz"
        job.write_text(json.dumps({"images": [str(p) for p in images], "video": video, "output": str(output)}))
        bar = tqdm(total=len(images), desc="landmarks and masks", unit="frame", disable=not progress)
        with tempfile.TemporaryFile(mode="w+") as log:
            process = subprocess.Popen(
                [str(python), str(WORKER), str(job)], stdout=subprocess.PIPE, stderr=log, text=True, env=_quiet_env()
            )
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("progress "):
                    done = int(line.split()[1])
                    bar.update(done - bar.n)
            process.wait()
            bar.close()
            if process.returncode != 0:
                log.seek(0)
                lines = [line for line in log.read().splitlines() if line.strip()]
                raise RuntimeError("mediapipe's pose landmarker failed:\n" + "\n".join(lines[-20:]))
        with np.load(output) as data:
            return LandmarkerOutput(**{key: data[key] for key in data.files})
