"""Read one PeopleSnapshot subject folder, as the release distributes it, into plain numpy.

No nerfstudio here. A subject folder (e.g. ``male-3-casual/``) holds:

* ``<subject>.mp4``: the monocular video (one fixed camera);
* ``camera.pkl``: a Python-2 pickle (read with ``encoding="latin1"``) of ``camera_f`` (2,), ``camera_c`` (2,),
  ``camera_k`` (5, OpenCV ``k1, k2, p1, p2, k3``), ``camera_rt`` (3, Rodrigues) and ``camera_t`` (3), plus
  ``width`` and ``height``: an OpenCV camera ``x_cam = R(camera_rt) x + camera_t`` (videoavatars'
  ``prepare_data/create_camera.py`` writes it with ``camera_rt = camera_t = 0``);
* ``masks.hdf5``: dataset ``masks`` [N,H,W] uint8, 1 = person;
* ``reconstructed_poses.hdf5``: datasets ``pose`` [N,72] (SMPL axis-angle, ``pose[:3]`` about the root
  joint), ``trans`` [N,3] (SMPL ``transl``, metres, camera frame) and ``betas`` (10,), fitted with the
  gendered SMPL model of the subject's name;
* optionally ``consensus.pkl``: ``betas`` and ``v_personal`` (per-vertex offsets) of the consensus shape.

Frame ``i`` of the video, ``masks[i]`` and ``pose[i]`` show the same instant. Known quirks, handled by
:func:`common_frame_count`: the pose file can hold more rows than the video and masks have frames
(videoavatars issue #78: male-1-casual has 834 frames and 835 poses), and videoavatars' fitting loop
never fits the last frame, leaving an all-zero row at the end.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Literal, Optional, Tuple

import numpy as np

from hfavatar_ns.errors import InputError

BetasSource = Literal["poses", "consensus"]

CAMERA_FILE = "camera.pkl"
MASKS_FILE = "masks.hdf5"
POSES_FILE = "reconstructed_poses.hdf5"
CONSENSUS_FILE = "consensus.pkl"
CAMERA_VECTORS: Dict[str, int] = {"camera_f": 2, "camera_c": 2, "camera_k": 5, "camera_rt": 3, "camera_t": 3}
"""Every vector ``camera.pkl`` holds, with its length."""
LAYOUT_HINT = (
    "A PeopleSnapshot subject folder (https://graphics.tu-bs.de/people-snapshot) holds <subject>.mp4, "
    f"{CAMERA_FILE}, {MASKS_FILE} and {POSES_FILE}; point --data at one, e.g. data/people_snapshot/male-3-casual."
)


@dataclass(frozen=True)
class SnapshotCamera:
    """The video's one OpenCV camera, for full-resolution frames."""

    K: np.ndarray
    """[3,3] intrinsics in pixels (pixel centres at integer coordinates)."""
    R: np.ndarray
    """[3,3] world->camera rotation, ``Rodrigues(camera_rt)``."""
    T: np.ndarray
    """[3] world->camera translation (metres)."""
    D: np.ndarray
    """[5] distortion ``k1, k2, p1, p2, k3``."""
    width: int
    height: int


@dataclass(frozen=True)
class SnapshotFits:
    """The per-frame SMPL fits of ``reconstructed_poses.hdf5`` (SMPL convention, camera frame)."""

    poses: np.ndarray
    """[N,72] axis-angle; ``poses[:, :3]`` is the global orientation about the root joint."""
    trans: np.ndarray
    """[N,3] SMPL ``transl`` in metres."""
    betas: np.ndarray
    """[B] shape coefficients the poses were fitted with."""

    @property
    def fitted(self) -> np.ndarray:
        """[N] whether each row holds a fit: all-zero rows (the frame videoavatars never fits) and rows
        with NaN or infinite values do not."""
        finite = np.isfinite(self.poses).all(-1) & np.isfinite(self.trans).all(-1)
        magnitude = np.abs(np.nan_to_num(self.poses)).sum(-1) + np.abs(np.nan_to_num(self.trans)).sum(-1)
        return finite & (magnitude > 0)


