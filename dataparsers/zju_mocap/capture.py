"""Read a raw ZJU-MoCap capture folder (NeuralBody layout) into plain numpy arrays.

No nerfstudio here: :func:`read_capture` turns ``annots.npy``, the per-frame SMPL parameter files and
the image/mask file names into a :class:`ZJUCapture`. Conventions (see shared/reference/data-formats.md §1):

* ``annots['cams']`` holds K (3x3 pixels), R (3x3 world->camera), T (3x1, **millimetres**) and
  D (5, OpenCV ``k1,k2,p1,p2,k3``) per camera. We return T in **metres**.
* ``annots['ims'][f]['ims'][c]`` is the image of frame ``f`` seen by camera ``c``, relative to the capture.
  Camera folders are ``Camera_B{k}`` (377 and later) or ``Camera (k)`` (313/315, 21 cameras named 1..19, 22, 23).
* The parameter file of a frame is named after the number in its image name: ``000123.jpg`` -> ``123.npy``
  (0-based) and ``CoreView_313_Camera_(1)_0001_2019-...jpg`` -> ``1.npy`` (1-based). Frame ids in
  this package are always the 0-based position in ``annots['ims']``.
* Masks are PNGs at the image's relative path under ``mask_cihp/`` or ``mask/``; foreground is any value != 0.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import numpy as np

from hfavatar_ns.errors import InputError

ParamsChoice = Literal["auto", "new_params", "params"]
MasksChoice = Literal["auto", "mask_cihp", "mask", "union"]

PARAM_SHAPES: Dict[str, int] = {"poses": 72, "Rh": 3, "Th": 3, "shapes": 10}
MASK_FOLDERS: Tuple[str, ...] = ("mask_cihp", "mask")
_LONG_NAME = re.compile(r"Camera_\((\d+)\)_(\d+)_")


@dataclass
class ZJUCapture:
    """The selected cameras and frames of one capture, with paths and body parameters.

    Per-camera arrays have one row per *selected* camera (``C``), per-frame arrays one row per
    *selected* frame (``F``), in the order of ``camera_indices`` and ``frame_indices``.
    """

    root: Path
    camera_names: List[str]
    """Camera folder names, e.g. ``"Camera_B1"`` or ``"Camera (22)"``."""
    camera_indices: List[int]
    """Index of each selected camera into ``annots['cams']`` (0-based)."""
    K: np.ndarray
    """[C,3,3] intrinsics in pixels of the full-resolution images (OpenCV: pixel centres at integers)."""
    R: np.ndarray
    """[C,3,3] world->camera rotations (OpenCV)."""
    T: np.ndarray
    """[C,3] world->camera translations in metres (``x_cam = R x_world + T``)."""
    D: np.ndarray
    """[C,5] OpenCV distortion ``k1, k2, p1, p2, k3``."""
    frame_indices: List[int]
    """0-based frame ids (positions in ``annots['ims']``) of the selected frames."""
    image_paths: List[List[Path]]
    """[F][C] image files."""
    mask_paths: List[List[Path]]
    """[F][C] mask files in ``mask_dirs[0]`` (see :meth:`mask_sources` for the union)."""
    params: Dict[str, np.ndarray]
    """``poses`` [F,72], ``Rh`` [F,3], ``Th`` [F,3] (metres), ``shapes`` [F,10], float32."""
    vertices: Optional[np.ndarray]
    """[F,V,3] fitted world vertices (metres) from ``new_vertices/`` or ``vertices/``; None if absent."""
    params_dir: Path
    mask_dir: str
    """``"mask_cihp"``, ``"mask"`` or ``"union"`` (both, OR-ed)."""
    param_file_indices: List[int] = field(default_factory=list)
    """Number in each selected frame's parameter file name (``new_params/{n}.npy``)."""
    num_frames_total: int = 0
    """Frames listed in annots.npy."""
    all_camera_names: List[str] = field(default_factory=list)
    """Names of every camera in annots.npy (index = camera index)."""
    _image_sizes: Dict[int, Tuple[int, int]] = field(default_factory=dict, repr=False)

    @property
    def mask_dirs(self) -> Tuple[str, ...]:
        return MASK_FOLDERS if self.mask_dir == "union" else (self.mask_dir,)

    def mask_sources(self, frame: int, camera: int) -> List[Path]:
        """Every mask file OR-ed into the mask of (frame row, camera row)."""
        relative = self.image_paths[frame][camera].relative_to(self.root).with_suffix(".png")
        return [self.root / folder / relative for folder in self.mask_dirs]

    def image_size(self, camera: int, frame: int = 0) -> Tuple[int, int]:
        """(height, width) of camera row ``camera``, read lazily from one image header (frame row ``frame``).

        All images of a camera share its size, so the first call per camera decides.
        """
        if camera not in self._image_sizes:
            from PIL import Image

            path = self.image_paths[frame][camera]
            try:
                with Image.open(path) as image:
                    width, height = image.size
            except Exception as error:  # noqa: BLE001 -- any decoder failure means an unusable file
                raise InputError(
                    f"Cannot read the image {path}: {error}. Replace the file or drop its camera."
                ) from error
            self._image_sizes[camera] = (height, width)
        return self._image_sizes[camera]


