"""The avatar viewer in a real browser: ``ns-viewer`` on a tiny trained run, opened in headless Chromium
(driven by Playwright), where moving the "Frame" slider must change the rendered avatar.

What a user does, step by step: open the page, lower "Max res" (a CPU render of 512 px takes minutes),
hide the training cameras, frame the avatar with the mouse (wheel, then drags), press End on the Frame
slider, look at the picture. We know when a render has arrived by reading the viewer's websocket
messages (viser's BackgroundImageMessage), and compare screenshots of the render area.

Needs Debian's Chromium at /usr/bin/chromium (``make system-deps``) and the ``playwright`` package (the
``test`` extra); no browser is ever downloaded. ``HFAVATAR_SAVE_SCREENSHOTS=1`` also writes
docs/images/viewer.png for the README.
"""

import io
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.slow  # 45-60 s for the viewer and the browser, plus the shared tiny training run

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # we may run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--enable-unsafe-swiftshader",  # software WebGL: viser draws the render as a texture in a WebGL canvas
    "--use-angle=swiftshader",
]
VIEWPORT = {"width": 960, "height": 640}
MAX_RES = 96  # the viewer's "Max res": renders of at most 96 px a side keep a CPU render at a few seconds
SCREENSHOT_MAX_RES = 256  # for docs/images/viewer.png only
FRAMED_POSITION = (13.31, 13.31, 12.57)  # viser's camera after frame_the_avatar (viser units)
FRAMED_LOOK_AT = (-1.13, -1.13, 8.9)
SCREENSHOT_PATH = REPO / "docs" / "images" / "viewer.png"

VIEWER_START_TIMEOUT_S = 240.0  # loading nerfstudio, the checkpoint and the capture; slow when the CPUs are shared
RENDER_TIMEOUT_S = 180.0


@pytest.fixture(scope="session")
def playwright_api():
    """Playwright's sync API, or a failure that says how to install what is missing (checked before the
    tiny training run: session fixtures listed first are set up first)."""
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium is missing at {CHROMIUM}: the viewer's browser test needs it. "
            "Run `make system-deps` as root (it runs `apt-get install chromium`) or install Debian's chromium yourself."
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("The `playwright` package is missing: `pip install -e '.[test]'` (never `playwright install`).")
    return sync_playwright


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ns_viewer_command() -> List[str]:
    script = Path(sys.executable).parent / "ns-viewer"
    if not script.is_file():
        pytest.fail(f"ns-viewer not found next to {sys.executable}: install nerfstudio into this environment.")
    return [str(script)]


