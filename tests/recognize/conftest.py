"""Fixtures of the recognizer tests: real FER2013 faces decoded straight from the shared CSV."""

from __future__ import annotations

import numpy as np
import pytest
from recognize_helpers import FACE_ROWS, FER_CSV, BrightnessClassifier, read_fer_rows

from ferlab.recognize import Recognizer


@pytest.fixture(scope="session")
def fer_faces() -> dict[int, np.ndarray]:
    """The FER2013 faces of :data:`FACE_ROWS`, by row."""
    if not FER_CSV.exists():
        pytest.skip(f"FER2013 CSV not found at {FER_CSV}")
    return read_fer_rows(FACE_ROWS)


@pytest.fixture(scope="session")
def face(fer_faces: dict[int, np.ndarray]) -> np.ndarray:
    """One clear frontal FER2013 face (row 8)."""
    return fer_faces[8]


@pytest.fixture
def classifier() -> BrightnessClassifier:
    return BrightnessClassifier()


@pytest.fixture
def recognizer(classifier: BrightnessClassifier) -> Recognizer:
    return Recognizer(model=classifier)