def read_mask_values(path: Path) -> np.ndarray:
    """A mask file's values as nerfstudio reads them (PIL; palette images give their indices): [H,W] or [H,W,C]."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.array(image)
    except Exception as error:  # noqa: BLE001 -- any decoder failure means an unusable file
        raise InputError(
            f"Cannot read the mask {path}: {error}. Replace it with a PNG mask (0 = background)."
        ) from error


def read_mask(path: Path) -> np.ndarray:
    """A foreground mask as a boolean [H,W] array: any non-zero value (in any channel) is foreground."""
    values = read_mask_values(path)
    return values.any(axis=-1) if values.ndim == 3 else values != 0


def read_capture_mask(capture: ZJUCapture, frame: int, camera: int) -> np.ndarray:
    """The boolean mask of (frame row, camera row), OR-ing every source in union mode."""
    sources = capture.mask_sources(frame, camera)
    mask = read_mask(sources[0])
    for path in sources[1:]:
        other = read_mask(path)
        if other.shape != mask.shape:
            raise InputError(f"The masks {sources[0]} and {path} differ in size ({mask.shape} vs {other.shape}).")
        mask |= other
    return mask


# ----------------------------------------------------------------------------------------------
# annots.npy


def load_annots(root: Path) -> Tuple[Dict[str, np.ndarray], List[List[str]]]:
    """Cameras (K [N,3,3], R [N,3,3], T [N,3] metres, D [N,5]) and image names [frames][cameras] of ``root``."""
    path = root / "annots.npy"
    if not path.is_file():
        raise InputError(
            f"{path} does not exist. Point --data at a raw ZJU-MoCap subject folder (e.g. data/zju_mocap/CoreView_377) "
            "that holds annots.npy, the camera folders and new_params/."
        )
    try:
        annots = np.load(path, allow_pickle=True).item()
    except Exception as error:  # noqa: BLE001
        raise InputError(
            f"Cannot read {path}: {error}. Re-download or re-create annots.npy (a pickled dict saved with np.save)."
        ) from error
    if not isinstance(annots, dict) or "cams" not in annots or "ims" not in annots:
        keys = sorted(annots) if isinstance(annots, dict) else type(annots).__name__
        raise InputError(
            f"{path} must be a dict with keys 'cams' and 'ims' (found {keys}). Is this a ZJU-MoCap annots.npy?"
        )
    cams = annots["cams"]
    if not isinstance(cams, dict) or any(key not in cams for key in "KRTD"):
        found = sorted(cams) if isinstance(cams, dict) else type(cams).__name__
        raise InputError(f"{path}: annots['cams'] must be a dict with lists K, R, T, D (found {found}).")
    expected = {"K": (3, 3), "R": (3, 3), "T": (3,), "D": (5,)}
    arrays = {}
    for key, shape in expected.items():
        try:
            values = [np.asarray(value, dtype=np.float64) for value in cams[key]]
        except (TypeError, ValueError) as error:
            raise InputError(f"{path}: annots['cams']['{key}'] is not a list of numeric arrays ({error}).") from error
        for index, value in enumerate(values):
            if value.size != int(np.prod(shape)):
                raise InputError(
                    f"{path}: annots['cams']['{key}'][{index}] has shape {value.shape}; expected {shape} "
                    f"({'3x1 or 1x3' if key == 'T' else '5x1 or 1x5' if key == 'D' else '3x3'})."
                )
        arrays[key] = np.stack([value.reshape(shape) for value in values]) if values else np.zeros((0, *shape))
    counts = {key: len(value) for key, value in arrays.items()}
    if len(set(counts.values())) != 1 or counts["K"] == 0:
        raise InputError(
            f"{path}: annots['cams'] lists K, R, T, D for different (or zero) numbers of cameras: {counts}."
        )
    if not np.isfinite(np.concatenate([a.reshape(len(a), -1) for a in arrays.values()], 1)).all():
        raise InputError(f"{path}: annots['cams'] holds NaN or infinite values.")
    arrays["T"] = arrays["T"] / 1000.0  # millimetres -> metres
    num_cameras = counts["K"]
    ims = annots["ims"]
    if not hasattr(ims, "__len__") or len(ims) == 0:
        raise InputError(f"{path}: annots['ims'] is empty; it must list one {{'ims': [image per camera]}} per frame.")
    names: List[List[str]] = []
    for frame, entry in enumerate(ims):
        frame_names = entry.get("ims") if isinstance(entry, dict) else None
        if frame_names is None or len(frame_names) != num_cameras:
            got = "no 'ims' list" if frame_names is None else f"{len(frame_names)} images"
            raise InputError(
                f"{path}: annots['ims'][{frame}] has {got}; expected a dict with 'ims' listing {num_cameras} "
                "image paths (one per camera in annots['cams'])."
            )
        names.append([str(name) for name in frame_names])
    return arrays, names


def param_file_index(image_name: str) -> Optional[int]:
    """The number in a frame's parameter file name, parsed from its image name (None if unknown).

    ``Camera_B1/000123.jpg`` -> 123; ``Camera (1)/CoreView_313_Camera_(1)_0001_2019-08-23_16-08-50.592.jpg`` -> 1.
    """
    stem = Path(image_name).stem
    if stem.isdigit():
        return int(stem)
    match = _LONG_NAME.search(Path(image_name).name)
    if match:
        return int(match.group(2))
    parts = Path(image_name).name.split("_")
    if len(parts) > 4 and parts[4].isdigit():
        return int(parts[4])
    return None


# ----------------------------------------------------------------------------------------------
# body parameters


def choose_params_dir(root: Path, params: ParamsChoice) -> Path:
    """``new_params/`` (with pose blend shapes, used by ARAH/HumanNeRF) if present under "auto", else ``params/``."""
    candidates = ["new_params", "params"] if params == "auto" else [params]
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise InputError(
        f"No SMPL parameter folder in {root}: looked for {', '.join(c + '/' for c in candidates)}. "
        "A raw ZJU-MoCap capture holds new_params/{i}.npy (or params/{i}.npy); pass --params to pick one."
    )


def load_params_file(path: Path) -> Dict[str, np.ndarray]:
    """One EasyMocap parameter file: ``poses`` (72), ``Rh`` (3), ``Th`` (3, metres), ``shapes`` (10)."""
    try:
        data = np.load(path, allow_pickle=True)
        data = data.item() if data.dtype == object else None
    except Exception as error:  # noqa: BLE001
        raise InputError(f"Cannot read the SMPL parameter file {path}: {error}.") from error
    if not isinstance(data, dict):
        raise InputError(f"{path} is not an EasyMocap parameter file (expected a dict with poses, Rh, Th, shapes).")
    out = {}
    for key, size in PARAM_SHAPES.items():
        if key not in data:
            raise InputError(f"{path} lacks the key {key!r} (found {sorted(data)}); expected poses, Rh, Th, shapes.")
        value = np.asarray(data[key], dtype=np.float64)
        if value.size != size:
            raise InputError(f"{path}: {key!r} has shape {value.shape}; expected ({size},) or (1, {size}).")
        if not np.isfinite(value).all():
            raise InputError(f"{path}: {key!r} holds NaN or infinite values; re-fit or drop this frame.")
        out[key] = value.reshape(size)
    return out


def _vertices_dir(params_dir: Path) -> Path:
    return params_dir.parent / ("new_vertices" if params_dir.name == "new_params" else "vertices")


# ----------------------------------------------------------------------------------------------
# the capture


def read_capture(
    root: Path,
    camera_indices: Optional[Sequence[int]] = None,
    frame_indices: Optional[Sequence[int]] = None,
    params: ParamsChoice = "auto",
    masks: MasksChoice = "auto",
    check_files: bool = True,
) -> ZJUCapture:
    """Read the selected cameras and frames of the raw ZJU-MoCap capture at ``root``.

    Args:
        root: the subject folder (``.../CoreView_377``) holding ``annots.npy``.
        camera_indices: indices into ``annots['cams']`` (0-based); ``None``: every camera.
        frame_indices: 0-based frame ids (positions in ``annots['ims']``); ``None``: every frame.
        params: parameter folder: ``new_params`` (refit with pose blend shapes), ``params`` or "auto"
            (``new_params`` when present).
        masks: mask folder: ``mask_cihp`` (what NeuralBody trains with), ``mask``, ``union`` (both OR-ed,
            like HumanNeRF) or "auto" (``mask_cihp`` when its file for the first image exists, else ``mask``).
        check_files: check that every selected image and mask file exists.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"The capture folder {root} does not exist. Point --data at a ZJU-MoCap subject folder.")
    cams, names = load_annots(root)
    num_cameras, num_frames = len(cams["K"]), len(names)
    all_camera_names = [
        Path(name).parts[0] if len(Path(name).parts) > 1 else f"camera {i}" for i, name in enumerate(names[0])
    ]
    cameras = list(range(num_cameras)) if camera_indices is None else [int(c) for c in camera_indices]
    frames = list(range(num_frames)) if frame_indices is None else [int(f) for f in frame_indices]
    check_camera_indices(cameras, all_camera_names, root / "annots.npy")
    check_frame_indices(frames, num_frames, root / "annots.npy")

    image_paths = [[root / names[f][c] for c in cameras] for f in frames]

    params_dir = choose_params_dir(root, params)
    param_files = _param_file_indices(names, frames, params_dir)
    missing = [params_dir / f"{n}.npy" for n in param_files if not (params_dir / f"{n}.npy").is_file()]
    if missing:
        available = len(list(params_dir.glob("*.npy")))
        raise InputError(
            f"Frame count mismatch: {root / 'annots.npy'} lists {num_frames} frames but {params_dir} holds "
            f"{available} parameter files; {len(missing)} selected frame(s) have none, e.g. {missing[0]}. "
            "Select frames that have parameters (--train-frames/--test-frames) or restore the folder."
        )
    loaded = [load_params_file(params_dir / f"{n}.npy") for n in param_files]
    body_params = {key: np.stack([p[key] for p in loaded]).astype(np.float32) for key in PARAM_SHAPES}

    vertices = None
    vertices_dir = _vertices_dir(params_dir)
    if vertices_dir.is_dir():
        vertex_files = [vertices_dir / f"{n}.npy" for n in param_files]
        _check_exist(vertex_files, "fitted-vertices", f"Restore {vertices_dir} or remove the folder.")
        vertices = np.stack([np.load(p).astype(np.float32) for p in vertex_files])

    mask_dir = choose_mask_dir(root, image_paths[0][0], masks)
    capture = ZJUCapture(
        root=root,
        camera_names=[all_camera_names[c] for c in cameras],
        camera_indices=cameras,
        K=cams["K"][cameras].astype(np.float64),
        R=cams["R"][cameras].astype(np.float64),
        T=cams["T"][cameras].astype(np.float64),
        D=cams["D"][cameras].astype(np.float64),
        frame_indices=frames,
        image_paths=image_paths,
        mask_paths=[],
        params=body_params,
        vertices=vertices,
        params_dir=params_dir,
        mask_dir=mask_dir,
        param_file_indices=param_files,
        num_frames_total=num_frames,
        all_camera_names=all_camera_names,
    )
    capture.mask_paths = [[capture.mask_sources(f, c)[0] for c in range(len(cameras))] for f in range(len(frames))]
    if check_files:
        check_capture_files(capture, [(f, c) for f in range(len(frames)) for c in range(len(cameras))], masks)
    return capture