@dataclass(frozen=True)
class PeopleSnapshotRelease:
    """What one subject folder holds, read up to (not including) the frames and masks themselves."""

    root: Path
    subject: str
    video_path: Path
    masks_path: Path
    camera: SnapshotCamera
    fits: SnapshotFits
    num_masks: int
    mask_size: Tuple[int, int]
    """(height, width) of the masks."""
    betas: np.ndarray
    """[B] the shape the body takes (the fits' or the consensus shape, see :func:`read_release`)."""


# ----------------------------------------------------------------------------------------------
# the files


def subject_gender(subject: str) -> Optional[str]:
    """``"female"`` / ``"male"`` from a subject name like ``female-3-casual`` (the SMPL the fits used), else None."""
    name = subject.lower()
    if name.startswith("female"):
        return "female"
    if name.startswith("male"):
        return "male"
    return None


def find_video(root: Path) -> Path:
    """``root/<subject>.mp4``, or the folder's only video when it is named otherwise."""
    named = root / f"{root.name}.mp4"
    if named.is_file():
        return named
    videos = sorted(p for p in root.iterdir() if p.suffix.lower() in (".mp4", ".avi", ".mov", ".mkv"))
    if len(videos) == 1:
        return videos[0]
    if not videos:
        raise InputError(f"No video in {root}: expected {named}. {LAYOUT_HINT}")
    listed = ", ".join(p.name for p in videos)
    raise InputError(
        f"{root} holds several videos ({listed}) and none is named {named.name}; rename the subject's video."
    )


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(f"The {what} {path} does not exist. {LAYOUT_HINT}")
    return path


