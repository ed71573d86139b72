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


def test_api_key_and_stream_limit(face):
    settings = ServeSettings(api_key="k", max_streams=1)
    with live_server(create_app(BrightnessClassifier(), settings=settings)) as url:
        with connect(ws_url(url)) as ws:
            assert "API key" in json.loads(ws.recv(timeout=30))["message"]
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)
            assert closed.value.rcvd.code == 1008
        with connect(ws_url(url, "/v1/stream?api_key=k")) as first:
            first.send(jpeg(photo(face)))
            assert json.loads(first.recv(timeout=30))["type"] == "frame"
            with connect(ws_url(url, "/v1/stream?api_key=k")) as second:
                assert "too many streams" in json.loads(second.recv(timeout=30))["message"]
                with pytest.raises(ConnectionClosed) as closed:
                    second.recv(timeout=30)
                assert closed.value.rcvd.code == 1013
        with connect(ws_url(url), additional_headers={"X-API-Key": "k"}) as ws:
            ws.send(jpeg(photo(face)))
            assert len(json.loads(ws.recv(timeout=30))["faces"]) == 1


def test_a_server_bug_is_reported_without_details(face):
    with live_server(create_app(FailingClassifier())) as url, connect(ws_url(url)) as ws:
        for _ in range(2):  # and the stream goes on
            ws.send(jpeg(photo(face)))
            error = json.loads(ws.recv(timeout=30))
            assert error["type"] == "error" and "server log" in error["message"]
            assert "secret" not in error["message"]
