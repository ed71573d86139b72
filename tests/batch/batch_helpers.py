"""Builders shared by the batch tests: the Kaggle-layout sample, a clip, a worker that dies."""

from __future__ import annotations

import os
import signal
import zipfile
from pathlib import Path

import cv2
import numpy as np

#: The Kaggle image-folder sample in ``<repo>/../shared/datasets``.
SAMPLE_ZIP = (
    Path(__file__).resolve().parents[2]
    / ".."
    / "shared"
    / "datasets"
    / "fer2013-images"
    / "fer2013-images-sample.zip"
)
ASTRONAUT = Path(__file__).resolve().parents[2] / "examples" / "astronaut.jpg"


def extract_sample(folder: Path) -> Path:
    """The sample's images unpacked into ``folder`` (the shared file is only read)."""
    with zipfile.ZipFile(SAMPLE_ZIP) as archive:
        archive.extractall(folder)
    return folder


def write_clip(path: Path, frames: int = 40) -> Path:
    """A 640×480 MJPG clip of the astronaut's face (about 150 px) moving right, 10 fps."""
    face = cv2.resize(cv2.imread(str(ASTRONAUT)), (300, 300), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for i in range(frames):
        frame = np.full((480, 640, 3), 90, np.uint8)
        x = 40 + 6 * i
        frame[90:390, x : x + 300] = face
        writer.write(frame)
    writer.release()
    return path


class DiesOnce:
    """The shipped default model (ONNX Runtime), except that the process running it kills
    itself (SIGKILL, like an out-of-memory kill) at its second batch while ``marker`` does not
    exist; the marker, created first, holds the dead process's id."""

    def __init__(self, marker: Path, labels: tuple[str, ...]) -> None:
        self.marker = marker
        self.labels = labels
        self.calls = 0
        self.model = None

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        import ferlab

        self.calls += 1
        if self.calls == 2 and not self.marker.exists():
            self.marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        if self.model is None:
            self.model = ferlab.load_model("default", runtime="onnx", threads=1)
        return self.model.predict_proba(faces)
