"""Fixtures of the web-service tests: a really trained checkpoint (faces: tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint: Deep-Emotion without STN, one epoch on learnable synthetic faces.

    Its metrics (val and test accuracy) are recorded as in any trained model; the server loads
    it by path, like any ``ferlab train`` output.
    """
    from tests.engine.engine_helpers import trained_checkpoint

    out = tmp_path_factory.mktemp("serve-run")
    return trained_checkpoint(out, "deep_emotion_nostn", epochs=1, n=300)
