"""``hfavatar-check``: is my capture consistent?

Reads a raw ZJU-MoCap-layout capture the way training will (same reader, same cameras, same body
model) and measures how well its parts agree:

* files and counts (the reader raises a clear error for anything missing);
* the posed body, ray-cast through the parsed nerfstudio cameras (lens distortion included), against
  the foreground mask: IoU per camera, and the share of the body's pixels inside the mask (clothes
  and hair lower the IoU but not that share; wrong calibration lowers both);
* the posed body vertices against the capture's ``new_vertices/`` (or ``vertices/``): error in mm;
* overlay pictures (mask outline over the image, posed body tinted) for a person to look at.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional

import numpy as np
import torch
import tyro

from hfavatar_ns.errors import exit_on_input_error


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
    from dataparsers.zju_mocap.capture import read_capture, read_capture_mask
    from hfavatar_ns.body.factory import capture_body_model_choice, make_body_model
    from hfavatar_ns.body.posing import pose_in_batches

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

    frame_rows = evenly_spaced(num_frames, config.frames_per_camera)
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
                mask = read_capture_mask(capture, frame, camera).astype(np.uint8)
                mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST).astype(bool)
                intersection += np.logical_and(mask, silhouette).sum()
                union += np.logical_or(mask, silhouette).sum()
                body_pixels += silhouette.sum()
                if i == len(frame_rows) // 2:
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
    for name, iou, share in zip(capture.camera_names, ious, inside):
        table.add_row(name, f"[{'green' if iou >= 0.9 else 'yellow'}]{iou:.4f}", f"[{'green' if share >= 0.95 else 'red'}]{share:.4f}")
    console.print(table)
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
    if bad:
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
    }
    if config.json is not None:
        config.json.parent.mkdir(parents=True, exist_ok=True)
        config.json.write_text(json.dumps(report, indent=2))
        console.print(f"report: {config.json}")
    return report


@exit_on_input_error
def main() -> None:
    check_capture(tyro.cli(CheckCaptureConfig))


if __name__ == "__main__":
    main()