@contextmanager
def running_viewer(config: Path, port: int, log_path: Path) -> Iterator[str]:
    """``ns-viewer`` on ``config`` in its own process group; yields its URL once it answers HTTP."""
    command = ns_viewer_command() + [
        "--load-config", str(config),
        "--viewer.websocket-port", str(port),
        "--viewer.websocket-host", "127.0.0.1",
        "--viewer.image-format", "png",  # lossless, so that an unchanged render gives unchanged pixels
        "--viewer.default-composite-depth", "False",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    url = f"http://127.0.0.1:{port}/"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + VIEWER_START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"ns-viewer exited with code {process.returncode}:\n{log_tail(log_path)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                waited = f"{VIEWER_START_TIMEOUT_S:.0f} s"
                pytest.fail(f"ns-viewer did not serve {url} within {waited}:\n{log_tail(log_path)}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=20)


def log_tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ViewerTraffic:
    """What the page and the viewer tell each other over the websocket (viser's msgpack messages), in the
    order Playwright delivers it: the renders the viewer sent (their pixel sizes) and the cameras the page
    sent. (Playwright delivers websocket events only while the test waits on it.)"""

    def __init__(self, page):
        import msgspec

        self._decode = msgspec.msgpack.decode
        self.events: List[Tuple[str, object]] = []  # ("render", (width, height)) or ("camera", message)
        self.last_camera_time = 0.0
        page.on("websocket", self._on_websocket)

    def _on_websocket(self, websocket) -> None:
        websocket.on("framereceived", self._on_received)
        websocket.on("framesent", self._on_sent)

    def _messages(self, payload, kind: str) -> List[dict]:
        if not isinstance(payload, bytes) or kind.encode() not in payload:
            return []
        messages = self._decode(payload)
        messages = messages if isinstance(messages, (list, tuple)) else [messages]
        return [m for m in messages if isinstance(m, dict) and m.get("type") == kind]

    def _on_received(self, payload) -> None:
        for message in self._messages(payload, "BackgroundImageMessage"):
            self.events.append(("render", Image.open(io.BytesIO(message["rgb_bytes"])).size))

    def _on_sent(self, payload) -> None:
        for message in self._messages(payload, "ViewerCameraMessage"):
            self.events.append(("camera", message))
            self.last_camera_time = time.monotonic()

    def renders_since(self, since: int) -> List[Tuple[int, int]]:
        return [size for kind, size in self.events[since:] if kind == "render"]

    def after_last_camera(self) -> int:
        cameras = [i for i, (kind, _) in enumerate(self.events) if kind == "camera"]
        return cameras[-1] + 1 if cameras else 0

    def camera_count(self) -> int:
        return sum(kind == "camera" for kind, _ in self.events)

    def last_camera(self) -> dict:
        cameras = [message for kind, message in self.events if kind == "camera"]
        return cameras[-1] if cameras else {}

    def camera_pose(self) -> str:
        pose = self.last_camera()
        return ", ".join(f"{k} {np.round(pose[k], 2).tolist()}" for k in ("position", "look_at") if k in pose)

    def wait_for_camera_to_rest(self, page, quiet_s: float = 0.6, timeout_s: float = 30.0) -> None:
        """Wait until the page has sent no camera for ``quiet_s`` (its camera moves smoothly, over frames)."""
        deadline = time.monotonic() + timeout_s
        page.wait_for_timeout(100)
        while time.monotonic() - self.last_camera_time < quiet_s and time.monotonic() < deadline:
            page.wait_for_timeout(100)

    def wait_for_full_render(self, page, since: int, max_res: int, what: str) -> None:
        """Wait for a render at full resolution ("Max res" on its longer side) among the events from ``since``.

        The viewer answers a change with quick low-resolution renders, then one at Max res once nothing
        moves; that one shows the final state, and the viewer then waits for the next change."""
        deadline = time.monotonic() + RENDER_TIMEOUT_S
        while not any(max(size) == max_res for size in self.renders_since(since)):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"No {max_res} px render from the viewer within {RENDER_TIMEOUT_S:.0f} s after {what} "
                    f"(renders since: {self.renders_since(since)})"
                )
            page.wait_for_timeout(200)


def exact_label(page, label: str):
    return page.locator(f"xpath=//label[normalize-space()='{label}']").first


def element_for_label(page, label: str):
    """The element a viser GUI label is for (a slider's root, a checkbox, a text input)."""
    return page.locator(f"[id='{exact_label(page, label).get_attribute('for')}']")


def input_beside_label(page, label: str):
    """The visible input on the row of a viser GUI label (a text element's box)."""
    visible_input = "input[not(@type='hidden')]"
    return page.locator(
        f"xpath=//label[normalize-space()='{label}']/ancestor::div[.//{visible_input}][1]//{visible_input}"
    ).first


def slider_number_input(page, label: str):
    """The number box beside a viser slider."""
    element_id = exact_label(page, label).get_attribute("for")
    number = "following-sibling::*/descendant-or-self::input[not(@type='hidden')]"
    return page.locator(f"xpath=//*[@id='{element_id}']/{number}").first


def drag(page, start: Tuple[float, float], offset: Tuple[float, float], button: str, steps: int = 10) -> None:
    page.mouse.move(*start)
    page.wait_for_timeout(100)
    page.mouse.down(button=button)
    page.wait_for_timeout(100)
    for step in range(1, steps + 1):
        page.mouse.move(start[0] + offset[0] * step / steps, start[1] + offset[1] * step / steps)
        page.wait_for_timeout(30)
    page.mouse.up(button=button)


def frame_the_avatar(page, traffic: ViewerTraffic, center: Tuple[float, float]) -> None:
    """Move viser's camera, as a user would with the mouse, to see the whole avatar.

    viser starts at (3, 3, 3) (its units are 10x nerfstudio's metres) looking at the origin, i.e. 0.5 m from
    the avatar's feet. Each wheel notch of 100 moves 5 % further away (22 notches: 16 units); dragging
    with the left button orbits, 0.6 degree per pixel (41 px up: down to ~10 degrees of elevation); with
    the right button it pans (216 px down: the view centre up to the avatar's hips); 5 more notches
    show it from head to feet. Wheel steps and drags are exact, so every run sees the same view, as long
    as each step starts once the camera has come to rest (how far a drag pans depends on the distance).
    A drag that the page ignored (no camera sent; seen when the page was busy) is made again."""
    steps = (
        lambda: wheel(page, center, 22),
        lambda: drag(page, center, (0, -41), "left"),
        lambda: drag(page, center, (0, 216), "right"),
        lambda: wheel(page, center, 5),
    )
    for step in steps:
        for _attempt in range(3):
            cameras_before = traffic.camera_count()
            step()
            traffic.wait_for_camera_to_rest(page)
            if traffic.camera_count() > cameras_before:
                break
    pose = traffic.last_camera()
    for key, expected in (("position", FRAMED_POSITION), ("look_at", FRAMED_LOOK_AT)):
        assert np.allclose(pose.get(key, np.nan), expected, atol=0.3), (
            f"the mouse did not frame the avatar: camera {traffic.camera_pose()}, expected {key} {expected}"
        )


def wheel(page, at: Tuple[float, float], notches: int) -> None:
    page.mouse.move(*at)
    for _ in range(notches):
        page.mouse.wheel(0, 100)
        page.wait_for_timeout(60)


def render_area(page, clip: Dict[str, float]) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.screenshot(clip=clip))).convert("RGB"), dtype=np.float32)


