"""One classifier call for the faces of concurrent requests (``ServeSettings.batch``).

The recognition workers detect and crop faces side by side; with batching, their classifier
calls go to one thread that takes every call waiting at that moment, classifies all their
faces in one ``predict_proba`` and hands each caller its rows. A network runs a batch of many
faces faster per face than many batches of few, at the cost of a wait for the calls already
in flight; ``benchmarks/bench_serve.py`` measures both ways.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from typing import Any

import numpy as np

__all__ = ["BatchingClassifier"]


class BatchingClassifier:
    """Wraps a classifier so that concurrent ``predict_proba`` calls share one network call.

    Every other attribute (``labels``, ``tta``, ``network``, ``meta``...) is the wrapped
    classifier's.
    """

    def __init__(self, classifier: Any) -> None:
        self.classifier = classifier
        self._calls: queue.SimpleQueue[tuple[np.ndarray, Future] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="ferlab-batch", daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.classifier, name)

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        done: Future = Future()
        self._calls.put((np.asarray(faces), done))
        return done.result()

    def close(self) -> None:
        """Stop the batching thread once the calls already queued are answered."""
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while True:
            first = self._calls.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while True:  # everything already waiting joins this batch; nothing waits for more
                try:
                    item = self._calls.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            try:
                probs = np.asarray(
                    self.classifier.predict_proba(np.concatenate([f for f, _ in batch]))
                )
            except Exception as exc:
                for _, done in batch:
                    done.set_exception(exc)
            else:
                start = 0
                for faces, done in batch:
                    done.set_result(probs[start : start + len(faces)])
                    start += len(faces)
            if stop:
                return
