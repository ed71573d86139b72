"""Builders shared by the recognizer tests: real FER2013 faces, scenes, a small classifier."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import cv2
import numpy as np

#: Where the shared datasets live: ``<repo>/../shared/datasets``.
DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"
FER_CSV = DATASETS / "fer2013" / "fer2013.csv.gz"

#: FER2013 rows (Training) used as test faces: frontal faces of various emotions that the tuned
#: frontal cascade finds at 96-220 px on the scenes below.
FACE_ROWS = (0, 2, 4, 8, 14, 15)

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def read_fer_rows(rows: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Decode the given rows of fer2013.csv.gz as 48×48 uint8 faces."""
    wanted, faces = set(rows), {}
    with gzip.open(FER_CSV, "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for i, row in enumerate(reader):
            if i in wanted:
                faces[i] = np.array(row[1].split(), dtype=np.uint8).reshape(48, 48)
                if len(faces) == len(wanted):
                    break
    return faces


def background(height: int = 480, width: int = 640) -> np.ndarray:
    """A face-free BGR scene: a horizontal gradient with faint stripes and a dark block."""
    yy, xx = np.mgrid[0:height, 0:width]
    gray = (70 + 100 * xx / width + 15 * np.sin(yy / 9.0)).astype(np.uint8)
    scene = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    cv2.rectangle(
        scene, (width // 8, height // 2), (width // 8 + width // 6, height - 10), (40, 60, 90), -1
    )
    return scene


def paste(scene: np.ndarray, face: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """Copy of ``scene`` with the 48×48 ``face`` upscaled to ``size`` px at ``(x, y)``."""
    out = scene.copy()
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    out[y : y + size, x : x + size] = big[:, :, None]
    return out


def box_iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    return ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)


class BrightnessClassifier:
    """A deterministic stand-in for the emotion model: probabilities from the crop's brightness.

    Brighter crops lean towards the later classes, so two faces of different brightness get
    different labels. It records every batch of crops it is given, so tests can check what the
    recognizer fed it.
    """

    labels = EMOTIONS

    def __init__(self) -> None:
        self.batches: list[np.ndarray] = []

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        self.batches.append(faces.copy())
        mean = faces.reshape(len(faces), -1).mean(axis=1) / 255.0
        centres = np.linspace(0.0, 1.0, len(self.labels))
        logits = -((mean[:, None] - centres[None, :]) ** 2) * 40.0
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two images' pixels."""
    return float(np.corrcoef(a.ravel().astype(np.float64), b.ravel().astype(np.float64))[0, 1])


def write_video(
    path: Path, frames: list[np.ndarray], fps: float = 20.0, fourcc: str = "MJPG"
) -> Path:
    """Write BGR frames as a video file (MJPG in .avi: lossless enough and always available)."""
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert writer.isOpened(), f"OpenCV cannot write {path}"
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
