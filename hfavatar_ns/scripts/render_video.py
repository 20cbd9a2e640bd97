"""``hfavatar-render``: videos of a trained avatar.

* ``orbit``: a camera circling the avatar posed at one capture frame (``--frame-id``), looking at the
  posed body's centre, at the height and distance of the capture's first camera;
* ``motion``: every capture frame the avatar knows, seen from one capture camera (``--camera``) or a
  novel camera at an orbit angle (``--angle-deg``) around the motion's centre;
* ``novel-motion``: the avatar driven by a motion file (``.npz``/``.pkl`` with ``poses`` (N,72) or
  (N,24,3), optional ``trans``/``Th`` and ``Rh``), resampled from ``--fps-in`` to ``--fps-out``.

Intrinsics are the capture's first camera's (scaled by ``--resolution-scale``). Output is an mp4 (via
mediapy and ffmpeg); without ffmpeg, or with ``--output-format images``, a folder of PNG frames. The
capture itself is read only for its cameras; the body model and shape are the ones the avatar was
trained with.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import List, Literal, Optional, Union

import numpy as np
import torch
import tyro
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm
from typing_extensions import Annotated

from hfavatar_ns.body.motion import load_motion, resample_motion, truncate_motion
from hfavatar_ns.scripts.avatar_run import LoadedAvatar, load_avatar_run
from hfavatar_ns.errors import InputError, exit_on_input_error


# ------------------------------------------------------------------------------------------ cameras


def capture_camera(capture_root: Path, camera_index: int = 0, scale: float = 1.0):
    """The capture's camera ``camera_index`` (index into annots.npy) as nerfstudio ``Cameras`` [1]."""
    from dataparsers.zju_mocap.camera_conversion import make_cameras
    from dataparsers.zju_mocap.capture import load_annots, read_capture

    cams, _ = load_annots(capture_root)
    if not 0 <= camera_index < len(cams["K"]):
        raise InputError(f"{capture_root}/annots.npy has {len(cams['K'])} cameras; --camera {camera_index} is not one.")
    capture = read_capture(capture_root, [camera_index], [0], check_files=False)
    return make_cameras(capture, [0], [0], downscale=1.0 / scale)


def look_at(position: Float[Tensor, "3"], target: Float[Tensor, "3"], up: Float[Tensor, "3"]) -> Float[Tensor, "3 4"]:
    """OpenGL camera-to-world (nerfstudio's convention: the camera looks along -z, y up)."""
    backward = torch.nn.functional.normalize(position - target, dim=0)
    right = torch.nn.functional.normalize(torch.linalg.cross(up, backward), dim=0)
    true_up = torch.linalg.cross(backward, right)
    return torch.stack([right, true_up, backward, position], dim=1)


def rotate_about_axis(point: Tensor, centre: Tensor, axis: Tensor, angle: float) -> Tensor:
    """``point`` rotated by ``angle`` radians about the line through ``centre`` along ``axis`` (Rodrigues)."""
    axis = torch.nn.functional.normalize(axis, dim=0)
    v = point - centre
    cos, sin = math.cos(angle), math.sin(angle)
    return centre + v * cos + torch.linalg.cross(axis, v) * sin + axis * (axis @ v) * (1 - cos)


def orbit_cameras(reference, centre: Tensor, angles_rad: List[float], frame_rows: List[int]):
    """Cameras with ``reference``'s intrinsics, its distance and height relative to ``centre``, rotated
    about the vertical through ``centre`` by each angle, looking at ``centre``; each renders its row."""
    from nerfstudio.cameras.cameras import Cameras, CameraType

    c2w = reference.camera_to_worlds[0]
    up = c2w[:, 1]  # the capture camera's up: ZJU-MoCap cameras stand upright around the subject
    start = c2w[:, 3]
    poses = torch.stack([look_at(rotate_about_axis(start, centre, up, a), centre, up) for a in angles_rad])
    count = len(angles_rad)

    def repeat(value: Tensor) -> Tensor:
        return value.reshape(1, 1).expand(count, 1).clone()

    return Cameras(
        camera_to_worlds=poses,
        fx=repeat(reference.fx), fy=repeat(reference.fy), cx=repeat(reference.cx), cy=repeat(reference.cy),
        width=repeat(reference.width), height=repeat(reference.height),
        camera_type=CameraType.PERSPECTIVE,
        metadata={"frame_idx": torch.as_tensor(frame_rows, dtype=torch.long).reshape(count, 1)},
    )  # fmt: skip


