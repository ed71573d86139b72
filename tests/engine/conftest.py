from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared CPU spinning makes small training
# steps an order of magnitude slower. Effective when torch is not imported yet (and for the
# processes the DDP test spawns).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
from engine_helpers import register_tiny, unregister_tiny


@pytest.fixture
def tiny_model():
    """The registry name of a tiny test network, removed from the registry afterwards."""
    yield register_tiny()
    unregister_tiny()


@pytest.fixture(scope="session")
def fer2013_data(fer2013_csv, fer2013_cache_dir):
    """The full real FER2013 CSV as FERData, from the session's parsed-CSV cache."""
    from ferlab.data import load_dataset

    return load_dataset(fer2013_csv, cache_dir=fer2013_cache_dir, progress=False)
