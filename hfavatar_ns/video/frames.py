"""The frames of a user's video (or folder of images): which ones, at what size, and the camera's focal length.

Decoding uses PyAV (nerfstudio's own dependency), so no extra package is needed for this stage.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from hfavatar_ns.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

DEFAULT_FOV_DEG = 60.0
"""Field of view across the long side when nothing says otherwise: a phone's main camera films video at
about 60-70 degrees; a wrong guess mostly moves the fitted body nearer or further, not its shape."""


@dataclass(frozen=True)
class FrameSource:
    """What a video or an image folder holds, before any frame is decoded."""

    path: Path
    num_frames: int
    width: int
    height: int
    focal_35mm: Optional[float] = None
    """35 mm-equivalent focal length from the file's metadata (phones record it), when present."""
    turn: int = 0
    """Quarter turns (counter-clockwise, as ``np.rot90``) that make the decoded frames upright: phones
    store portrait video as landscape frames plus a display rotation."""

    @property
    def is_video(self) -> bool:
        return self.path.is_file()


def display_turn(rotation: float) -> int:
    """``np.rot90`` quarter turns for a frame whose display matrix rotates it by ``rotation`` degrees
    (FFmpeg's convention: counter-clockwise), so that it shows as players show it."""
    return int(round(rotation / 90.0)) % 4


def image_files(folder: Path) -> List[Path]:
    """The images of a folder in natural order (frame2 before frame10)."""

    def natural(path: Path):
        return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]

    return sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural)


def _focal_35mm_from_metadata(metadata: dict) -> Optional[float]:
    for key, value in metadata.items():
        if "focal_length" in key.lower() and "35mm" in key.lower():
            try:
                return float(value)
            except ValueError:
                return None
    return None


def open_source(path: Path) -> FrameSource:
    """Look at ``path`` (a video file or a folder of images) without decoding it all."""
    import av

    path = Path(path)
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise InputError(f"{path} holds no images ({', '.join(IMAGE_SUFFIXES)}). Give a video file or a folder of frames.")
        first = _read_image(files[0])
        return FrameSource(path=path, num_frames=len(files), width=first.shape[1], height=first.shape[0])
    if not path.is_file():
        raise InputError(f"{path} does not exist. Give a video file (mp4, mov, ...) or a folder of images.")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} has no video stream. Give a video file or a folder of images.")
            stream = container.streams.video[0]
            count = stream.frames or 0
            if count <= 0:  # some containers do not record it: count by demuxing (cheap, no decoding)
                count = sum(1 for packet in container.demux(stream) if packet.size)
            metadata = {**container.metadata, **stream.metadata}
            width, height = stream.codec_context.width, stream.codec_context.height
            first = next(container.decode(stream), None)
            turn = display_turn(first.rotation if first is not None else 0)
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 -- any demuxer failure means an unreadable file
        raise InputError(f"Cannot read the video {path}: {error}. Is it a video file? Re-encode it (e.g. to H.264 mp4).") from error
    if count == 0 or width == 0:
        raise InputError(f"The video {path} holds no frames.")
    if turn % 2:
        width, height = height, width
    return FrameSource(
        path=path, num_frames=count, width=width, height=height, focal_35mm=_focal_35mm_from_metadata(metadata), turn=turn
    )


def choose_frames(num_frames: int, wanted: Optional[int] = None, stride: Optional[int] = None) -> List[int]:
    """Indices of the frames to use: ``wanted`` spread evenly, or every ``stride``-th, or all."""
    if wanted is not None and stride is not None:
        raise InputError("Give either --num-frames or --stride, not both.")
    if stride is not None:
        if stride < 1:
            raise InputError(f"--stride must be 1 or more (got {stride}).")
        return list(range(0, num_frames, stride))
    if wanted is not None:
        if wanted < 1:
            raise InputError(f"--num-frames must be 1 or more (got {wanted}).")
        if wanted >= num_frames:
            return list(range(num_frames))
        return sorted({int(round(x)) for x in np.linspace(0, num_frames - 1, wanted)})
    return list(range(num_frames))