def load_pickle(path: Path) -> object:
    """A pickle written by Python 2 (numpy arrays inside): ``encoding="latin1"`` reads its byte strings."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except Exception as error:  # noqa: BLE001 -- any unpickling failure means an unusable file
        raise InputError(
            f"Cannot read {path}: {error}. Re-download the subject, or write the file again as a pickled dict."
        ) from error


def read_camera(path: Path) -> SnapshotCamera:
    """The OpenCV camera of ``camera.pkl``."""
    data = load_pickle(_require(path, "camera file"))
    expected = ", ".join([*CAMERA_VECTORS, "width", "height"])
    if not isinstance(data, dict):
        raise InputError(f"{path} must hold a dict with {expected} (found a {type(data).__name__}).")
    missing = [key for key in (*CAMERA_VECTORS, "width", "height") if key not in data]
    if missing:
        raise InputError(
            f"{path} lacks {', '.join(missing)} (found {', '.join(sorted(map(str, data)))}); a PeopleSnapshot "
            f"camera.pkl holds {expected}. videoavatars' prepare_data/create_camera.py writes one for a custom video."
        )
    vectors = {}
    for key, size in CAMERA_VECTORS.items():
        try:
            value = np.asarray(data[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as error:
            raise InputError(f"{path}: {key!r} is not numeric ({error}).") from error
        if value.size != size:
            raise InputError(f"{path}: {key!r} holds {value.size} values; expected {size}.")
        if not np.isfinite(value).all():
            raise InputError(f"{path}: {key!r} holds NaN or infinite values.")
        vectors[key] = value
    try:
        width, height = int(data["width"]), int(data["height"])
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: width and height must be whole numbers ({error}).") from error
    if width <= 0 or height <= 0 or (vectors["camera_f"] <= 0).any():
        raise InputError(
            f"{path}: width, height and camera_f must be positive (got {width}, {height}, {vectors['camera_f']})."
        )
    import cv2

    K = np.array(
        [[vectors["camera_f"][0], 0.0, vectors["camera_c"][0]], [0.0, vectors["camera_f"][1], vectors["camera_c"][1]],
         [0.0, 0.0, 1.0]]
    )  # fmt: skip
    R = cv2.Rodrigues(vectors["camera_rt"].reshape(3, 1))[0]
    return SnapshotCamera(K=K, R=R, T=vectors["camera_t"], D=vectors["camera_k"], width=width, height=height)


def _open_hdf5(path: Path, what: str):
    import h5py

    _require(path, what)
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"Cannot read {path} as HDF5 ({error}). Re-download the subject's {path.name}.") from error


def _dataset(handle, path: Path, key: str, expected: str):
    if key not in handle:
        raise InputError(
            f"{path} lacks the dataset {key!r} (found {', '.join(sorted(handle.keys())) or 'none'}); "
            f"expected {expected}."
        )
    return handle[key]


def read_fits(path: Path) -> SnapshotFits:
    """The SMPL fits of ``reconstructed_poses.hdf5``."""
    expected = "pose [N,72], trans [N,3] and betas (10,)"
    with _open_hdf5(path, "pose file") as handle:
        poses = _read_array(_dataset(handle, path, "pose", expected), path, "pose")
        trans = _read_array(_dataset(handle, path, "trans", expected), path, "trans")
        betas = _read_array(_dataset(handle, path, "betas", expected), path, "betas")
    if poses.ndim != 2 or poses.shape[1] != 72:
        raise InputError(f"{path}: 'pose' has shape {poses.shape}; expected [N,72] SMPL axis-angle poses.")
    if trans.shape != (len(poses), 3):
        raise InputError(f"{path}: 'trans' has shape {trans.shape}; expected ({len(poses)}, 3), one per pose.")
    return SnapshotFits(poses=poses, trans=trans, betas=_one_shape(betas, path, "betas"))


def _read_array(dataset, path: Path, key: str) -> np.ndarray:
    try:
        return np.asarray(dataset, dtype=np.float64)
    except (OSError, TypeError, ValueError) as error:
        raise InputError(
            f"Cannot read the dataset {key!r} of {path} as numbers ({error}). Re-download the file."
        ) from error


def _one_shape(betas: np.ndarray, path: Path, key: str) -> np.ndarray:
    """(B,) from (B,), (1,B) or per-frame (N,B) coefficients (the first row; warns if the rows differ)."""
    if betas.ndim == 2 and len(betas) > 0:
        if np.abs(betas - betas[:1]).max() > 1e-6:
            warnings.warn(f"{path}: {key!r} changes between frames; the body takes the first row's shape.")
        betas = betas[0]
    if betas.ndim != 1 or betas.size == 0 or not np.isfinite(betas).all():
        raise InputError(f"{path}: {key!r} has shape {betas.shape}; expected (10,) finite shape coefficients.")
    return betas


def read_consensus_betas(path: Path) -> np.ndarray:
    """The consensus shape's ``betas`` from ``consensus.pkl`` (its ``v_personal`` offsets are not used)."""
    data = load_pickle(_require(path, "consensus shape file"))
    if not isinstance(data, dict) or "betas" not in data:
        found = ", ".join(sorted(map(str, data))) if isinstance(data, dict) else type(data).__name__
        raise InputError(f"{path} must hold a dict with 'betas' and 'v_personal' (found {found}).")
    try:
        betas = np.asarray(data["betas"], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{path}: 'betas' is not numeric ({error}).") from error
    return _one_shape(betas, path, "betas")


def read_mask_header(path: Path) -> Tuple[int, Tuple[int, int]]:
    """Number and (height, width) of the masks in ``masks.hdf5``."""
    with _open_hdf5(path, "mask file") as handle:
        masks = _dataset(handle, path, "masks", "masks [N,H,W] uint8 (1 = person)")
        if masks.ndim != 3:
            raise InputError(f"{path}: 'masks' has shape {masks.shape}; expected [N,H,W] (one mask per video frame).")
        return int(masks.shape[0]), (int(masks.shape[1]), int(masks.shape[2]))


def read_release(root: Path, betas_from: BetasSource = "poses") -> PeopleSnapshotRelease:
    """Read a subject folder (camera, fits, mask header; frames are decoded by the frame cache).

    Args:
        root: the subject folder, e.g. ``.../people_snapshot_public/male-3-casual``.
        betas_from: ``"poses"``: the shape the poses were fitted with (``reconstructed_poses.hdf5``);
            ``"consensus"``: ``consensus.pkl``'s refined shape (its per-vertex offsets are left out: the
            avatar learns the clothed surface itself).
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"The subject folder {root} does not exist. {LAYOUT_HINT}")
    camera = read_camera(root / CAMERA_FILE)
    fits = read_fits(root / POSES_FILE)
    num_masks, mask_size = read_mask_header(root / MASKS_FILE)
    if mask_size != (camera.height, camera.width):
        raise InputError(
            f"The masks in {root / MASKS_FILE} are {mask_size[1]}x{mask_size[0]} but {root / CAMERA_FILE} describes "
            f"{camera.width}x{camera.height} frames. Masks must match the video pixel for pixel."
        )
    betas = fits.betas if betas_from == "poses" else read_consensus_betas(root / CONSENSUS_FILE)
    return PeopleSnapshotRelease(
        root=root,
        subject=root.name,
        video_path=find_video(root),
        masks_path=root / MASKS_FILE,
        camera=camera,
        fits=fits,
        num_masks=num_masks,
        mask_size=mask_size,
        betas=betas,
    )


def common_frame_count(num_video_frames: int, release: PeopleSnapshotRelease) -> Tuple[int, Optional[str]]:
    """How many frames from the start have a video frame, a mask and a fit, and a note when that is
    fewer than one of the files holds (the known PeopleSnapshot count mismatch).

    Frames pair up by position, so the usable frames are the common prefix, less any unfitted
    (all-zero) pose rows at its end.
    """
    counts = {"the video": num_video_frames, MASKS_FILE: release.num_masks, POSES_FILE: len(release.fits.poses)}
    count = min(counts.values())
    fitted = release.fits.fitted
    trailing = 0
    while count > 0 and not fitted[count - 1]:
        count -= 1
        trailing += 1
    if count == 0:
        listed = ", ".join(f"{name} has {n}" for name, n in counts.items())
        raise InputError(
            f"{release.root}: no frame has a video frame, a mask and a fitted pose ({listed} frames, and the "
            f"pose rows at the start are all zero). Check that {POSES_FILE} and {MASKS_FILE} belong to this video."
        )
    if count == max(counts.values()):
        return count, None
    listed = ", ".join(f"{name} has {n}" for name, n in counts.items())
    note = f"{release.root}: {listed} frames; using the first {count}, which all three share"
    if trailing:
        note += f" (less {trailing} unfitted all-zero pose row(s) at the end)"
    return count, note + "."


# ----------------------------------------------------------------------------------------------
# frames and masks


def video_header(path: Path) -> Tuple[int, Tuple[int, int]]:
    """The frame count the container declares (0 when it declares none) and (height, width) of ``path``."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise InputError(f"{path} holds no video stream. Re-download the subject's video.")
            stream = container.streams.video[0]
            return int(stream.frames or 0), (int(stream.codec_context.height), int(stream.codec_context.width))
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 -- any demuxer failure means an unusable file
        raise InputError(f"Cannot open the video {path}: {error}. Re-download the subject's video.") from error


def iter_video_frames(path: Path, limit: int) -> Iterator[np.ndarray]:
    """The first ``limit`` frames of the video as BGR uint8 [H,W,3] arrays, in order (decoded with PyAV).

    A decoding error after some frames ends the video there (a truncated download), with a warning.
    """
    import av

    decoded = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if decoded >= limit:
                    return
                yield frame.to_ndarray(format="bgr24")
                decoded += 1
    except Exception as error:  # noqa: BLE001
        if decoded == 0:
            raise InputError(f"Cannot decode the video {path}: {error}. Re-download the subject's video.") from error
        warnings.warn(f"The video {path} stops decoding after frame {decoded - 1} ({error}); using the frames before.")


def iter_masks(path: Path, count: int, chunk: int = 64) -> Iterator[np.ndarray]:
    """The first ``count`` masks of ``masks.hdf5`` as boolean [H,W] arrays (read ``chunk`` at a time)."""
    with _open_hdf5(path, "mask file") as handle:
        masks = handle["masks"]
        for start in range(0, count, chunk):
            try:
                block = np.asarray(masks[start : min(start + chunk, count)])
            except (OSError, TypeError, ValueError) as error:
                raise InputError(
                    f"Cannot read masks {start}..{min(start + chunk, count) - 1} of {path} ({error}). "
                    "Re-download the subject's masks.hdf5."
                ) from error
            for mask in block:
                yield mask != 0


def check_fitted(fits: SnapshotFits, frames: List[int]) -> None:
    """Refuse selected frames without a fit (all-zero pose rows), naming them."""
    unfitted = [f for f in frames if not fits.fitted[f]]
    if unfitted:
        shown = ", ".join(map(str, unfitted[:10])) + (" ..." if len(unfitted) > 10 else "")
        raise InputError(
            f"{POSES_FILE} has no fit (an all-zero or non-finite row) for frame(s) {shown} of the split. Leave them "
            "out with --train-frame-range / --test-frame-range."
        )
