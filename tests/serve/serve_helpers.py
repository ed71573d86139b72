"""Pieces shared by the web-service tests: scenes of real faces, a live server, slow classifiers."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np
import uvicorn

from ferlab.serve import server_config
from tests.recognize.recognize_helpers import BrightnessClassifier, background, paste

#: Where the face is pasted in :func:`photo` scenes: x, y, side.
FACE_AT = (300, 150, 160)


def photo(face: np.ndarray, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    """A BGR scene of ``size`` (width, height) with ``face`` pasted at :data:`FACE_AT` (scaled)."""
    w, h = size
    x, y, side = (round(v * w / 640) for v in FACE_AT)
    return paste(background(h, w), face, x, y, side)


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return data.tobytes()


@contextmanager
def live_server(app: object, log_level: str = "warning") -> Iterator[str]:
    """Run ``app`` with uvicorn on a free localhost port in a thread; yields its base URL.

    The server is configured as ``ferlab serve`` configures it (``server_config``: connection
    cap, header timeout, JSON 400s, redacted logs). The socket is bound before the server
    starts, so the port is known and cannot be taken in between; leaving the block shuts the
    server down (lifespan included) and joins the thread.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        assert not thread.is_alive(), "the test server did not shut down"


class SlowClassifier(BrightnessClassifier):
    """:class:`BrightnessClassifier` that takes ``delay`` seconds per batch, to build up load."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        time.sleep(self.delay)
        return super().predict_proba(faces)


class FailingClassifier(BrightnessClassifier):
    """A classifier with a bug: the service must answer 500 without revealing the details."""

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        raise RuntimeError("secret internal detail")
