"""``hfavatar-check``: is my capture consistent?

Reads a raw ZJU-MoCap-layout capture the way training will (same reader, same cameras, same body
model) and measures how well its parts agree:

* files and counts (the reader raises a clear error for anything missing);
* the posed body, ray-cast through the parsed nerfstudio cameras (lens distortion included), against
  the foreground mask: IoU per camera, and the share of the body's pixels inside the mask (clothes
  and hair lower the IoU but not that share; wrong calibration lowers both);
* the posed body vertices against the capture's ``new_vertices/`` (or ``vertices/``): error in mm;
* overlay pictures (mask outline over the image, posed body tinted) for a person to look at;
* when the capture holds its ground truth (``hfavatar-synth`` writes it): the written fits against
  ``ground_truth/fits/`` on every frame (joint and ``Rh`` angles, ``Th`` and posed-vertex distances), and
  the checked masks against ``ground_truth/mask_cihp/`` (IoU per camera). Real captures print nothing more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional

import numpy as np
import torch
import tyro

from hfavatar_ns.errors import InputError, exit_on_input_error


@dataclass
class CheckCaptureConfig:
    """Check a ZJU-MoCap-layout capture: masks vs the posed body, fitted vertices, overlays."""

    data: tyro.conf.Positional[Path]
    """The capture folder (holding annots.npy)."""
    body_model: Literal["auto", "free", "smpl"] = "auto"
    """Body model of the parameters; auto: the capture's body_model.json, else SMPL."""
    body_model_dir: Optional[Path] = None
    """Folder with the SMPL model files (smpl/SMPL_NEUTRAL.pkl, ...), for --body-model smpl."""
    gender: Optional[Literal["neutral", "male", "female"]] = None
    """SMPL gender; default: the capture's body_model.json, else neutral."""
    params: Literal["auto", "new_params", "params"] = "auto"
    """Parameter folder to check."""
    masks: Literal["auto", "mask_cihp", "mask", "union"] = "auto"
    """Mask folder to check."""
    frames_per_camera: int = 4
    """Frames checked per camera (evenly spaced over the capture)."""
    resolution: int = 256
    """Long side in pixels at which masks and silhouettes are compared."""
    output_dir: Optional[Path] = None
    """Where overlay pictures go (default: ./hfavatar-check/<capture name>)."""
    json: Optional[Path] = None
    """Also write the figures to this JSON file."""


def evenly_spaced(count: int, wanted: int) -> List[int]:
    """Up to ``wanted`` indices spread evenly over ``range(count)``, ends included."""
    if count <= wanted:
        return list(range(count))
    return sorted({int(round(x)) for x in np.linspace(0, count - 1, wanted)})


def mask_iou(first: np.ndarray, second: np.ndarray) -> float:
    union = np.logical_or(first, second).sum()
    return float(np.logical_and(first, second).sum() / union) if union else 1.0


def true_mask_path(capture, frame: int, camera: int) -> Path:
    """hfavatar-synth's exact mask of (frame row, camera row): the image's path under ``ground_truth/mask_cihp/``."""
    relative = capture.image_paths[frame][camera].relative_to(capture.root).with_suffix(".png")
    return capture.root / "ground_truth" / "mask_cihp" / relative


