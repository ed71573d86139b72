"""Fixtures of the recognizer tests (the real FER2013 faces ``fer_faces`` / ``face`` come from
tests/conftest.py)."""

from __future__ import annotations

import pytest
from recognize_helpers import BrightnessClassifier

from ferlab.recognize import Recognizer


@pytest.fixture
def classifier() -> BrightnessClassifier:
    return BrightnessClassifier()


@pytest.fixture
def recognizer(classifier: BrightnessClassifier) -> Recognizer:
    return Recognizer(model=classifier)
