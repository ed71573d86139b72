"""Recognition on several workers, with and without batching: the same answers as one worker,
each worker and each stream with a detector of its own, streams classifying once per face."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from ferlab.recognize import Recognizer
from ferlab.serve import ServeSettings, create_app
from ferlab.serve.batching import BatchingClassifier
from ferlab.serve.service import STREAM_TTA, Service, own_recognizer
from tests.recognize.recognize_helpers import BrightnessClassifier
from tests.serve.serve_helpers import jpeg, live_server, photo


def test_batching_gives_each_caller_its_own_rows():
    inner = BrightnessClassifier()  # records every batch it is given
    batcher = BatchingClassifier(inner)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(0, 256, (n, 48, 48), dtype=np.uint8) for n in (1, 3, 2, 1) * 8]
    try:
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(batcher.predict_proba, inputs))
    finally:
        batcher.close()
    for faces, probs in zip(inputs, got, strict=True):
        np.testing.assert_array_equal(probs, BrightnessClassifier().predict_proba(faces))
    assert sum(len(b) for b in inner.batches) == sum(len(f) for f in inputs)
    assert batcher.labels == inner.labels  # everything else is the wrapped classifier's


def test_a_failing_batch_fails_its_callers_only():
    class Picky(BrightnessClassifier):
        def predict_proba(self, faces: np.ndarray) -> np.ndarray:
            if faces.mean() > 250:
                raise ValueError("too bright")
            return super().predict_proba(faces)

    batcher = BatchingClassifier(Picky())
    try:
        with pytest.raises(ValueError, match="too bright"):
            batcher.predict_proba(np.full((1, 48, 48), 255, np.uint8))
        assert batcher.predict_proba(np.zeros((2, 48, 48), np.uint8)).shape == (2, 7)
    finally:
        batcher.close()


def test_workers_own_their_detectors_and_streams_classify_once_per_face(checkpoint):
    rec = Recognizer(model=str(checkpoint), device="cpu", tta="ten_crop")
    twin = own_recognizer(rec)
    # The Haar detector scans with a cascade per thread, so the workers share it.
    assert twin.detector is rec.detector and rec.detector.thread_safe
    assert twin.classifier is rec.classifier
    stream = Service(rec, ServeSettings()).stream_recognizer()
    assert stream.classifier.tta == STREAM_TTA == "none"
    assert rec.classifier.tta == "ten_crop"  # the photos keep the model's own setting
    assert stream.classifier.network is rec.classifier.network  # one network in memory


class Overlapping(BrightnessClassifier):
    """Takes 0.1 s per call (``first_call_s`` the first) and remembers how many calls ran at once
    at most."""

    def __init__(self, first_call_s: float = 0.1) -> None:
        super().__init__()
        self.running = self.most = 0
        self.lock = threading.Lock()
        self.pause = first_call_s

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
            pause, self.pause = self.pause, 0.1
        time.sleep(pause)
        with self.lock:
            self.running -= 1
        return super().predict_proba(faces)


@pytest.mark.parametrize("batch", [False, True], ids=["workers", "batched"])
def test_concurrent_requests_answer_as_one_worker_does(fer_faces, batch):
    """Twelve requests from six clients on several workers: each answer is the one a single
    worker gives; the workers' classifier calls overlap, or with batching share calls."""
    images = [jpeg(photo(fer_faces[row])) for row in (0, 8)] * 6
    with live_server(create_app(BrightnessClassifier(), settings=ServeSettings(workers=1))) as url:
        expected = [
            httpx.post(f"{url}/v1/predict", files={"file": ("f.jpg", d)}, timeout=60).json()
            for d in images[:2]
        ]
    # Batched, two workers alternate (one detects while the other's faces are classified);
    # a third makes calls meet. The first call's 2 s leave the other workers time to queue
    # their faces behind it even on a CPU busy with other work (at 0.1 s, a starved machine
    # once answered every face in a batch of its own).
    classifier = Overlapping(first_call_s=2.0 if batch else 0.1)
    app = create_app(classifier, settings=ServeSettings(workers=3 if batch else 2, batch=batch))

    def post(data: bytes) -> dict:
        r = httpx.post(f"{url}/v1/predict", files={"file": ("f.jpg", data)}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    with live_server(app) as url, ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(post, images))
    for i, answer in enumerate(answers):
        assert answer == expected[i % 2]
    if batch:  # one classifier thread, fed the faces of both workers at once
        assert classifier.most == 1 and max(len(b) for b in classifier.batches) >= 2
    else:
        assert classifier.most == 2 and max(len(b) for b in classifier.batches) == 1
