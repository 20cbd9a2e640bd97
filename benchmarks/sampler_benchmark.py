"""Benchmark prior-guided inner sampling against uniform sampling in the scene box (prints figures).

    .venv/bin/python benchmarks/sampler_benchmark.py [--rays 4096] [--samples 64] [--threads 1]
        [--sdf-resolutions 64 128]

The body is the free body model posed in a walking-like pose when its asset is installed, otherwise a
crude person merged from trimesh primitives (overlapping, like a body that is not one watertight
mesh). Rays come from a ring of cameras aimed at the body: each aims at a random point of the body's
bounding box padded by 20 cm, so some rays miss the body as pixels outside a mask would.

Reported, for the inner sampler and for uniform sampling between the scene box's near/far with
the same number of samples: the share of samples within 2 cm of the true surface, the share of rays
that get samples near the body (hit the shell), and the recall (share of rays that cross the true
surface at t* with a bin around t*). Also: occupancy build time per frame, sampler time per batch,
and the body-prior SDF grid build time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch
import trimesh

from hfavatar_ns.geometry.prior_sdf import build_sdf_grid
from hfavatar_ns.model_components.inner_sampler import (
    body_box,
    build_occupancy_grid,
    march_occupancy,
    ray_aabb_intersection,
    sample_occupied_segments,
)


def crude_person(max_edge: float = 0.03) -> trimesh.Trimesh:
    """A standing person made of capsules and a sphere (about 1.7 m, arms out), overlapping parts."""

    def capsule(a, b, radius):
        a, b = np.asarray(a, float), np.asarray(b, float)
        axis = b - a
        length = float(np.linalg.norm(axis))
        mesh = trimesh.creation.capsule(height=length, radius=radius, count=[24, 24])
        mesh.apply_transform(trimesh.geometry.align_vectors([0.0, 0.0, 1.0], axis / length))
        mesh.apply_translation((a + b) / 2)
        return mesh

    parts = [
        capsule([0, 0.95, 0], [0, 1.35, 0], 0.15),
        trimesh.creation.icosphere(subdivisions=3, radius=0.1).apply_translation([0, 1.62, 0]),
        capsule([0, 1.45, 0], [0, 1.55, 0], 0.05),
    ]
    for side in (-1, 1):
        parts.append(capsule([0.09 * side, 0.9, 0], [0.1 * side, 0.08, 0.02], 0.07))
        parts.append(capsule([0.2 * side, 1.42, 0], [0.55 * side, 1.12, 0], 0.045))
        parts.append(capsule([0.55 * side, 1.12, 0], [0.72 * side, 0.85, 0.05], 0.04))
    refined = []
    for part in parts:
        vertices, faces = trimesh.remesh.subdivide_to_size(part.vertices, part.faces, max_edge=max_edge)
        refined.append(trimesh.Trimesh(vertices, faces))
    return trimesh.util.concatenate(refined)


def load_body(kind: str) -> tuple[trimesh.Trimesh, str]:
    if kind == "crude":
        return crude_person(), "crude person from trimesh primitives"
    try:
        from hfavatar_ns.body.free_body import FREE_BODY_ASSET, FreeBodyModel

        if FREE_BODY_ASSET.is_file():
            model = FreeBodyModel()
            pose = torch.zeros(1, 72)
            pose[0, 3 * 1] = -0.4  # left hip forward
            pose[0, 3 * 2] = 0.3  # right hip back
            pose[0, 3 * 16 + 2] = -1.0  # shoulders down
            pose[0, 3 * 17 + 2] = 1.0
            posed = model.pose(pose)
            faces = model.canonical().faces
            return trimesh.Trimesh(posed.vertices[0].numpy(), faces.numpy(), process=False), "free body model (posed)"
    except Exception as error:  # the benchmark falls back to the crude person
        print(f"(free body unavailable: {error})")
    return crude_person(), "crude person from trimesh primitives"


def ring_rays(mesh: trimesh.Trimesh, count: int, num_cameras: int, generator: torch.Generator):
    lower, upper = (torch.tensor(b, dtype=torch.float32) for b in mesh.bounds)
    centre = 0.5 * (lower + upper)
    angles = 2 * math.pi * torch.arange(num_cameras) / num_cameras
    cameras = torch.stack(
        [
            centre[0] + 3.0 * torch.cos(angles),
            torch.full_like(angles, float(centre[1])),
            centre[2] + 3.0 * torch.sin(angles),
        ],
        -1,
    )
    which = torch.randint(num_cameras, (count,), generator=generator)
    targets = (lower - 0.2) + (upper - lower + 0.4) * torch.rand(count, 3, generator=generator)
    origins = cameras[which]
    return origins, torch.nn.functional.normalize(targets - origins, dim=-1)


def evaluate(name, starts, ends, origins, directions, mesh, first_hit, hit_true):
    mids = 0.5 * (starts + ends)
    points = (origins[:, None] + mids * directions[:, None]).reshape(-1, 3).numpy()
    import igl  # libigl: exact point-to-triangle distances

    squared, _, _ = igl.point_mesh_squared_distance(
        points.astype(np.float64), mesh.vertices, mesh.faces.astype(np.int64)
    )
    distance = np.sqrt(squared).reshape(starts.shape[:2])
    nonempty = (ends - starts)[..., 0] > 0
    near = (distance < 0.02) & nonempty.numpy()
    rays_with_samples = nonempty.any(dim=1)
    covered = ((starts[..., 0] <= first_hit[:, None]) & (ends[..., 0] >= first_hit[:, None])).any(dim=1)
    print(
        f"  {name:8s} samples within 2 cm of the surface: {near.mean():6.1%} of all, "
        f"{near[hit_true.numpy()].mean():6.1%} on rays that cross the body | rays with samples: "
        f"{rays_with_samples.float().mean():6.1%} | recall of the first surface crossing: "
        f"{covered[hit_true].float().mean():6.1%}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rays", type=int, default=4096)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--march-steps", type=int, default=256)
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--sdf-resolutions", type=int, nargs="*", default=[64, 128])
    parser.add_argument("--body", choices=["free", "crude"], default="free", help="free: the free body if installed")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    generator = torch.Generator().manual_seed(0)

    mesh, source = load_body(args.body)
    vertices = torch.tensor(mesh.vertices, dtype=torch.float32)
    faces = torch.tensor(mesh.faces, dtype=torch.long)
    print(f"body: {source}, {vertices.shape[0]} vertices, {faces.shape[0]} faces")
    print(f"torch threads: {torch.get_num_threads()}")

    # occupancy build (several frames: the body jittered so nothing is cached)
    box = body_box(vertices, args.resolution, args.margin)
    times = []
    for _ in range(8):
        shift = 0.05 * torch.randn(3, generator=generator)
        start = time.perf_counter()
        build_occupancy_grid(vertices + shift, faces, box + shift, args.resolution, args.margin)
        times.append(1e3 * (time.perf_counter() - start))
    occupancy = build_occupancy_grid(vertices, faces, box, args.resolution, args.margin)
    print(
        f"occupancy {args.resolution}^3 (tight cube, side {float(box[1, 0] - box[0, 0]):.2f} m): build "
        f"median {statistics.median(times):.1f} ms (min {min(times):.1f}); "
        f"occupied {occupancy.float().mean():.1%} of voxels"
    )

    origins, directions = ring_rays(mesh, args.rays, 16, generator)
    locations, ray_index, _ = mesh.ray.intersects_location(origins.numpy(), directions.numpy(), multiple_hits=False)
    first_hit = torch.full((args.rays,), float("nan"))
    first_hit[torch.as_tensor(ray_index, dtype=torch.long)] = torch.as_tensor(
        np.einsum("nd,nd->n", locations - origins.numpy()[ray_index], directions.numpy()[ray_index]),
        dtype=torch.float32,
    )
    hit_true = ~torch.isnan(first_hit)
    print(f"rays: {args.rays} from a ring of 16 cameras at 3 m; {hit_true.float().mean():.1%} cross the body")

    # inner sampler (timed: march + bins, grid cached as in training)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        segments = march_occupancy(origins, directions, occupancy, box, args.march_steps)
        starts, ends, _, _ = sample_occupied_segments(segments, args.samples, stratified=True, generator=generator)
        times.append(1e3 * (time.perf_counter() - start))
    print(
        f"inner sampler: median {statistics.median(times):.1f} ms per {args.rays}-ray batch "
        f"({args.samples} samples, {args.march_steps} march steps)"
    )

    # uniform sampling between the scene box's near/far (scene box: the body's box padded by 0.5 m)
    lower, upper = (torch.tensor(b, dtype=torch.float32) for b in mesh.bounds)
    scene = torch.stack([lower - 0.5, upper + 0.5])
    near, far, _ = ray_aabb_intersection(origins, directions, scene)
    near = near.clamp_min(0)
    edges = near[:, None] + (far - near)[:, None] * torch.linspace(0, 1, args.samples + 1)[None]
    uniform_starts, uniform_ends = edges[:, :-1, None], edges[:, 1:, None]

    print("sample quality:")
    evaluate("inner", starts, ends, origins, directions, mesh, first_hit, hit_true)
    evaluate("uniform", uniform_starts, uniform_ends, origins, directions, mesh, first_hit, hit_true)
    print(f"  inner sampler: {segments.hits.float().mean():.1%} of rays hit the shell")

    # body-prior SDF grid (built once per subject)
    padding = 0.1
    for resolution in args.sdf_resolutions:
        start = time.perf_counter()
        build_sdf_grid(vertices, faces, lower - padding, upper + padding, resolution)
        print(f"SDF grid {resolution}^3: built in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
