"""Accuracy of the ``fer`` package's bundled emotion model on FER2013 PrivateTest.

The reference figure beside the shipped ``default`` model (``docs/benchmarks.md``, "Shipped
models"). Runs in an interpreter that has ``fer`` installed (a separate virtual environment:
``fer`` is not a ferlab dependency) and reads the challenge CSV itself. Every PrivateTest face is
prepared the way ``fer`` prepares a detected face crop (resized to 64×64, scaled to [-1, 1]) and
classified by ``FER()``'s own classifier; fer's labels are FER2013's, in the same order.

    FER_PYTHON=/tmp/fer-venv/bin/python
    $FER_PYTHON benchmarks/fer_reference_accuracy.py ../shared/datasets/fer2013/fer2013.csv.gz
"""

from __future__ import annotations

import csv
import gzip
import json
import logging
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from fer.fer import FER  # noqa: E402


def private_test(path: str) -> tuple[np.ndarray, np.ndarray]:
    faces, labels = [], []
    with gzip.open(path, "rt", newline="") if path.endswith(".gz") else open(path) as f:
        for row in csv.DictReader(f):
            if row["Usage"] == "PrivateTest":
                faces.append(np.array(row["pixels"].split(), np.uint8).reshape(48, 48))
                labels.append(int(row["emotion"]))
    return np.stack(faces), np.array(labels)


def main() -> None:
    faces, labels = private_test(sys.argv[1])
    x = np.stack([cv2.resize(f, (64, 64)) for f in faces]).astype(np.float32)
    x = (x / 255.0 - 0.5) * 2.0
    pred = FER()._classify_emotions(x).argmax(1)
    print(json.dumps({"n": len(labels), "accuracy": float((pred == labels).mean())}))


if __name__ == "__main__":
    main()