def settled_render_area(page, clip: Dict[str, float], timeout_s: float = 20.0) -> np.ndarray:
    """A screenshot of the render area once two in a row agree (the page decodes and draws a render
    a moment after it arrives)."""
    page.wait_for_timeout(500)
    previous = render_area(page, clip)
    deadline = time.monotonic() + timeout_s
    while True:
        page.wait_for_timeout(500)
        current = render_area(page, clip)
        if np.abs(current - previous).max() == 0 or time.monotonic() > deadline:
            return current
        previous = current


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def test_frame_slider_changes_the_render_in_the_browser(playwright_api, tiny_avatar_run, tmp_path):
    port = free_port()
    with running_viewer(tiny_avatar_run, port, tmp_path / "ns-viewer.log") as url, playwright_api() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(120_000)
            traffic = ViewerTraffic(page)
            page.goto(url)
            page.get_by_text("Resolution:").wait_for()  # the GUI arrived over the websocket

            max_res = slider_number_input(page, "Max res")
            max_res.fill(str(MAX_RES))
            max_res.press("Enter")
            page.get_by_role("button", name="Hide Train Cams").click()
            canvas = page.locator("canvas").first.bounding_box()
            panel_left = page.get_by_role("button", name="Pause Training").bounding_box()["x"] - 10
            clip = {"x": canvas["x"], "y": canvas["y"], "width": panel_left - canvas["x"], "height": canvas["height"]}
            frame_the_avatar(page, traffic, (clip["x"] + clip["width"] / 2, clip["y"] + clip["height"] / 2))
            traffic.wait_for_full_render(page, traffic.after_last_camera(), MAX_RES, "framing the avatar")
            first = settled_render_area(page, clip)
            Image.fromarray(first.astype(np.uint8)).save(tmp_path / "render_area_frame0.png")
            assert first.std() > 5, "no avatar in view (a flat render area)"
            page.wait_for_timeout(2000)
            unchanged = settled_render_area(page, clip)

            frame = element_for_label(page, "Frame").locator("[role=slider]")
            frame_id = input_beside_label(page, "Capture frame id")
            last_frame = int(frame.get_attribute("aria-valuemax"))
            assert last_frame >= 1, "the tiny capture has several frames"
            first_frame_id = frame_id.input_value()
            since = len(traffic.events)
            frame.press("End")  # the keyboard, as on any slider (arrow keys would also turn viser's camera)
            traffic.wait_for_full_render(page, since, MAX_RES, f"moving the Frame slider to {last_frame}")
            moved = settled_render_area(page, clip)
            assert frame.get_attribute("aria-valuenow") == str(last_frame)
            assert frame_id.input_value() != first_frame_id, "the model did not show the new frame's capture id"

            since = len(traffic.events)
            frame.press("Home")
            traffic.wait_for_full_render(page, since, MAX_RES, "moving the Frame slider back to 0")
            back = settled_render_area(page, clip)

            if os.environ.get("HFAVATAR_SAVE_SCREENSHOTS") == "1":
                save_screenshot(page, traffic, frame)
        finally:
            browser.close()

    for name, image in (("frame0_again", unchanged), (f"frame{last_frame}", moved), ("back_to_0", back)):
        Image.fromarray(image.astype(np.uint8)).save(tmp_path / f"render_area_{name}.png")  # to look at on failure
    noise, change, return_error = (mean_abs_diff(first, other) for other in (unchanged, moved, back))
    print(f"mean |diff| 0..255: no-op {noise:.3f}, frame 0 -> {last_frame} {change:.3f}, back to 0 {return_error:.3f}")
    assert change > 1.0, f"moving the Frame slider barely changed the render (mean |diff| {change:.3f})"
    assert change > 10 * max(noise, 0.05), f"change {change:.3f} is not well above the no-op difference {noise:.3f}"
    assert return_error < change / 10, f"frame 0 again differs from the first frame 0 render ({return_error:.3f})"


def save_screenshot(page, traffic: ViewerTraffic, frame) -> None:
    """docs/images/viewer.png: the last frame, rendered at a higher resolution, with the Frame slider in view.
    The title bar is left out (its logo is fetched from the internet, which the test machine may lack)."""
    since = len(traffic.events)
    frame.press("End")
    max_res = slider_number_input(page, "Max res")
    max_res.fill(str(SCREENSHOT_MAX_RES))
    max_res.press("Enter")
    traffic.wait_for_full_render(page, since, SCREENSHOT_MAX_RES, "raising Max res for the screenshot")
    frame.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)
    canvas = page.locator("canvas").first.bounding_box()
    SCREENSHOT_PATH.parent.mkdir(parents=True, exist_ok=True)
    below_title_bar = {"x": 0, "y": canvas["y"], "width": VIEWPORT["width"], "height": canvas["height"]}
    page.screenshot(path=str(SCREENSHOT_PATH), clip=below_title_bar)
