"""The web page end to end in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Chromium's fake camera plays a Y4M video made of generated faces (``drawn_faces``: no real
data needed) on a background: two seconds of one face, two of another, looped. The server's
classifier is the deterministic :class:`BrightnessClassifier`, which reads the two faces as two
different emotions, so the page must show boxes and labels for both and its light swatch must
change colour between them.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ferlab.light import LightMapper
from ferlab.recognize import Recognizer
from ferlab.serve import ServeSettings, create_app
from tests.recognize.recognize_helpers import BrightnessClassifier
from tests.serve.serve_helpers import jpeg, live_server, photo

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium); .ci/run installs it",
        allow_module_level=True,
    )
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

#: The two drawn faces, a bright and a dark one: the classifier labels them differently
#: (checked in the test).
FACE_A, FACE_B = 2, 0
FPS = 10


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = FPS) -> Path:
    """BGR frames as an uncompressed YUV 4:2:0 video, the format Chromium's fake camera plays."""
    h, w = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def scenes(drawn_faces) -> tuple[np.ndarray, np.ndarray]:
    return photo(drawn_faces[FACE_A]), photo(drawn_faces[FACE_B])


@pytest.fixture(scope="module")
def camera_file(scenes, tmp_path_factory) -> Path:
    a, b = scenes
    frames = [a] * (2 * FPS) + [b] * (2 * FPS)
    return write_y4m(tmp_path_factory.mktemp("camera") / "faces.y4m", frames)


@pytest.fixture(scope="module")
def server() -> str:
    settings = ServeSettings(light_tau=0.2)
    with live_server(create_app(BrightnessClassifier(), settings=settings)) as url:
        yield url


@pytest.fixture(scope="module")
def browser(camera_file):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",  # CI runs as root
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={camera_file}",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str):
    """A page at ``url`` whose console errors and uncaught exceptions are collected."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    # A locator wait, not wait_for_function: the page's CSP forbids the eval() that polls with.
    page.locator("#model", has_text=re.compile(r"^model ")).wait_for()
    return page, errors


def expected_labels(scenes) -> tuple[str, str]:
    rec = Recognizer(model=BrightnessClassifier())
    (a,), (b,) = (rec.process_frame(s) for s in scenes)
    return a.label, b.label


def test_page_loads_without_console_errors(browser, server):
    page, errors = open_page(browser, server)
    assert "BrightnessClassifier" in page.inner_text("#model")
    assert page.locator("#legend span").count() == 7
    page.wait_for_timeout(300)
    assert errors == []


def test_live_camera_boxes_labels_and_light_change(browser, server, scenes):
    label_a, label_b = expected_labels(scenes)
    assert label_a != label_b  # the premise of the colour change
    page, errors = open_page(browser, server)
    page.click("#start")
    page.wait_for_selector("#faces .face .label", timeout=30_000)
    seen_labels: set[str] = set()
    colours: set[tuple[int, ...]] = set()
    boxes_drawn = False
    mapper = LightMapper()
    target_a = mapper.colors[label_a]

    def colour_spread() -> float:
        """How far the swatch got from its colour nearest face A's emotion colour."""
        if not colours:
            return 0.0
        nearest_a = min(colours, key=lambda c: np.linalg.norm(np.subtract(c, target_a)))
        return max(np.linalg.norm(np.subtract(c, nearest_a)) for c in colours)

    # The light is smoothed over time, so keep watching until it has travelled (or time is up).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        {label_a, label_b} <= seen_labels and colour_spread() > 40
    ):
        seen_labels.update(page.locator("#faces .face .label").all_inner_texts())
        rgb = page.get_attribute("#swatch", "data-rgb")
        if rgb:
            colours.add(tuple(int(v) for v in rgb.split(",")))
        # Box outlines are drawn on the overlay canvas: some of its pixels are not transparent.
        boxes_drawn = boxes_drawn or page.evaluate(
            """() => {
                const c = document.getElementById('overlay');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let i = 3; i < d.length; i += 4) if (d[i] > 0) return true;
                return false;
            }"""
        )
        page.wait_for_timeout(150)
    page.click("#stop")
    assert {label_a, label_b} <= seen_labels
    assert boxes_drawn
    # The swatch moved between the two faces' colours: far apart, not a flicker of a few levels.
    assert colour_spread() > 40, colours
    stats = page.inner_text("#stats")
    assert "frames/s" in stats and "dropped" in stats
    assert errors == []


def test_photo_upload_mode(browser, server, scenes, tmp_path):
    path = tmp_path / "portrait.jpg"
    path.write_bytes(jpeg(scenes[0]))
    page, errors = open_page(browser, server)
    page.click("#tab-photo")
    page.set_input_files("#photo-input", str(path))
    page.wait_for_selector("#faces .face .label", timeout=30_000)
    assert page.locator("#faces .face").count() == 1
    assert page.locator("#faces .face .bar").count() == 7
    assert page.evaluate("document.getElementById('photo-canvas').width") == 640
    assert errors == []


def test_page_asks_for_the_api_key(browser, scenes, tmp_path):
    path = tmp_path / "portrait.jpg"
    path.write_bytes(jpeg(scenes[0]))
    app = create_app(BrightnessClassifier(), settings=ServeSettings(api_key="page-key"))
    with live_server(app) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        page.locator("#model", has_text="API key").wait_for()
        assert page.is_visible("#api-key")
        page.fill("#api-key", "page-key")
        page.locator("#api-key").dispatch_event("change")
        page.locator("#model", has_text=re.compile(r"^model ")).wait_for()
        page.click("#tab-photo")
        page.set_input_files("#photo-input", str(path))
        page.wait_for_selector("#faces .face .label", timeout=30_000)
        assert page.evaluate("localStorage.getItem('ferlab-api-key')") == "page-key"
        # The stream gets the key as its first message, never in its URL.
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        page.click("#tab-camera")
        page.click("#start")
        page.locator("#stats", has_text="frames/s").wait_for(timeout=30_000)
        page.click("#stop")
        assert sockets and all("page-key" not in u and "?" not in u for u in sockets)
    assert errors == []
