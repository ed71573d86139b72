"""Fixtures of the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from fer_builders import standard_rows, write_csv


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    """A valid 9-row challenge CSV."""
    return write_csv(tmp_path / "fer2013.csv", standard_rows())
