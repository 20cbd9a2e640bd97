"""Scores hfavatar-process-video against the truth on a synthetic one-camera video.

Makes the video with ``hfavatar-synth --preset mono --video`` (unless --capture names one already made),
processes it, and prints per stage: processing seconds, mask IoU against the true masks, the fitted
body's 2D joint error against the true joints' projections (px), the root-aligned 3D joint error (mm,
pelvis on pelvis, as monocular pose papers report it) and the posed-body vertex error (mm, absolute and
root-aligned). The camera's true focal length is given to the processing unless --estimate-focal.

``--train-steps N`` then trains ``hfavatar-lite`` on the processed capture (quality_benchmark.py) and
scores it on the truth brought into the processed capture's frame (its camera at the origin): the other
cameras of the synthetic capture give novel views, the held-out last frames novel poses (with the
processed, estimated fits, as a user has them), and the true clothed meshes the geometry; beside the
fitted body alone.

    python benchmarks/video_benchmark.py --capture data/video540/cap --video data/video540/walk.mp4
    python benchmarks/video_benchmark.py --train-steps 800
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capture", type=Path, default=Path("data/video540/cap"), help="the synthetic capture (truth)")
    parser.add_argument("--video", type=Path, default=Path("data/video540/walk.mp4"), help="its first camera as a video")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--resolution", type=int, default=540)
    parser.add_argument("--output", type=Path, default=Path("data/video540/processed"))
    parser.add_argument("--estimate-focal", action="store_true", help="do not tell the processing the focal length")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--train-steps", type=int, default=0, help="also train hfavatar-lite this many steps and score it")
    parser.add_argument("--max-images", type=int, default=4, help="held-out images scored per split")
    args = parser.parse_args()

    from hfavatar_ns.body.factory import make_body_model
    from hfavatar_ns.video.body_fit import project
    from hfavatar_ns.video.landmarks import OBSERVED_JOINTS
    from hfavatar_ns.video.masks import mask_iou
    from hfavatar_ns.video.pipeline import ProcessVideoConfig, process_video

    if not (args.capture / "annots.npy").exists() or not args.video.exists():
        # The mono preset's five cameras: the video is camera 0's, the other four score novel views.
        command = [sys.executable, "-m", "hfavatar_ns.synth.cli", str(args.capture), "--preset", "mono",
                   "--frames", str(args.frames), "--resolution", str(args.resolution), "--video", str(args.video),
                   "--video-fps", "15", "--overwrite"]
        subprocess.run(command, check=True)
    annots = np.load(args.capture / "annots.npy", allow_pickle=True).item()
    K_true = np.array(annots["cams"]["K"][0], np.float32)
    R = torch.tensor(np.array(annots["cams"]["R"][0]), dtype=torch.float32)
    T = torch.tensor(np.array(annots["cams"]["T"][0]), dtype=torch.float32).reshape(3) / 1000.0

    started = time.time()
    report = process_video(ProcessVideoConfig(
        input=args.video, output=args.output, num_frames=None, long_side=None,
        focal_px=None if args.estimate_focal else float(K_true[0, 0]), overwrite=True,
    ))
    seconds = time.time() - started
    kept = report["source_frame_of_capture_frame"]

    body = make_body_model("free")
    def load(folder: Path, frames):
        params = [np.load(folder / f"{f}.npy", allow_pickle=True).item() for f in frames]
        stack = lambda key: torch.tensor(np.concatenate([p[key] for p in params]), dtype=torch.float32)  # noqa: E731
        return body.pose(stack("poses"), stack("shapes"), stack("Rh"), stack("Th"))

    truth = load(args.capture / "new_params", kept)
    fitted = load(args.output / "new_params", range(len(kept)))
    true_joints = truth.joints @ R.T + T  # into the camera frame, which is the processed capture's world
    true_vertices = truth.vertices @ R.T + T
    K = torch.from_numpy(K_true)
    observed = list(OBSERVED_JOINTS)
    joint_px = (project(fitted.joints[:, observed], K) - project(true_joints[:, observed], K)).norm(dim=-1).mean()
    centred = lambda x, j: x - j[:, :1]  # noqa: E731
    root_aligned = (centred(fitted.joints, fitted.joints) - centred(true_joints, true_joints)).norm(dim=-1)
    vertex = (fitted.vertices - true_vertices).norm(dim=-1).mean()
    vertex_aligned = (centred(fitted.vertices, fitted.joints) - centred(true_vertices, true_joints)).norm(dim=-1).mean()

    masks = np.stack([np.array(Image.open(args.output / "mask_cihp/Camera_B1" / f"{i:06d}.png")) > 0 for i in range(len(kept))])
    names = [annots["ims"][f]["ims"][0] for f in kept]
    true_masks = np.stack([np.array(Image.open(args.capture / "mask_cihp" / name.replace(".jpg", ".png"))) > 0 for name in names])
    iou = mask_iou(masks, true_masks)

    figures = {
        "frames": len(kept),
        "image_size": report["image_size"],
        "processing_s": round(seconds, 1),
        "mask_iou_mean": round(float(iou.mean()), 4),
        "mask_iou_min": round(float(iou.min()), 4),
        "joint_2d_px_mean": round(float(joint_px), 2),
        "root_aligned_joint_mm_mean": round(float(root_aligned.mean() * 1000), 1),
        "root_aligned_observed_joint_mm_mean": round(float(root_aligned[:, observed].mean() * 1000), 1),
        "vertex_mm_mean": round(float(vertex * 1000), 1),
        "root_aligned_vertex_mm_mean": round(float(vertex_aligned * 1000), 1),
        "depth_error_mm_mean": round(float((fitted.joints[:, 0, 2] - true_joints[:, 0, 2]).mean() * 1000), 1),
        "focal": report["focal_length_source"],
    }
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    sys.stdout.flush()
    if args.train_steps > 0:
        if kept != list(range(len(annots["ims"]))):
            raise SystemExit("The processing dropped frames; the avatar can only be scored when every frame is kept.")
        evaluation = truth_in_capture_frame(args.capture, args.output, args.output.parent / "truth_in_camera_frame")
        quality_json = args.output.parent / "quality.json"
        command = [sys.executable, str(Path(__file__).with_name("quality_benchmark.py")), "--data", str(args.output),
                   "--eval-data", str(evaluation), "--steps", str(args.train_steps), "--max-images", str(args.max_images),
                   "--output", str(args.output.parent / "runs"), "--json", str(quality_json)]
        subprocess.run(command, check=True)
        quality = json.loads(quality_json.read_text())
        figures["avatar"], figures["fitted_body_alone"] = quality["avatar"], quality["body_prior"]
        figures["train_seconds"] = quality["train_seconds"]
        if args.json is not None:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps({k: figures[k] for k in ("avatar", "fitted_body_alone", "train_seconds")}, indent=2))


def truth_in_capture_frame(truth: Path, processed: Path, output: Path) -> Path:
    """The synthetic capture re-expressed in the processed capture's frame (camera 0 = world), with the
    processed capture's fits, split and body model: what the avatar trained on it is scored against."""
    import shutil

    import trimesh

    from hfavatar_ns.body.skinning import axis_angle_to_matrix
    from hfavatar_ns.video.body_fit import matrix_to_axis_angle

    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    annots = np.load(truth / "annots.npy", allow_pickle=True).item()
    cams = annots["cams"]
    R0, T0 = np.array(cams["R"][0], np.float64), np.array(cams["T"][0], np.float64).reshape(3, 1)
    new_R = [np.array(R, np.float64) @ R0.T for R in cams["R"]]
    new_T = [np.array(T, np.float64).reshape(3, 1) - R @ T0 for R, T in zip(new_R, cams["T"])]  # mm
    np.save(output / "annots.npy", {"cams": {**cams, "R": new_R, "T": new_T}, "ims": annots["ims"]})
    for folder in sorted(truth.glob("Camera_B*")) + [truth / "mask_cihp"]:
        (output / folder.name).symlink_to(folder.resolve())
    for name in ("new_params", "new_vertices", "split.json", "body_model.json"):
        source = processed / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, output / name)
    rotation, shift = torch.tensor(R0, dtype=torch.float32), torch.tensor(T0[:, 0] / 1000.0, dtype=torch.float32)
    (output / "ground_truth" / "posed").mkdir(parents=True)
    (output / "ground_truth" / "fits").mkdir()
    for path in sorted((truth / "ground_truth" / "posed").glob("*.ply")):
        mesh = trimesh.load(path, process=False)
        mesh.vertices = mesh.vertices @ R0.T + T0[:, 0] / 1000.0
        mesh.export(output / "ground_truth" / "posed" / path.name)
    for path in sorted((truth / "new_params").glob("*.npy")):
        fit = np.load(path, allow_pickle=True).item()
        Rh = matrix_to_axis_angle(rotation @ axis_angle_to_matrix(torch.as_tensor(fit["Rh"], dtype=torch.float32)))
        Th = torch.as_tensor(fit["Th"], dtype=torch.float32) @ rotation.T + shift
        np.save(output / "ground_truth" / "fits" / path.name, {**fit, "Rh": Rh.numpy(), "Th": Th.numpy()})
    return output


if __name__ == "__main__":
    main()
