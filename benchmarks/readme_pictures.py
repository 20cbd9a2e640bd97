"""The README's pictures, from a trained run on a synthetic capture (which has ground-truth meshes).

* ``novel_views.png``: for a few training frames, a held-out camera's photo, the avatar's render and
  the body prior's render (the same model with its SDF residual off), top to bottom.
* ``mesh_vs_truth.png``: the ground-truth surface, the avatar's posed mesh and the posed body model at
  one training frame, clay-shaded through a held-out camera.
* ``mesh_torso_closeup.png`` (``--pictures closeup``): the same three meshes, the torso only, seen through the
  same camera zoomed in: where clothing folds show or do not. The avatar is meshed over the torso's box
  only, with the cells a ``--mesh-resolution`` mesh of the whole body would have (512 takes minutes on a
  CPU this way, rather than the better part of an hour).

    python benchmarks/readme_pictures.py --load-config outputs/.../config.yml --output-dir docs/images
    python benchmarks/readme_pictures.py --load-config ... --mesh-resolution 512 --pictures closeup
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch


def label(picture: np.ndarray, text: str) -> np.ndarray:
    picture = picture.copy()
    cv2.putText(picture, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return picture


def zoomed_on(
    K: np.ndarray, R: np.ndarray, T: np.ndarray, centre: np.ndarray, extent: float, size: int
) -> np.ndarray:
    """Intrinsics of a ``size``-pixel square view from the same pose as ``K, R, T`` (T in metres), centred on
    the world point ``centre``, with ``extent`` metres there filling the picture's height."""
    in_camera = R @ centre + T.reshape(3)
    focal = size * in_camera[2] / extent
    zoomed = np.array([[focal, 0.0, 0.0], [0.0, focal, 0.0], [0.0, 0.0, 1.0]])
    zoomed[0, 2] = size / 2 - focal * in_camera[0] / in_camera[2]
    zoomed[1, 2] = size / 2 - focal * in_camera[1] / in_camera[2]
    return zoomed


TORSO_JOINTS = (3, 6, 9)
"""SMPL's spine joints: vertices whose strongest bone is one of these make up the torso."""