def check_capture_files(capture: ZJUCapture, images: Sequence[Tuple[int, int]], masks: MasksChoice = "auto") -> None:
    """Check that the image and mask files of the given (frame row, camera row) pairs exist."""
    _check_exist(
        [capture.image_paths[f][c] for f, c in images], "image", "Restore the images or select other cameras/frames."
    )
    looked_for = MASK_FOLDERS if masks in ("auto", "union") else (masks,)
    looked = ", ".join(f"{capture.root / name}/" for name in looked_for)
    for folder_index, _ in enumerate(capture.mask_dirs):
        paths = [capture.mask_sources(f, c)[folder_index] for f, c in images]
        _check_exist(
            paths, "mask", f"Looked for masks in {looked}. Restore the masks or choose another folder with --masks."
        )


def check_camera_indices(cameras: Sequence[int], names: Sequence[str], annots_path: Path) -> None:
    bad = [c for c in cameras if not 0 <= c < len(names)]
    if bad:
        listing = ", ".join(f"{i}={name}" for i, name in enumerate(names))
        raise InputError(f"Unknown camera index {bad[0]} for {annots_path}; the cameras are (index=folder): {listing}.")


def check_frame_indices(frames: Sequence[int], num_frames: int, annots_path: Path) -> None:
    bad = [f for f in frames if not 0 <= f < num_frames]
    if bad:
        raise InputError(
            f"Frame {bad[0]} is out of range: {annots_path} lists {num_frames} frames (ids 0..{num_frames - 1}). "
            "Choose frames in that range."
        )


def choose_mask_dir(root: Path, first_image: Path, masks: MasksChoice) -> str:
    if masks != "auto":
        return masks
    relative = first_image.relative_to(root).with_suffix(".png")
    for folder in MASK_FOLDERS:
        if (root / folder / relative).is_file():
            return folder
    looked = ", ".join(str(root / folder / relative) for folder in MASK_FOLDERS)
    raise InputError(f"No mask for {first_image}: looked for {looked}. ZJU-MoCap masks live in mask_cihp/ or mask/.")


def _param_file_indices(names: List[List[str]], frames: Sequence[int], params_dir: Path) -> List[int]:
    parsed = [param_file_index(names[f][0]) for f in frames]
    if all(n is not None for n in parsed):
        return [int(n) for n in parsed]  # type: ignore[arg-type]
    offset = 0 if (params_dir / "0.npy").is_file() else 1  # unknown naming: count frames from the first file
    return [f + offset for f in frames]


def _check_exist(paths: Sequence[Path], what: str, fix: str) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        shown = "\n  ".join(str(p) for p in missing[:5])
        more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"{len(missing)} {what} file(s) are missing:\n  {shown}{more}\n{fix}")
