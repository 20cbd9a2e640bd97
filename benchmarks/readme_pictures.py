"""The README's pictures, from a trained run on a synthetic capture (which has ground-truth meshes).

* ``novel_views.png``: for a few training frames, a held-out camera's photo, the avatar's render and
  the body prior's render (the same model with its SDF residual off), top to bottom.
* ``mesh_vs_truth.png``: the ground-truth surface, the avatar's posed mesh and the posed body model at
  one training frame, clay-shaded through a held-out camera.

    python benchmarks/readme_pictures.py --load-config outputs/.../config.yml --output-dir docs/images
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
    args = parser.parse_args()

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
        for index in picks:
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
    strip = np.concatenate(columns, axis=1)
    cv2.imwrite(str(args.output_dir / "novel_views.png"), strip[..., ::-1])

    row = int(frame_of_image[picks[0]])
    frame_id = int(model.body.frame_ids[row])
    truth = ground_truth_mesh(avatar.capture_root, frame_id)
    meshes = [truth, posed_mesh(model, row, args.mesh_resolution, progress=True), body_mesh(model, row)]
    from hfavatar_ns.synth.writer import camera_name

    annots = np.load(avatar.capture_root / "annots.npy", allow_pickle=True).item()["cams"]
    folder = Path(dataset.image_filenames[picks[0]]).parent.name
    camera_index = next(c for c in range(len(annots["K"])) if camera_name(c) == folder)
    K, R = np.asarray(annots["K"][camera_index], np.float64), np.asarray(annots["R"][camera_index])
    T, D = np.asarray(annots["T"][camera_index]) / 1000.0, np.asarray(annots["D"][camera_index])
    native_width = cv2.imread(str(dataset.image_filenames[picks[0]])).shape[1]
    size = 384
    K = K.copy()
    K[:2] *= size / native_width
    pictures = [clay_render(m, K, R, T, D, size, size) for m in meshes]
    names = [f"ground truth, frame {frame_id}", "avatar", "body prior"]
    cv2.imwrite(
        str(args.output_dir / "mesh_vs_truth.png"),
        np.concatenate([label(p, n) for p, n in zip(pictures, names)], axis=1)[..., ::-1],
    )
    print(f"wrote {args.output_dir / 'novel_views.png'} and {args.output_dir / 'mesh_vs_truth.png'}")


if __name__ == "__main__":
    main()