def output_size(width: int, height: int, long_side: Optional[int]) -> Tuple[int, int]:
    """(width, height) after scaling the long side to ``long_side`` (never up), even numbers for video codecs."""
    if long_side is None or long_side >= max(width, height):
        return width, height
    scale = long_side / max(width, height)
    return max(2, int(round(width * scale / 2)) * 2), max(2, int(round(height * scale / 2)) * 2)


def _read_image(path: Path) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"Cannot read the image {path}. Replace or remove it.")
    return image[..., ::-1]


def read_frames(source: FrameSource, indices: Sequence[int], size: Tuple[int, int]) -> Iterator[Tuple[int, np.ndarray]]:
    """Yield ``(index, RGB uint8 [H,W,3])`` for the chosen frames, resized to ``size`` (width, height).

    Videos are decoded once, front to back (seeking is unreliable across codecs); frames that fail to
    decode end the video early, which the caller notices as missing indices.
    """
    import av
    import cv2

    wanted = set(indices)

    def resized(image: np.ndarray) -> np.ndarray:
        if (image.shape[1], image.shape[0]) == tuple(size):
            return image
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    if not source.is_video:
        files = image_files(source.path)
        for index in indices:
            image = _read_image(files[index])
            if image.shape[:2] != (source.height, source.width):
                raise InputError(
                    f"{files[index]} is {image.shape[1]}x{image.shape[0]} but the first image is "
                    f"{source.width}x{source.height}; every frame must come from the same camera."
                )
            yield index, resized(image)
        return
    last = max(wanted) if wanted else -1
    try:
        with av.open(str(source.path)) as container:
            for index, frame in enumerate(container.decode(video=0)):
                if index > last:
                    break
                if index in wanted:
                    yield index, resized(np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), source.turn)))
    except av.error.FFmpegError:
        return


def focal_length_px(
    width: int, height: int, focal_px: Optional[float], fov_deg: Optional[float], focal_35mm: Optional[float]
) -> Tuple[float, str]:
    """The focal length in pixels of the output frames and where it came from (to tell the user)."""
    if focal_px is not None and fov_deg is not None:
        raise InputError("Give either --focal-px or --fov-deg, not both.")
    long_side = max(width, height)
    if focal_px is not None:
        if focal_px <= 0:
            raise InputError(f"--focal-px must be positive (got {focal_px}).")
        return float(focal_px), f"--focal-px {focal_px:g}"
    if fov_deg is not None:
        if not 1.0 < fov_deg < 179.0:
            raise InputError(f"--fov-deg must be between 1 and 179 (got {fov_deg}).")
        return long_side / 2 / math.tan(math.radians(fov_deg) / 2), f"--fov-deg {fov_deg:g} across the long side"
    if focal_35mm is not None and focal_35mm > 0:
        # The 35 mm equivalent refers to a 36 mm wide frame: scale to the long side.
        return long_side * focal_35mm / 36.0, f"the video's metadata ({focal_35mm:g} mm, 35 mm equivalent)"
    return (
        long_side / 2 / math.tan(math.radians(DEFAULT_FOV_DEG) / 2),
        f"the default field of view ({DEFAULT_FOV_DEG:g} degrees across the long side; pass --focal-px or --fov-deg if you know better)",
    )


def write_video(frames: Iterable[np.ndarray], path: Path, fps: float = 30.0, quality: int = 18) -> Path:
    """RGB uint8 frames to an H.264 MP4 (yuv420p, so every player reads it); sizes are cropped to even."""
    from fractions import Fraction

    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = None
        for frame in frames:
            height, width = (frame.shape[0] // 2) * 2, (frame.shape[1] // 2) * 2
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                stream.options = {"crf": str(quality)}
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame[:height, :width]), format="rgb24")
            container.mux(stream.encode(picture))
        if stream is None:
            raise InputError(f"No frames to write to {path}.")
        container.mux(stream.encode())
    return path
