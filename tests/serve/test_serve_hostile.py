"""Hostile clients against the real server on loopback: stalled and malformed connections, slow
bodies, huge images, foreign Hosts and Origins, keys in URLs.

Every test starts uvicorn configured as ``ferlab serve`` configures it (``server_config``) on
127.0.0.1 with an ephemeral port, with short timeouts and small caps so that the attacks are
bounded in count (a few hundred connections) and time (seconds); the full-size figures (20,000
stalled connections, the defaults) are measured by ``benchmarks/bench_serve.py --hostile``.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from ferlab.serve import ServeSettings, create_app
from ferlab.serve.server import RedactSecrets, _OncePerWindow, redact
from tests.recognize.recognize_helpers import BrightnessClassifier, box_iou
from tests.serve.serve_helpers import FACE_AT, jpeg, live_server, photo

#: Stalled connections opened in the flood test: several times the test server's cap.
STALLED = 300
CAP = 64


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


def raw_exchange(url: str, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes it."""
    with socket.create_connection(address(url), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def json_body(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"application/json" in head.lower(), head
    return json.loads(body)


def read_until_closed(sock: socket.socket, deadline: float) -> bytes | None:
    """What the server sent before closing ``sock``; ``None`` if still open at ``deadline``."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            return None
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


@pytest.fixture(scope="module")
def guarded() -> str:
    settings = ServeSettings(
        max_connections=CAP, header_timeout=1.0, body_timeout=1.0, max_pixels=4_000_000
    )
    with live_server(create_app(BrightnessClassifier(), settings=settings)) as url:
        yield url


def test_stalled_connections_are_evicted_and_timed_out_while_health_answers(guarded):
    """Hundreds of connections that never finish their headers: the server keeps at most its
    cap of them, closes every one within the header timeout, and answers /health meanwhile."""
    socks = []
    try:
        for _ in range(STALLED):
            sock = socket.create_connection(address(guarded), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(sock)
        health = httpx.get(f"{guarded}/health", timeout=10)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        # Header timeout 1 s, swept every second: all are closed well within 10 s.
        deadline = time.monotonic() + 10
        endings = [read_until_closed(s, deadline) for s in socks]
    finally:
        for sock in socks:
            sock.close()
    assert all(e is not None for e in endings), "a stalled connection was left open"
    # Each one was closed to make room (nothing said), refused as the cap was full of younger
    # ones (503), or closed at the header timeout (408), all JSON; at most CAP were held.
    said = [json_body(e)["error"] for e in endings if e]
    assert set(said) <= {"busy", "request_timeout"}
    assert 0 < said.count("request_timeout") <= CAP
    assert httpx.get(f"{guarded}/health", timeout=10).status_code == 200


def test_malformed_request_gets_json_400(guarded):
    reply = raw_exchange(guarded, b"NOT AN HTTP REQUEST\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400")
    body = json_body(reply)
    assert body["error"] == "bad_request" and "malformed" in body["message"]


def test_slow_body_gets_json_408(guarded):
    head = (
        b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000\r\n"
        b"Content-Type: multipart/form-data; boundary=x\r\n\r\n--x\r\n"
    )
    reply = raw_exchange(guarded, head)  # and then nothing: the body never completes
    assert reply.startswith(b"HTTP/1.1 408")
    assert json_body(reply)["error"] == "request_timeout"


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


def test_huge_png_is_refused_before_decoding(guarded):
    """The 9400×9500 PNG (just under Pillow's bomb limit): refused from its header, stating the
    budget, without the gigabyte a decode would take."""
    if not Path("/proc/self/statm").exists():
        pytest.skip("memory is read from /proc (Linux)")
    rng = np.random.default_rng(0)
    image = Image.new("1", (9400, 9500))
    image.paste(Image.fromarray(rng.random((400, 400)) > 0.5), (4500, 4500))  # some content
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    before = rss_bytes()
    start = time.monotonic()
    response = httpx.post(
        f"{guarded}/v1/predict",
        files={"file": ("huge.png", buffer.getvalue(), "image/png")},
        timeout=60,
    )
    took = time.monotonic() - start
    grew = rss_bytes() - before
    print(f"\n9400×9500 PNG of {buffer.tell() / 1024:.0f} kB: {took:.2f} s, +{grew / 2**20:.0f} MB")
    assert response.status_code == 413
    body = response.json()
    assert body["error"] == "too_many_pixels"
    assert "9400×9500" in body["message"] and "budget of 4 megapixels" in body["message"]
    # A full decode would need 9400×9500 bytes at least (89 MB) and Pillow's RGB copy 268 MB.
    assert grew < 200 * 2**20


def test_large_jpeg_is_decoded_reduced_with_boxes_in_its_own_pixels(guarded, face):
    """A 16-megapixel JPEG against a 4-megapixel budget: decoded at half size, the face found,
    its box given in the uploaded image's pixels."""
    big = photo(face, (4800, 3600))
    response = httpx.post(
        f"{guarded}/v1/predict", files={"file": ("big.jpg", jpeg(big), "image/jpeg")}, timeout=60
    )
    assert response.status_code == 200, response.text
    faces = response.json()["faces"]
    x, y, side = (round(v * 4800 / 640) for v in FACE_AT)
    assert len(faces) == 1 and box_iou(tuple(faces[0]["box"]), (x, y, side, side)) > 0.6


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Host": "evil.example"}, "forbidden_host"),
        ({"Host": "rebind.attacker.example:8000"}, "forbidden_host"),
        ({"Origin": "http://evil.example"}, "forbidden_origin"),
        ({"Origin": "null"}, "forbidden_origin"),
    ],
)
def test_foreign_host_or_origin_is_refused(guarded, headers, code):
    response = httpx.get(f"{guarded}/health", headers=headers, timeout=10)
    assert response.status_code == 403 and response.json()["error"] == code


def test_same_origin_and_loopback_names_are_allowed(guarded):
    host = urlsplit(guarded).netloc
    for headers in ({"Origin": f"http://{host}"}, {"Host": "localhost:1234"}, {}):
        assert httpx.get(f"{guarded}/health", headers=headers, timeout=10).status_code == 200


def test_an_allowed_host_can_be_added(face):
    settings = ServeSettings(allowed_hosts=("Frontend.Example",))
    with live_server(create_app(BrightnessClassifier(), settings=settings)) as url:
        for headers in ({"Host": "frontend.example"}, {"Origin": "https://frontend.example"}):
            assert httpx.get(f"{url}/health", headers=headers, timeout=10).status_code == 200
        assert httpx.get(f"{url}/health", headers={"Host": "other.example"}).status_code == 403


def test_a_foreign_page_cannot_open_the_stream(guarded):
    with pytest.raises(InvalidStatus) as refused:
        connect(
            guarded.replace("http://", "ws://") + "/v1/stream",
            additional_headers={"Origin": "http://evil.example"},
        )
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["error"] == "forbidden_origin"


def test_every_html_answer_has_the_page_policy(guarded):
    for path in ("/", "/static/index.html", "/docs"):
        response = httpx.get(f"{guarded}{path}", timeout=10)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"]
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"


def test_key_like_query_parameters_are_redacted_in_logs():
    assert redact("/v1/stream?api_key=s3cret&x=1") == "/v1/stream?api_key=[redacted]&x=1"
    assert redact("/p?token=abc&Auth=def") == "/p?token=[redacted]&Auth=[redacted]"
    record = logging.LogRecord(
        "uvicorn.access", 20, "", 0, '%s - "%s %s"', ("1.2.3.4", "GET", "/a?key=zz"), None
    )
    RedactSecrets().filter(record)
    assert "zz" not in record.getMessage() and "[redacted]" in record.getMessage()


class Remember(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_access_log_never_shows_a_key():
    seen = Remember()
    with live_server(create_app(BrightnessClassifier()), log_level="info") as url:
        loggers = [logging.getLogger(n) for n in ("uvicorn.access", "uvicorn.error")]
        for logger in loggers:
            logger.addHandler(seen)
        try:
            httpx.get(f"{url}/health?api_key=s3cret-value", timeout=10)
            with connect(url.replace("http://", "ws://") + "/v1/stream?token=s3cret-value"):
                pass
        finally:
            for logger in loggers:
                logger.removeHandler(seen)
    logged = "\n".join(seen.lines)
    assert "/health?api_key=[redacted]" in logged and "?token=[redacted]" in logged
    assert "s3cret" not in logged


def test_repeated_loop_errors_are_logged_once_per_window():
    """The accept loop's "Too many open files", thousands of times a second, logs once."""
    gate = _OncePerWindow(window=60)
    records = [
        logging.LogRecord("asyncio", 40, "", 0, "socket.accept() out of system resource", (), None)
        for _ in range(1000)
    ]
    assert sum(gate.filter(r) for r in records) == 1
