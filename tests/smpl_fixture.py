"""A structurally valid SMPL model file, made for tests (the real files are licence-gated).

Same keys, shapes and types as the official pkl (6890 vertices, 13776 faces, sparse J_regressor,
uint32 kintree_table, shapedirs (V,3,10), posedirs (V,3,207)), with a crude ellipsoidal body so
projections and masks look like a person-sized blob.
"""

from __future__ import annotations

import pickle
import sys
import types
from pathlib import Path

import numpy as np
import scipy.sparse

from hfavatar_ns.body.skinning import SMPL_PARENTS

# Rest joints roughly where SMPL's neutral T-pose has them (metres, y up, facing +z).
REST_JOINTS = np.array(
    [[0.0, -0.22, 0.02], [0.06, -0.31, 0.0], [-0.06, -0.31, 0.0], [0.0, -0.1, -0.02], [0.11, -0.69, 0.0],
     [-0.11, -0.69, 0.0], [0.0, 0.03, 0.0], [0.07, -1.09, -0.04], [-0.07, -1.09, -0.04], [0.0, 0.09, 0.02],
     [0.12, -1.15, 0.08], [-0.12, -1.15, 0.08], [0.0, 0.29, -0.02], [0.08, 0.2, -0.0], [-0.08, 0.2, -0.0],
     [0.0, 0.37, 0.03], [0.17, 0.23, -0.02], [-0.17, 0.23, -0.02], [0.43, 0.21, -0.03], [-0.43, 0.21, -0.03],
     [0.68, 0.22, -0.03], [-0.68, 0.22, -0.03], [0.77, 0.21, -0.04], [-0.77, 0.21, -0.04]]
)  # fmt: skip


def sphere_topology(rings: int = 84, segments: int = 82):
    """A UV sphere with poles: 2 + rings*segments vertices, 2*segments*rings faces (6890 / 13776)."""
    theta = np.linspace(0, np.pi, rings + 2)[1:-1]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    ring_points = np.stack([np.sin(t) * np.cos(p), np.cos(t), np.sin(t) * np.sin(p)], -1).reshape(-1, 3)
    vertices = np.concatenate([[[0, 1, 0]], ring_points, [[0, -1, 0]]])
    faces = []
    index = lambda r, s: 1 + r * segments + (s % segments)  # noqa: E731
    for s in range(segments):
        faces.append([0, index(0, s + 1), index(0, s)])
        faces.append([len(vertices) - 1, index(rings - 1, s), index(rings - 1, s + 1)])
    for r in range(rings - 1):
        for s in range(segments):
            a, b, c, d = index(r, s), index(r, s + 1), index(r + 1, s), index(r + 1, s + 1)
            faces += [[a, b, d], [a, d, c]]
    return vertices, np.array(faces, dtype=np.uint32)


def synthetic_smpl_arrays(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    unit, faces = sphere_topology()
    v_template = unit * np.array([0.45, 0.85, 0.15]) + np.array([0.0, -0.3, 0.0])
    distances = np.linalg.norm(v_template[:, None] - REST_JOINTS[None], axis=-1)
    weights = np.exp(-((distances / 0.08) ** 2))
    weights[np.arange(len(weights)), distances.argmin(1)] += 1e-3
    weights /= weights.sum(1, keepdims=True)
    regressor = np.zeros((24, len(v_template)))
    for joint in range(24):
        nearest = np.argsort(np.linalg.norm(v_template - REST_JOINTS[joint], axis=1))[:8]
        regressor[joint, nearest] = 1.0 / 8
    # Joints from the regressor sit on the surface; shift the template so they land on REST_JOINTS on average.
    shapedirs = rng.normal(scale=0.01, size=(len(v_template), 3, 10))
    posedirs = rng.normal(scale=0.002, size=(len(v_template), 3, 207))
    kintree = np.array([[4294967295] + list(SMPL_PARENTS[1:]), list(range(24))], dtype=np.uint32)
    return dict(
        v_template=v_template,
        f=faces,
        J_regressor=scipy.sparse.csc_matrix(regressor),
        weights=weights,
        kintree_table=kintree,
        shapedirs=shapedirs,
        posedirs=posedirs,
    )


def write_synthetic_smpl(root: Path, gender: str = "neutral", layout: str = "smplx", seed: int = 0) -> Path:
    """Write a synthetic SMPL pkl under ``root`` in one of the accepted layouts; return the file."""
    paths = {
        "smplx": root / "smpl" / f"SMPL_{gender.upper()}.pkl",
        "flat": root / f"SMPL_{gender.upper()}.pkl",
        "arah": root / "smpl" / gender / "model.pkl",
    }
    path = paths[layout]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(synthetic_smpl_arrays(seed), handle, protocol=2)
    return path


def write_chumpy_smpl(root: Path, gender: str = "neutral") -> Path:
    """An SMPL pkl whose arrays are chumpy objects, like the official downloads (chumpy not needed)."""
    module = types.ModuleType("chumpy.ch")

    class Ch:  # a stand-in with chumpy's module path, so the pickle names chumpy.ch.Ch
        def __init__(self, value):
            self.x = value

    Ch.__module__ = "chumpy.ch"
    Ch.__qualname__ = "Ch"
    module.Ch = Ch
    sys.modules["chumpy"] = types.ModuleType("chumpy")
    sys.modules["chumpy.ch"] = module
    try:
        arrays = synthetic_smpl_arrays()
        arrays["v_template"] = Ch(arrays["v_template"])
        arrays["shapedirs"] = Ch(arrays["shapedirs"])
        path = root / "smpl" / f"SMPL_{gender.upper()}.pkl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            pickle.dump(arrays, handle, protocol=2)
    finally:
        del sys.modules["chumpy.ch"], sys.modules["chumpy"]
    return path
