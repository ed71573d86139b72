"""The ambient light: colour mapping, smoothing, sinks, and ``ferlab light`` on a real video."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ferlab.errors import DataError, FerlabError
from ferlab.light import (
    DEFAULT_COLORS,
    Light,
    LightMapper,
    StdoutSink,
    WebhookSink,
    parse_color,
    parse_color_overrides,
)
from tests.cli.cli_helpers import run
from tests.recognize.recognize_helpers import EMOTIONS, write_video
from tests.serve.serve_helpers import photo

ONLY = {label: {other: float(other == label) for other in EMOTIONS} for label in EMOTIONS}


# ------------------------------------------------------------------ mapping


def test_a_certain_emotion_gets_its_own_colour():
    for label in EMOTIONS:
        light = LightMapper(tau=0).update([ONLY[label]])
        assert (light.r, light.g, light.b) == DEFAULT_COLORS[label]


def test_colour_blends_by_probability_in_linear_light():
    mapper = LightMapper({"angry": (255, 0, 0), "happy": (0, 255, 0)}, tau=0)
    half = mapper.update([{"angry": 0.5, "happy": 0.5}])
    # Linear-light mean of full red and full green: both channels at half power, 188 in sRGB
    # (a plain sRGB average would give a darker 128).
    assert (half.r, half.g, half.b) == (188, 188, 0)
    mostly = mapper.update([{"angry": 0.9, "happy": 0.1}])
    assert mostly.r > mostly.g > 0


def test_several_faces_are_averaged_and_no_face_is_idle():
    mapper = LightMapper(tau=0, idle=(0, 0, 0))
    both = mapper.update([ONLY["sad"], ONLY["happy"]])
    half = LightMapper(tau=0).update([{"sad": 0.5, "happy": 0.5}])
    assert both == half
    assert mapper.update([]) == Light(0, 0, 0)


def test_smoothing_moves_by_the_time_constant_without_flicker():
    mapper = LightMapper({"angry": (255, 0, 0), "sad": (0, 0, 255)}, tau=1.0)
    start = mapper.update([ONLY["angry"]], now=0.0)
    assert start == Light(255, 0, 0)  # the first colour is shown at once
    reds = [mapper.update([ONLY["sad"]], now=0.1 * i).r for i in range(1, 31)]
    assert all(a > b for a, b in zip(reds, reds[1:], strict=False))  # steadily, no jumps back
    # After 3 s (3 tau) 95 % of the linear-light way is covered.
    remaining = (reds[-1] / 255) ** 2.2
    assert remaining == pytest.approx(np.exp(-3.0), abs=0.01)
    # A one-frame blip of another emotion barely moves the light.
    steady = LightMapper(tau=1.0)
    steady.update([ONLY["happy"]], now=0.0)
    before = steady.update([ONLY["happy"]], now=0.1)
    blip = steady.update([ONLY["angry"]], now=0.2)
    assert (
        sum(
            abs(a - b)
            for a, b in zip((before.r, before.g, before.b), (blip.r, blip.g, blip.b), strict=True)
        )
        < 60
    )


def test_colours_parse_and_bad_ones_are_clear_errors():
    assert parse_color("#FFd000") == (255, 208, 0)
    assert parse_color("10, 20,30") == (10, 20, 30)
    assert parse_color_overrides(["happy=#00ff00", "sad=0,0,9"]) == {
        "happy": (0, 255, 0),
        "sad": (0, 0, 9),
    }
    with pytest.raises(FerlabError, match="#RRGGBB"):
        parse_color("orange")
    with pytest.raises(FerlabError, match="0-255"):
        parse_color("1,2,300")
    with pytest.raises(FerlabError, match="EMOTION=#RRGGBB"):
        parse_color_overrides(["#ff0000"])
    with pytest.raises(FerlabError, match="no light colour for joy"):
        LightMapper().check_labels(["joy", "happy"])
    with pytest.raises(FerlabError, match="tau"):
        LightMapper(tau=-1)


def test_stdout_sink_writes_json_lines():
    stream = io.StringIO()
    sink = StdoutSink(stream)
    sink.send(Light(1, 2, 3))
    sink.send(Light(255, 0, 16))
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [(r["r"], r["g"], r["b"], r["hex"]) for r in records] == [
        (1, 2, 3, "#010203"),
        (255, 0, 16, "#ff0010"),
    ]


# ------------------------------------------------------------------ webhook


@contextmanager
def bridge(status: int = 200) -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP server standing in for a light bridge; yields its URL and the bodies."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            body["_auth"] = self.headers.get("Authorization")
            body["_type"] = self.headers.get("Content-Type")
            received.append(body)
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/light", received
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_rgb_json_rate_limited_and_ends_on_the_newest():
    with bridge() as (url, received):
        sink = WebhookSink(url, min_interval=0.3, headers={"Authorization": "Bearer t"})
        colours = [Light(i, 255 - i, 7) for i in range(20)]
        for light in colours:
            sink.send(light)
        sink.close()
    assert 1 <= sink.posted == len(received) < len(colours)
    assert sink.errors == 0
    last = colours[-1]
    assert {k: received[-1][k] for k in "rgb"} == {"r": last.r, "g": last.g, "b": last.b}
    assert all(set(body) == {"r", "g", "b", "_auth", "_type"} for body in received)
    assert received[0]["_auth"] == "Bearer t" and received[0]["_type"] == "application/json"


def test_webhook_skips_repeated_colours():
    with bridge() as (url, received):
        sink = WebhookSink(url, min_interval=0.0)
        for _ in range(5):
            sink.send(Light(9, 9, 9))
            time.sleep(0.05)
        sink.close()
    assert len(received) == 1


def test_webhook_failures_are_reported_not_raised():
    messages: list[str] = []
    with bridge(status=500) as (url, _):
        sink = WebhookSink(url, min_interval=0.0, on_error=messages.append)
        sink.send(Light(1, 1, 1))
        time.sleep(0.2)
        sink.send(Light(2, 2, 2))
        sink.close()
    assert sink.errors == 2 and sink.posted == 0
    assert messages == [f"webhook {url}: HTTP 500 Internal Server Error"]  # said once
    with bridge() as (url, _):
        pass  # the bridge is gone: connection refused
    gone = WebhookSink(url, timeout=1.0, on_error=messages.append)
    gone.send(Light(3, 3, 3))
    gone.close()
    assert gone.errors == 1 and "refused" in messages[-1].lower()


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "localhost:8000"])
def test_webhook_only_takes_http_urls(url):
    with pytest.raises(DataError, match="http:// or https://"):
        WebhookSink(url)


# ------------------------------------------------------------------ ferlab light


@pytest.fixture(scope="module")
def video(fer_faces, tmp_path_factory) -> str:
    """A short video standing in for a camera: one face, then another."""
    frames = [photo(fer_faces[8])] * 6 + [photo(fer_faces[0])] * 6
    return str(write_video(tmp_path_factory.mktemp("light") / "cam.avi", frames))


def test_ferlab_light_prints_colours(video, checkpoint, capsys):
    argv = ["light", "--camera", video, "--model", str(checkpoint), "--frames", "10"]
    code, out, err = run([*argv, "--light-tau", "0"], capsys)
    assert code == 0, err
    records = [json.loads(line) for line in out.splitlines()]
    # A video read like a camera keeps only the newest frame, so some are skipped.
    assert 1 <= len(records) <= 10
    assert all(0 <= r[c] <= 255 for r in records for c in "rgb")
    assert all(r["hex"] == "#{:02x}{:02x}{:02x}".format(r["r"], r["g"], r["b"]) for r in records)


def test_ferlab_light_drives_a_webhook(video, checkpoint, capsys):
    with bridge() as (url, received):
        argv = ["light", "--camera", video, "--model", str(checkpoint), "--sink", "webhook"]
        code, out, err = run([*argv, "--url", url, "--header", "Authorization: Bearer x"], capsys)
    assert code == 0, err
    assert out == "" and received and received[0]["_auth"] == "Bearer x"
    assert f"{len(received)} colours posted, 0 failed" in err


def test_ferlab_light_usage_errors(checkpoint, capsys):
    code, _, err = run(["light", "--sink", "webhook", "--model", str(checkpoint)], capsys)
    assert code == 2 and "--url" in err
    code, _, err = run(["light", "--sink", "lamp"], capsys)
    assert code == 2 and "stdout or webhook" in err
    code, _, err = run(["light", "--color", "happy=green", "--model", str(checkpoint)], capsys)
    assert code == 2 and "#RRGGBB" in err