def render_silhouette(vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Which rays hit the mesh (embree ray casting: real occlusion-free coverage test)."""
    import trimesh

    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    shape = origins.shape[:-1]
    hits = mesh.ray.intersects_any(origins.reshape(-1, 3), directions.reshape(-1, 3))
    return hits.reshape(shape)


def overlay_picture(image: np.ndarray, mask: np.ndarray, silhouette: np.ndarray, label: str) -> np.ndarray:
    """The image with the body silhouette tinted red and the mask's outline in green."""
    import cv2

    picture = image.astype(np.float32)
    picture[silhouette] = 0.55 * picture[silhouette] + 0.45 * np.array([255.0, 40.0, 40.0])
    picture = picture.clip(0, 255).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, (40, 255, 40), 1)
    cv2.putText(picture, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return picture


def contact_sheet(pictures: List[np.ndarray], columns: int = 6) -> np.ndarray:
    height = max(p.shape[0] for p in pictures)
    width = max(p.shape[1] for p in pictures)
    rows = (len(pictures) + columns - 1) // columns
    sheet = np.zeros((rows * height, min(columns, len(pictures)) * width, 3), np.uint8)
    for i, picture in enumerate(pictures):
        r, c = divmod(i, columns)
        sheet[r * height : r * height + picture.shape[0], c * width : c * width + picture.shape[1]] = picture
    return sheet


def check_capture(config: CheckCaptureConfig) -> Dict:
    """Run every check and return the report (also printed, and written as JSON when asked)."""
    import cv2
    from rich.console import Console
    from rich.table import Table
    from tqdm import tqdm

    from dataparsers.zju_mocap.camera_conversion import make_cameras
    from dataparsers.zju_mocap.capture import read_capture, read_capture_mask, read_mask
    from hfavatar_ns.body.factory import capture_body_model_choice, make_body_model
    from hfavatar_ns.body.posing import pose_in_batches
    from hfavatar_ns.evaluation.fit_errors import fit_errors, read_true_fits

    console = Console()
    capture = read_capture(config.data, params=config.params, masks=config.masks)
    kind, gender = capture_body_model_choice(config.data, config.body_model, config.gender or "neutral")
    body = make_body_model(kind, config.body_model_dir, gender)
    num_frames, num_cameras = len(capture.frame_indices), len(capture.camera_names)
    console.print(
        f"[bold]{config.data}[/bold]: {num_cameras} cameras, {num_frames} frames, params from "
        f"{capture.params_dir.name}/, masks from {capture.mask_dir}/, body model {body.name}"
    )

    params = {key: torch.as_tensor(value) for key, value in capture.params.items()}
    posed = pose_in_batches(body, params["poses"], params["shapes"], params["Rh"], params["Th"])
    posed_vertices = posed.vertices.numpy()
    faces = body.canonical().faces.numpy()

    vertex_error_mm = vertex_error_mm_mean = None
    if capture.vertices is not None:
        if capture.vertices.shape[1:] != posed_vertices.shape[1:]:
            console.print(
                f"[red]The fitted vertices hold {capture.vertices.shape[1]} vertices per frame but the "
                f"{body.name} body model has {posed_vertices.shape[1]}: wrong body model?[/red]"
            )
        else:
            errors = np.linalg.norm(posed_vertices - capture.vertices, axis=-1) * 1000.0
            vertex_error_mm, vertex_error_mm_mean = float(errors.max()), float(errors.mean())

    # Ground truth (hfavatar-synth): fit files are named like the capture's parameter files.
    truth_fits_dir = capture.root / "ground_truth" / "fits"
    true_fits = read_true_fits(capture.root, capture.param_file_indices) if truth_fits_dir.is_dir() else None
    errors_vs_truth = fit_errors(body, params, true_fits) if true_fits is not None else None

    frame_rows = evenly_spaced(num_frames, config.frames_per_camera)
    true_masks = None
    if (capture.root / "ground_truth" / "mask_cihp").is_dir():
        checked = [(f, c) for c in range(num_cameras) for f in frame_rows]
        if all(true_mask_path(capture, f, c).is_file() for f, c in checked):
            true_masks = {camera: [] for camera in range(num_cameras)}
        else:
            missing = sum(not true_mask_path(capture, f, c).is_file() for f, c in checked)
            console.print(
                f"[yellow]{capture.root / 'ground_truth' / 'mask_cihp'} lacks {missing} of the {len(checked)} "
                "checked masks:[/yellow] the masks are not compared with the truth."
            )
    output_dir = config.output_dir or Path("hfavatar-check") / Path(config.data).resolve().name
    output_dir.mkdir(parents=True, exist_ok=True)
    ious: List[float] = []
    inside: List[float] = []
    pictures = []
    with tqdm(total=num_cameras * len(frame_rows), desc="mask vs posed body", unit="image") as progress:
        for camera in range(num_cameras):
            full_height, full_width = capture.image_size(camera)
            scale = config.resolution / max(full_height, full_width)
            size = (max(1, round(full_height * scale)), max(1, round(full_width * scale)))
            cameras = make_cameras(capture, frame_rows, [camera] * len(frame_rows), image_sizes=[size] * len(frame_rows))
            intersection = union = body_pixels = 0
            for i, frame in enumerate(frame_rows):
                rays = cameras.generate_rays(camera_indices=i)
                silhouette = render_silhouette(
                    posed_vertices[frame], faces, rays.origins.numpy(), rays.directions.numpy()
                )
                mask = read_capture_mask(capture, frame, camera)
                if true_masks is not None:
                    truth_path = true_mask_path(capture, frame, camera)
                    truth = read_mask(truth_path)
                    if truth.shape != mask.shape:
                        raise InputError(
                            f"The true mask {truth_path} is {truth.shape[1]}x{truth.shape[0]} pixels but the "
                            f"checked mask {capture.mask_sources(frame, camera)[0]} is {mask.shape[1]}x{mask.shape[0]}."
                        )
                    true_masks[camera].append(mask_iou(mask, truth))
                mask = mask.astype(np.uint8)
                mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
                intersection += np.logical_and(mask, silhouette).sum()
                union += np.logical_or(mask, silhouette).sum()
                body_pixels += silhouette.sum()
                if i == len(frame_rows) // 2 or num_cameras < 3:  # few cameras: a picture of every checked frame
                    image = cv2.imread(str(capture.image_paths[frame][camera]))[..., ::-1]
                    image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                    label = f"{capture.camera_names[camera]} f{capture.frame_indices[frame]} IoU {mask_iou(mask, silhouette):.3f}"
                    pictures.append(overlay_picture(image, mask, silhouette, label))
                progress.update(1)
            ious.append(float(intersection / union) if union else 1.0)
            inside.append(float(intersection / body_pixels) if body_pixels else 0.0)

    sheet_path = output_dir / "overlays.png"
    cv2.imwrite(str(sheet_path), contact_sheet(pictures)[..., ::-1])

    table = Table(title="Posed body vs foreground mask")
    table.add_column("camera")
    table.add_column("mask IoU", justify="right")
    table.add_column("body inside mask", justify="right")
    mask_ious_vs_truth = None
    if true_masks is not None:
        mask_ious_vs_truth = [float(np.mean(true_masks[camera])) for camera in range(num_cameras)]
        table.add_column("mask IoU vs true mask", justify="right")
    for camera, (name, iou, share) in enumerate(zip(capture.camera_names, ious, inside)):
        cells = [
            name,
            f"[{'green' if iou >= 0.9 else 'yellow'}]{iou:.4f}",
            f"[{'green' if share >= 0.95 else 'red'}]{share:.4f}",
        ]
        if mask_ious_vs_truth is not None:
            cells.append(f"{mask_ious_vs_truth[camera]:.4f}")
        table.add_row(*cells)
    console.print(table)
    mask_iou_vs_truth = None
    if true_masks is not None:
        overall = float(np.mean([iou for camera in range(num_cameras) for iou in true_masks[camera]]))
        mask_iou_vs_truth = {"per_camera": mask_ious_vs_truth, "mean": overall}
        console.print(
            f"{capture.mask_dir} masks vs ground_truth/mask_cihp/: mean IoU {overall:.4f} over "
            f"{num_cameras * len(frame_rows)} checked images"
        )
    if errors_vs_truth is not None:
        console.print(
            f"{capture.params_dir.name}/ vs ground_truth/fits/ ({errors_vs_truth.frames} frames): joints "
            f"{errors_vs_truth.joint_angle_deg:.2f} deg, orientation {errors_vs_truth.global_rotation_deg:.2f} deg, "
            f"Th {errors_vs_truth.translation_mm:.1f} mm, posed vertices mean {errors_vs_truth.vertex_mm:.1f} mm "
            f"(max {errors_vs_truth.vertex_max_mm:.1f} mm)"
        )
    elif truth_fits_dir.is_dir():
        console.print(
            f"[yellow]{truth_fits_dir} lacks some frames' fits:[/yellow] the fits are not compared with the truth."
        )
    if vertex_error_mm is not None:
        colour = "green" if vertex_error_mm < 1.0 else "red"
        console.print(
            f"posed {body.name} vertices vs {capture.params_dir.name.replace('params', 'vertices')}/: "
            f"[{colour}]max {vertex_error_mm:.3f} mm[/{colour}], mean {vertex_error_mm_mean:.3f} mm"
        )
    else:
        console.print("no fitted vertices (new_vertices/ or vertices/) to compare with")
    # Loose clothes and hair make the mask larger than the body (lower IoU, harmless); the body
    # sticking out of the mask is what wrong calibration, units or parameters cause.
    bad = [name for name, share in zip(capture.camera_names, inside) if share < 0.95]
    if bad and _made_from_video(config.data):
        console.print(
            f"[yellow]The fitted body leaves the mask in places on {', '.join(bad)}[/yellow]: the fits are "
            "estimates from one camera (training refines them); look at the overlays for frames that are far off."
        )
    elif bad:
        console.print(
            f"[red]The posed body leaves the mask on {', '.join(bad)}[/red]: check that camera's calibration "
            "(T in mm?), the masks, and the body model/gender; look at the overlays."
        )
    elif min(ious, default=1.0) < 0.9:
        console.print(
            "[yellow]The body lies inside the masks but covers less than 90% of them on some cameras:[/yellow] "
            "expected for loose clothing or hair; otherwise look at the overlays."
        )
    console.print(f"overlays: {sheet_path}")

    report = {
        "data": str(config.data),
        "body_model": body.name,
        "num_cameras": num_cameras,
        "num_frames": num_frames,
        "camera_names": capture.camera_names,
        "frames_checked": [capture.frame_indices[f] for f in frame_rows],
        "mask_iou_per_camera": ious,
        "mask_iou_min": min(ious) if ious else None,
        "body_inside_mask_per_camera": inside,
        "vertex_error_mm": vertex_error_mm,
        "vertex_error_mm_mean": vertex_error_mm_mean,
        "overlays": str(sheet_path),
        "fit_errors_vs_truth": errors_vs_truth.as_dict() if errors_vs_truth is not None else None,
        "mask_iou_vs_truth": mask_iou_vs_truth,
    }
    if config.json is not None:
        config.json.parent.mkdir(parents=True, exist_ok=True)
        config.json.write_text(json.dumps(report, indent=2))
        console.print(f"report: {config.json}")
    return report


def _made_from_video(capture: Path) -> bool:
    try:
        return json.loads((capture / "body_model.json").read_text()).get("generator") == "hfavatar-process-video"
    except (OSError, ValueError, AttributeError):
        return False


@exit_on_input_error
def main() -> None:
    check_capture(tyro.cli(CheckCaptureConfig))


if __name__ == "__main__":
    main()