def fixed_camera(camera, frame_rows: List[int]):
    """``camera`` [1] repeated once per row, each rendering its row."""
    from nerfstudio.cameras.cameras import Cameras

    count = len(frame_rows)

    def repeat(value: Tensor) -> Tensor:
        return value[:1].expand(count, *value.shape[1:]).clone()

    return Cameras(
        camera_to_worlds=repeat(camera.camera_to_worlds),
        fx=repeat(camera.fx), fy=repeat(camera.fy), cx=repeat(camera.cx), cy=repeat(camera.cy),
        width=repeat(camera.width), height=repeat(camera.height),
        distortion_params=None if camera.distortion_params is None else repeat(camera.distortion_params),
        camera_type=repeat(camera.camera_type),
        metadata={"frame_idx": torch.as_tensor(frame_rows, dtype=torch.long).reshape(count, 1)},
    )  # fmt: skip


def body_centre(model, rows: List[int]) -> Tensor:
    """Centre of the bounding box of the posed bodies of ``rows``."""
    return model.body.posed_bounds(rows).mean(dim=0).cpu()


# ------------------------------------------------------------------------------------------ rendering


@torch.no_grad()
def render_frames(model, cameras, description: str) -> List[np.ndarray]:
    """RGB uint8 frames, one per camera (each camera carries its frame_idx)."""
    frames = []
    for index in tqdm(range(cameras.shape[0]), desc=description, unit="frame"):
        camera = cameras[index : index + 1].to(model.device)
        rgb = model.get_outputs_for_camera(camera)["rgb"]
        frames.append((rgb.clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8))
    return frames


