"""``WS /v1/stream`` through a real uvicorn server: tracking, smoothing, light, back-pressure.

The classifier is the recognizer tests' deterministic :class:`BrightnessClassifier`, so the
stream's answers can be checked exactly against :meth:`Recognizer.track` on the same frames.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from ferlab.light import LightMapper
from ferlab.recognize import Recognizer, decode_image
from ferlab.serve import ServeSettings, create_app
from ferlab.serve.stream import YIELD_AFTER
from tests.recognize.recognize_helpers import BrightnessClassifier
from tests.serve.serve_helpers import FailingClassifier, SlowClassifier, jpeg, live_server, photo


def ws_url(base: str, path: str = "/v1/stream") -> str:
    return base.replace("http://", "ws://") + path


def frames_of(fer_faces: dict[int, np.ndarray], n: int) -> list[bytes]:
    """``n`` JPEG frames: one face drifting right, then another face in its place."""
    out = []
    for i in range(n):
        row = 8 if i < n // 2 else 0
        scene = photo(fer_faces[row])
        out.append(jpeg(np.roll(scene, 3 * i, axis=1)))
    return out


@pytest.fixture(scope="module")
def server() -> str:
    settings = ServeSettings(light_tau=0.0, max_upload_bytes=2**20)
    with live_server(create_app(BrightnessClassifier(), settings=settings)) as url:
        yield url


def test_stream_matches_the_recognizer_on_the_same_frames(server, fer_faces):
    frames = frames_of(fer_faces, 8)
    answers = []
    with connect(ws_url(server)) as ws:
        for data in frames:  # one at a time: nothing is dropped
            ws.send(data)
            answers.append(json.loads(ws.recv(timeout=30)))
    reference = list(
        Recognizer(model=BrightnessClassifier()).track([decode_image(f) for f in frames])
    )
    mapper = LightMapper(tau=0.0)
    for i, (got, want) in enumerate(zip(answers, reference, strict=True)):
        assert got["type"] == "frame" and got["frame"] == i
        assert (got["received"], got["processed"], got["dropped"]) == (i + 1, i + 1, 0)
        assert (got["width"], got["height"]) == (640, 480)
        assert [f["face_id"] for f in got["faces"]] == [f.face_id for f in want.faces]
        for g, w in zip(got["faces"], want.faces, strict=True):
            assert g["box"] == list(w.box) and g["label"] == w.label
            assert g["scores"] == pytest.approx(w.scores, abs=1e-5)
        assert got["light"] == mapper.update([f.scores for f in want.faces]).to_dict()
    assert all(len(a["faces"]) == 1 for a in answers)
    assert {a["faces"][0]["face_id"] for a in answers} == {0}  # one track throughout


def test_light_follows_the_face(server, fer_faces):
    """Two faces whose brightness the classifier reads as different emotions: two colours."""
    colours = set()
    with connect(ws_url(server)) as ws:
        for row in (8, 8, 0, 0, 0, 0):
            ws.send(jpeg(photo(fer_faces[row])))
            colours.add(json.loads(ws.recv(timeout=30))["light"]["hex"])
    assert len(colours) >= 2


def test_bad_frames_are_reported_and_the_stream_goes_on(server, face):
    with connect(ws_url(server)) as ws:
        ws.send(b"not a jpeg")
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and error["frame"] == 0
        assert "not an image" in error["message"]
        ws.send("hello")
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and "binary" in error["message"]
        ws.send(b"\xff" * (2**20 + 1))
        error = json.loads(ws.recv(timeout=30))
        assert error["type"] == "error" and "limit" in error["message"]
        ws.send(jpeg(photo(face)))
        answer = json.loads(ws.recv(timeout=30))
        assert answer["type"] == "frame" and answer["frame"] == 3 and len(answer["faces"]) == 1


def test_stale_frames_are_dropped_not_queued(face):
    """Frames sent faster than they are processed: the newest one is always answered."""
    app = create_app(SlowClassifier(0.25), settings=ServeSettings(light_tau=0.0))
    frames = [jpeg(np.roll(photo(face), i, axis=1)) for i in range(12)]
    with live_server(app) as url, connect(ws_url(url)) as ws:
        for data in frames:
            ws.send(data)
        answers = []
        while not answers or answers[-1]["frame"] != len(frames) - 1:
            answers.append(json.loads(ws.recv(timeout=60)))
    last = answers[-1]
    assert last["received"] == len(frames)
    assert last["processed"] == len(answers) < len(frames)
    assert last["processed"] + last["dropped"] == len(frames)
    indices = [a["frame"] for a in answers]
    assert indices == sorted(indices)


def closed_with(ws, code: int) -> str:
    """Read until the server closes ``ws``; the close code must be ``code``; its reason."""
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=30)
    assert closed.value.rcvd.code == code
    return closed.value.rcvd.reason


def test_api_key_in_a_header_or_the_first_message_never_in_the_url(face):
    settings = ServeSettings(api_key="k")
    with live_server(create_app(BrightnessClassifier(), settings=settings)) as url:
        with connect(ws_url(url)) as ws:
            ws.send(jpeg(photo(face)))  # a frame before any key
            assert "missing API key" in json.loads(ws.recv(timeout=30))["message"]
            closed_with(ws, 1008)
        with connect(ws_url(url, "/v1/stream?api_key=k")) as ws:
            assert "never goes in a URL" in json.loads(ws.recv(timeout=30))["message"]
            closed_with(ws, 1008)
        with connect(ws_url(url)) as ws:
            ws.send(json.dumps({"type": "auth", "api_key": "wrong"}))
            assert "wrong API key" in json.loads(ws.recv(timeout=30))["message"]
            closed_with(ws, 1008)
        with connect(ws_url(url)) as ws:
            ws.send(json.dumps({"type": "auth", "api_key": "k"}))
            ws.send(jpeg(photo(face)))
            answer = json.loads(ws.recv(timeout=30))
            assert answer["type"] == "frame" and answer["frame"] == 0
        with connect(ws_url(url), additional_headers={"X-API-Key": "k"}) as ws:
            ws.send(jpeg(photo(face)))
            assert len(json.loads(ws.recv(timeout=30))["faces"]) == 1


def test_an_idle_stream_is_closed(face):
    settings = ServeSettings(stream_idle_timeout=1.0)
    app = create_app(BrightnessClassifier(), settings=settings)
    with live_server(app) as url, connect(ws_url(url)) as ws:
        ws.send(jpeg(photo(face)))
        assert json.loads(ws.recv(timeout=30))["type"] == "frame"
        message = json.loads(ws.recv(timeout=30))  # then nothing for a second
        assert message["type"] == "error" and "no frame for 1 s" in message["message"]
        closed_with(ws, 1001)


def test_idle_streams_give_their_places_to_a_newcomer(face):
    """Every place held by a stream that sends nothing: a newcomer is answered after
    YIELD_AFTER seconds, not refused, and the idlest stream is told why it was closed."""
    settings = ServeSettings(max_streams=2, max_streams_per_client=2)
    app = create_app(BrightnessClassifier(), settings=settings)
    with live_server(app) as url, connect(ws_url(url)) as idle1, connect(ws_url(url)) as idle2:
        with connect(ws_url(url)) as newcomer:
            newcomer.send(jpeg(photo(face)))
            answer = json.loads(newcomer.recv(timeout=YIELD_AFTER + 20))
            assert answer["type"] == "frame" and len(answer["faces"]) == 1
        told = json.loads(idle1.recv(timeout=30))
        assert "gave its place" in told["message"]
        closed_with(idle1, 1001)
        idle2.send(jpeg(photo(face)))  # the other one keeps its place
        assert json.loads(idle2.recv(timeout=30))["type"] == "frame"


def test_a_busy_server_refuses_a_stream_after_the_wait(face):
    settings = ServeSettings(max_streams=1, stream_wait=0.5)
    app = create_app(BrightnessClassifier(), settings=settings)
    with live_server(app) as url, connect(ws_url(url)) as first:
        first.send(jpeg(photo(face)))
        assert json.loads(first.recv(timeout=30))["type"] == "frame"
        with connect(ws_url(url)) as second:
            assert "too many streams" in json.loads(second.recv(timeout=30))["message"]
            closed_with(second, 1013)
        first.send(jpeg(photo(face)))
        assert json.loads(first.recv(timeout=30))["type"] == "frame"


def test_a_server_bug_is_reported_without_details(face):
    with live_server(create_app(FailingClassifier())) as url, connect(ws_url(url)) as ws:
        for _ in range(2):  # and the stream goes on
            ws.send(jpeg(photo(face)))
            error = json.loads(ws.recv(timeout=30))
            assert error["type"] == "error" and "server log" in error["message"]
            assert "secret" not in error["message"]
