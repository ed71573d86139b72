from __future__ import annotations

import os
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on a shared CPU spinning makes small training
# steps an order of magnitude slower. Effective when torch is not imported yet (and for the
# processes the DDP test spawns).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from engine_helpers import register_tiny, unregister_tiny

DATASETS = Path(__file__).resolve().parents[2] / ".." / "shared" / "datasets"


@pytest.fixture
def tiny_model():
    """The registry name of a tiny test network, removed from the registry afterwards."""
    yield register_tiny()
    unregister_tiny()


@pytest.fixture(scope="session")
def fer2013_data(tmp_path_factory):
    """The full FER2013 CSV, read once per session through a session-scoped cache."""
    path = DATASETS / "fer2013" / "fer2013.csv.gz"
    if not path.exists():
        pytest.skip(f"FER2013 dataset not found at {path.resolve()}")
    from ferlab.data import load_dataset

    return load_dataset(path, cache_dir=tmp_path_factory.mktemp("fer-cache"), progress=False)
