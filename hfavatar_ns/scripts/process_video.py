"""``hfavatar-process-video INPUT OUTPUT_DIR``: a video (or a folder of photos) of one person to a capture
that ``ns-train hfavatar --data OUTPUT_DIR`` trains on, offline."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import tyro

from hfavatar_ns.errors import InputError, exit_on_input_error


@dataclass
class ProcessVideoArgs:
    """Turn a video of one person into a one-camera capture: frames, person masks, 2D landmarks, a static
    camera and per-frame body fits, in the raw ZJU-MoCap layout, then check it (overlays in OUTPUT/check)."""

    input: tyro.conf.Positional[Optional[Path]] = None
    """A video file, or a folder of images in name order (one camera, one person)."""
    output: tyro.conf.Positional[Optional[Path]] = None
    """The capture folder to write."""
    num_frames: Optional[int] = 120
    """Frames to use, evenly spread over the video (all if it has fewer)."""
    stride: Optional[int] = None
    """Use every k-th frame instead of --num-frames."""
    long_side: Optional[int] = 540
    """Resize frames so the long side has this many pixels (never up); 0 keeps the size."""
    focal_px: Optional[float] = None
    """The camera's focal length in pixels of the video's own frames (before --long-side resizes them)."""
    fov_deg: Optional[float] = None
    """The camera's field of view across the long side, degrees (instead of --focal-px)."""
    body_model: Literal["free", "smpl"] = "free"
    """free: the bundled licence-free body; smpl: SMPL from --body-model-dir (shape is fitted too)."""
    body_model_dir: Optional[Path] = None
    """Folder with the SMPL model files (smpl/SMPL_NEUTRAL.pkl, ...), for --body-model smpl."""
    gender: Literal["neutral", "male", "female"] = "neutral"
    min_frames: int = 8
    """Fewer usable frames than this is an error."""
    overwrite: bool = False
    """Replace OUTPUT if it exists."""
    install_mediapipe: bool = False
    """Make the mediapipe environment the landmark stage runs in (once, needs the package index) and exit
    when no INPUT is given."""


@exit_on_input_error
def main() -> None:
    warnings.filterwarnings("ignore", category=UserWarning)
    args = tyro.cli(ProcessVideoArgs)
    if args.install_mediapipe:
        from hfavatar_ns.video.mediapipe_env import install

        print(f"mediapipe ready: {install()}")
        if args.input is None:
            return
    if args.input is None or args.output is None:
        raise InputError("Give the video (or image folder) and the capture folder: hfavatar-process-video INPUT OUTPUT_DIR.")
    if args.num_frames is not None and args.stride is not None:
        args.num_frames = None
    from hfavatar_ns.video.pipeline import ProcessVideoConfig, process_video

    report = process_video(
        ProcessVideoConfig(
            input=args.input,
            output=args.output,
            num_frames=args.num_frames,
            stride=args.stride,
            long_side=args.long_side or None,
            focal_px=args.focal_px,
            fov_deg=args.fov_deg,
            body_model=args.body_model,
            body_model_dir=args.body_model_dir,
            gender=args.gender,
            min_frames=args.min_frames,
            overwrite=args.overwrite,
        )
    )
    dropped = report["frames_without_person"] + report["frames_person_partly_outside"] + report["frames_undecodable"]
    print(
        f"Wrote {args.output}: {report['frames_kept']} frames ({dropped} dropped: {report['frames_without_person']} "
        f"without a person, {report['frames_person_partly_outside']} with the body partly out of the image, "
        f"{report['frames_undecodable']} undecodable); "
        + (f"{report['mask_regions_dropped']} mask pieces away from the person dropped (other people or clutter); "
           if report["mask_regions_dropped"] else "")
        + f"body fit {report['fit_joint_error_px_mean']:.1f} px from the "
        f"landmarks; {report['seconds']:.0f} s. Overlays: {args.output}/check.\n"
        f"Train: ns-train hfavatar-lite --pipeline.model.colour-on-background-labels none --data {args.output}"
        "   (or hfavatar on a GPU; the masks are estimated, so their background labels stay out of the colour loss)"
    )


if __name__ == "__main__":
    main()