def write_frames(frames: List[np.ndarray], output_path: Path, fps: float, output_format: str) -> Path:
    """An mp4 at ``output_path`` (ffmpeg), or PNGs in a folder named after it; returns what was written."""
    import mediapy

    output_path = Path(output_path)
    use_video = output_format == "video" or (output_format == "auto" and shutil.which("ffmpeg") is not None)
    if output_format == "video" and shutil.which("ffmpeg") is None:
        raise InputError("--output-format video needs ffmpeg on PATH (`make` installs it as root); use images.")
    if use_video:
        path = output_path if output_path.suffix else output_path.with_suffix(".mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        # libx264 needs even sizes: pad a pixel where needed.
        height, width = frames[0].shape[:2]
        padded = [np.pad(f, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge") for f in frames]
        mediapy.write_video(str(path), padded, fps=fps)
        print(f"wrote {path} ({len(frames)} frames at {fps:g} fps)")
        return path
    folder = output_path.with_suffix("") if output_path.suffix else output_path
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        mediapy.write_image(str(folder / f"{index:05d}.png"), frame)
    reason = "" if output_format == "images" else " (ffmpeg is not on PATH, so no mp4: `make` installs it as root)"
    print(f"wrote {len(frames)} PNG frames to {folder}{reason}")
    return folder


@dataclass
class RenderCommon:
    load_config: Path
    """The run's config.yml (as for ns-eval / ns-render)."""
    output_path: Path = Path("renders/avatar.mp4")
    """The mp4 to write (a folder of PNGs for images)."""
    resolution_scale: float = 1.0
    """Image size relative to the capture's cameras."""
    fps: float = 24.0
    """Frame rate of the video."""
    output_format: Literal["auto", "video", "images"] = "auto"
    """video: mp4 (needs ffmpeg); images: PNG frames; auto: video when ffmpeg is present."""


@dataclass
class Orbit(RenderCommon):
    """A camera circling the avatar posed at one capture frame."""

    frame_id: Optional[int] = None
    """Capture frame id to pose the avatar at (default: the first frame it knows)."""
    num_views: int = 60
    """Views around the full circle."""

    def main(self, avatar: Optional[LoadedAvatar] = None) -> Path:
        avatar = avatar or load_avatar_run(self.load_config)
        model = avatar.model
        row = capture_row(model, self.frame_id)
        reference = capture_camera(avatar.capture_root, 0, self.resolution_scale)
        angles = [2 * math.pi * i / self.num_views for i in range(self.num_views)]
        cameras = orbit_cameras(reference, body_centre(model, [row]), angles, [row] * self.num_views)
        return write_frames(render_frames(model, cameras, "orbit"), self.output_path, self.fps, self.output_format)


@dataclass
class NovelCamera:
    camera: Optional[int] = None
    """Capture camera (index into annots.npy) to watch from; default: a novel camera at --angle-deg."""
    angle_deg: float = 90.0
    """Novel camera: the capture's first camera rotated by this angle about the body (ignored with --camera)."""


def motion_cameras(avatar: LoadedAvatar, choice: NovelCamera, scale: float, rows: List[int]):
    if choice.camera is not None:
        return fixed_camera(capture_camera(avatar.capture_root, choice.camera, scale), rows)
    reference = capture_camera(avatar.capture_root, 0, scale)
    angle = math.radians(choice.angle_deg)
    return orbit_cameras(reference, body_centre(avatar.model, rows), [angle] * len(rows), rows)


@dataclass
class MotionVideo(NovelCamera, RenderCommon):
    """The capture's motion (every frame the avatar knows) from one camera."""

    def main(self, avatar: Optional[LoadedAvatar] = None) -> Path:
        avatar = avatar or load_avatar_run(self.load_config)
        rows = avatar.model.body.capture_rows()
        cameras = motion_cameras(avatar, self, self.resolution_scale, rows)
        frames = render_frames(avatar.model, cameras, "motion")
        return write_frames(frames, self.output_path, self.fps, self.output_format)


@dataclass
class NovelMotionVideo(NovelCamera, RenderCommon):
    """The avatar driven by a motion file."""

    motion_file: Path = Path("motion.npz")
    """.npz or .pkl with poses (N,72)/(N,24,3), optional trans/Th and Rh (else the capture's first frame's)."""
    fps_in: Optional[float] = None
    """Frame rate of the motion file (default: its fps/mocap_framerate entry, else --fps-out)."""
    fps_out: Optional[float] = None
    """Frame rate to render at (default: --fps)."""
    max_frames: Optional[int] = None
    """Render at most this many (resampled) frames."""

    def main(self, avatar: Optional[LoadedAvatar] = None) -> Path:
        avatar = avatar or load_avatar_run(self.load_config)
        motion = load_motion(self.motion_file)
        fps_out = self.fps_out or self.fps
        fps_in = self.fps_in or motion.fps or fps_out
        motion = resample_motion(motion, fps_in, fps_out)
        motion = truncate_motion(motion, self.max_frames)
        rows = avatar.model.animate(motion).tolist()
        cameras = motion_cameras(avatar, self, self.resolution_scale, rows)
        frames = render_frames(avatar.model, cameras, "novel motion")
        return write_frames(frames, self.output_path, fps_out, self.output_format)


def capture_row(model, frame_id: Optional[int]) -> int:
    """The body row of a capture frame id (default: the first capture frame)."""
    if frame_id is None or frame_id < 0:
        return model.body.capture_rows()[0] if frame_id is None else model.body.row_of(frame_id)
    return model.body.row_of(frame_id)


Commands = Union[
    Annotated[Orbit, tyro.conf.subcommand(name="orbit")],
    Annotated[MotionVideo, tyro.conf.subcommand(name="motion")],
    Annotated[NovelMotionVideo, tyro.conf.subcommand(name="novel-motion")],
]


@exit_on_input_error
def main() -> None:
    tyro.cli(Commands).main()


if __name__ == "__main__":
    main()
