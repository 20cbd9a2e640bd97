"""Which frame the viewer shows: the Frame slider, the capture frame id beside it, the Canonical pose box.

Cameras from the viewer (and from ``ns-render`` trajectories) carry no ``frame_idx``. Which frame they show:

* the "Frame" slider (a row of the avatar's :class:`~hfavatar_ns.body.body_frames.BodyFrames`), unless
* nerfstudio's "Time" slider moved since the last render: then its value picks the nearest capture
  row and the Frame slider is moved there. So whichever slider moved last wins. The Time value first
  counts as seen at its default, 0.0.

Cameras with ``frame_idx`` (datasets, ``ns-eval``, ``ns-render dataset``) are never changed. The GUI
state is read only while rendering in eval mode: training never depends on it.
"""

from __future__ import annotations

import copy
from typing import Callable, Dict, List, Optional

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.viewer.viewer_elements import ViewerCheckbox, ViewerSlider, ViewerText
from torch import Tensor, nn

from hfavatar_ns.body.body_frames import BodyFrames


def camera_with_frame(camera: Cameras, row: int) -> Cameras:
    """A shallow copy of ``camera`` whose rays carry ``frame_idx = row``."""
    camera = copy.copy(camera)
    metadata = {k: v for k, v in (camera.metadata or {}).items() if isinstance(v, Tensor)}
    metadata["frame_idx"] = torch.full((*camera.shape, 1), int(row), dtype=torch.long, device=camera.device)
    camera.metadata = metadata
    return camera


def render_in_chunks(
    ray_bundle: RayBundle, render: Callable[[RayBundle], Dict[str, Tensor]], chunk_size: int, device
) -> Dict[str, Tensor]:
    """``render`` (rays -> outputs) over an image's rays ``[H, W]``, ``chunk_size`` rays at a time."""
    height, width = ray_bundle.origins.shape[:2]
    chunks: Dict[str, List[Tensor]] = {}
    for start in range(0, len(ray_bundle), chunk_size):
        rays = ray_bundle.get_row_major_sliced_ray_bundle(start, start + chunk_size).to(device)
        for name, value in render(rays).items():
            chunks.setdefault(name, []).append(value)
    return {name: torch.cat(values).view(height, width, -1) for name, values in chunks.items()}


def frame_label(body: BodyFrames, row: int) -> str:
    """The capture frame id of a row, as text (novel-motion rows have negative ids)."""
    frame_id = body.frame_id(min(max(int(row), 0), body.num_frames - 1))
    return str(frame_id) if frame_id >= 0 else f"novel motion frame {-frame_id - 1}"


class ViewerFrameControls(nn.Module):
    """The viewer's frame controls (a submodule so nerfstudio's viewer finds its elements; no state of its own
    beyond the GUI's)."""

    def __init__(self, body: BodyFrames) -> None:
        super().__init__()
        object.__setattr__(self, "body", body)  # read, not owned
        ids = body.frame_ids.tolist()
        shown = ", ".join(str(i) for i in ids[:12]) + (" ..." if len(ids) > 12 else "")
        self.frame_slider = ViewerSlider(
            "Frame", 0, 0, max(body.num_frames - 1, 1), 1, cb_hook=self._show_frame_id,
            hint=f"Row of the avatar's frame table ({body.num_frames} rows; capture frame ids {shown})",
        )  # fmt: skip
        self.frame_id = ViewerText(
            "Capture frame id", frame_label(body, 0), disabled=True, hint="The capture frame the Frame slider shows"
        )
        self.canonical = ViewerCheckbox(
            "Canonical pose", False, hint="Render the canonical avatar (no deformation), placed at the frame's pelvis"
        )
        self.last_time: float = 0.0

    def _show_frame_id(self, slider: ViewerSlider) -> None:
        self.frame_id.value = frame_label(self.body, int(slider.value))

    def row(self, times: Optional[Tensor]) -> int:
        """The row for a camera without frame metadata (see the module docstring); reads the slider once."""
        body = self.body
        row = int(self.frame_slider.value)
        if times is not None and times.numel() > 0:
            time = float(times.reshape(-1)[0])
            if abs(time - self.last_time) > 1e-6:
                self.last_time = time
                time_row = body.row_at_time(time)
                if time_row != row:
                    self.frame_slider.value = time_row  # moves the GUI slider
                row = time_row
        row = min(max(row, 0), body.num_frames - 1)
        if self.frame_id.value != frame_label(body, row):
            self.frame_id.value = frame_label(body, row)
        return row

    def rows_changed(self) -> None:
        """Let the slider reach rows appended to the body (a novel motion)."""
        self.frame_slider.max = max(self.body.num_frames - 1, 1)
        if self.frame_slider.gui_handle is not None:
            self.frame_slider.gui_handle.max = self.frame_slider.max
