"""Fixtures of the web-service tests: a really trained checkpoint and real FER2013 faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.recognize.recognize_helpers import FACE_ROWS, FER_CSV, read_fer_rows


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint: Deep-Emotion without STN, one epoch on learnable synthetic faces.

    Its metrics (val and test accuracy) are recorded as in any trained model; the server loads
    it by path, like any ``ferlab train`` output.
    """
    from ferlab.engine import recipe_from_dict, train
    from tests.engine.engine_helpers import synthetic_data

    recipe = recipe_from_dict(
        {
            "model": {"name": "deep_emotion_nostn"},
            "optim": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 1, "batch_size": 64},
            "eval": {"plots": False},
        }
    )
    out = tmp_path_factory.mktemp("serve-run")
    train(recipe, data=synthetic_data(300), out_dir=out)
    return out / "best.pt"


@pytest.fixture(scope="session")
def fer_faces() -> dict[int, np.ndarray]:
    """Real FER2013 faces (the recognizer tests' rows), by row."""
    if not FER_CSV.exists():
        pytest.skip(f"FER2013 CSV not found at {FER_CSV}")
    return read_fer_rows(FACE_ROWS)


@pytest.fixture(scope="session")
def face(fer_faces: dict[int, np.ndarray]) -> np.ndarray:
    """One clear frontal face (row 8)."""
    return fer_faces[8]