def main() -> None:
    from nerfstudio.data.datasets.base_dataset import InputDataset

    from hfavatar_ns.evaluation.avatar_eval import body_mesh, body_prior_only, ground_truth_mesh, posed_mesh
    from hfavatar_ns.evaluation.mesh_pictures import clay_render
    from hfavatar_ns.scripts.avatar_run import load_avatar_run

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--load-config", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, default=Path("docs/images"))
    parser.add_argument("--frames", type=int, default=4, help="training frames shown in novel_views.png")
    parser.add_argument("--mesh-resolution", type=int, default=256)
    parser.add_argument("--pictures", default="views,meshes",
                        help="comma-separated, of: views (novel_views.png), meshes (mesh_vs_truth.png), "
                        "closeup (mesh_torso_closeup.png)")
    args = parser.parse_args()
    wanted = {name.strip() for name in args.pictures.split(",") if name.strip()}
    unknown = wanted - {"views", "meshes", "closeup"}
    if unknown or not wanted:
        parser.error(f"--pictures takes views, meshes and closeup, comma-separated; got {args.pictures!r}")

    avatar = load_avatar_run(args.load_config)
    model = avatar.model
    dataparser = avatar.config.pipeline.datamanager.dataparser.setup()
    dataparser.config.test_split = "novel_view"
    dataset = InputDataset(dataparser.get_dataparser_outputs(split="test"))
    frame_of_image = dataset.cameras.metadata["frame_idx"].reshape(-1).long()
    camera_of_image = dataset.cameras.camera_to_worlds[:, :3, 3]
    first_camera = camera_of_image[0]
    same_camera = [i for i in range(len(dataset)) if torch.allclose(camera_of_image[i], first_camera)]
    picks = [same_camera[int(round(k))] for k in np.linspace(0, len(same_camera) - 1, args.frames)]

    columns = []
    with torch.no_grad():
        for index in picks if "views" in wanted else []:
            camera = dataset.cameras[index : index + 1].to(model.device)
            photo, _ = model.target_rgb(dataset[index], model.device)
            rendered = model.get_outputs_for_camera(camera)["rgb"]
            with body_prior_only(model):
                prior = model.get_outputs_for_camera(camera)["rgb"]
            tiles = [(t.clamp(0, 1).cpu().numpy() * 255).astype(np.uint8) for t in (photo, rendered, prior)]
            frame = int(model.body.frame_ids[int(frame_of_image[index])])
            names = [f"photo, frame {frame}", "avatar", "body prior"]
            columns.append(np.concatenate([label(t, n) for t, n in zip(tiles, names)], axis=0))
    args.output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if columns:
        cv2.imwrite(str(args.output_dir / "novel_views.png"), np.concatenate(columns, axis=1)[..., ::-1])
        written.append(args.output_dir / "novel_views.png")

    row = int(frame_of_image[picks[0]])
    frame_id = int(model.body.frame_ids[row])
    truth, body = ground_truth_mesh(avatar.capture_root, frame_id), body_mesh(model, row)
    from hfavatar_ns.synth.writer import camera_name

    annots = np.load(avatar.capture_root / "annots.npy", allow_pickle=True).item()["cams"]
    folder = Path(dataset.image_filenames[picks[0]]).parent.name
    camera_index = next(c for c in range(len(annots["K"])) if camera_name(c) == folder)
    K, R = np.asarray(annots["K"][camera_index], np.float64), np.asarray(annots["R"][camera_index])
    T, D = np.asarray(annots["T"][camera_index]) / 1000.0, np.asarray(annots["D"][camera_index])
    native_width = cv2.imread(str(dataset.image_filenames[picks[0]])).shape[1]
    size = 384
    whole = K.copy()
    whole[:2] *= size / native_width
    names = [f"ground truth, frame {frame_id}", f"avatar, marching cubes {args.mesh_resolution}", "body prior"]
    views = []
    if "meshes" in wanted:
        views.append(("mesh_vs_truth.png", whole, D, size, posed_mesh(model, row, args.mesh_resolution, progress=True)))
    if "closeup" in wanted:
        vertices = model.body.posed_vertices(row).cpu().numpy()
        strongest = model.body.skinning_weights.argmax(dim=-1).cpu().numpy()
        torso = vertices[np.isin(strongest, TORSO_JOINTS)]
        centre = (torso.min(axis=0) + torso.max(axis=0)) / 2
        extent = float((torso.max(axis=0) - torso.min(axis=0)).max()) * 1.1
        # A little more than the picture shows, so the box's cut faces stay out of it.
        view_box = torch.tensor(np.stack([centre - 0.6 * extent, centre + 0.6 * extent]), dtype=torch.float32)
        whole_box = model.posed_bounds(row).cpu()
        cell = float((whole_box[1] - whole_box[0]).max()) / (args.mesh_resolution - 1)
        avatar_mesh = posed_mesh(model, row, int(np.ceil(1.2 * extent / cell)) + 1, progress=True, bounds=view_box)
        # A crop this small is not worth the lens distortion; the zoomed view is a pinhole.
        views.append(("mesh_torso_closeup.png", zoomed_on(K, R, T, centre, extent, 512), np.zeros(5), 512, avatar_mesh))
    for name, intrinsics, distortion, picture_size, avatar_mesh in views:
        meshes = [truth, avatar_mesh, body]
        pictures = [clay_render(m, intrinsics, R, T, distortion, picture_size, picture_size) for m in meshes]
        cv2.imwrite(
            str(args.output_dir / name),
            np.concatenate([label(p, n) for p, n in zip(pictures, names)], axis=1)[..., ::-1],
        )
        written.append(args.output_dir / name)
    print("wrote " + ", ".join(str(path) for path in written))


if __name__ == "__main__":
    main()
