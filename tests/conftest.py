"""Fixtures shared by the whole test suite.

The real datasets live beside the checkout in ``<repo>/../shared/datasets`` (read-only); tests
that need them use :func:`datasets_dir` and are skipped with a clear message where it is absent.
The decoded-array cache goes to a per-session temporary folder, so no test writes to the user's
``~/.cache``, and the 301 MB FER2013 CSV is parsed at most once per session
(:func:`fer2013_cache_dir`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session", autouse=True)
def _session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Point ``$FERLAB_CACHE_DIR`` at a session folder for every test."""
    cache = tmp_path_factory.mktemp("ferlab-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FERLAB_CACHE_DIR", str(cache))
        yield cache


@pytest.fixture
def benchmark_script(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], ModuleType]:
    """Load ``benchmarks/<name>.py`` as a module, its folder on ``sys.path`` for its own
    imports (the scripts share helpers such as ``doc_section``)."""

    def load(name: str) -> ModuleType:
        monkeypatch.syspath_prepend(str(BENCHMARKS))
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """``<repo>/../shared/datasets``; skips the test when it is not there."""
    if not (DATASETS / "README.md").is_file():
        pytest.skip(f"shared datasets not found at {DATASETS.resolve()}")
    return DATASETS.resolve()


@pytest.fixture(scope="session")
def fer2013_csv(datasets_dir: Path) -> Path:
    """The real ``fer2013.csv.gz``."""
    path = datasets_dir / "fer2013" / "fer2013.csv.gz"
    if not path.is_file():
        pytest.skip(f"fer2013.csv.gz not found at {path}")
    return path


@pytest.fixture(scope="session")
def fer2013_cache_dir(fer2013_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the parsed real FER2013 CSV (the one parse of the session).

    Pass it as ``cache_dir`` (or ``--cache-dir``) to load the real CSV in a fraction of a second.
    """
    from ferlab.data import load_dataset

    cache = tmp_path_factory.mktemp("fer2013-cache")
    load_dataset(fer2013_csv, cache_dir=cache, progress=False)
    return cache


@pytest.fixture(scope="session")
def drawn_faces() -> np.ndarray:
    """24 generated face-like images (uint8 24×48×48) for tests that need no real data."""
    from tests.generated_faces import generated_faces

    return generated_faces(24)


#: The generated face standing in for each FER2013 row of ``FACE_ROWS`` where the datasets are
#: absent: a bright one for row 8 and darker ones for rows 0 and 4, so that the brightness-based
#: test classifiers label rows 8, 0 and 4 differently, as they do the real faces.
_DRAWN_FOR_ROW = {0: 0, 2: 1, 4: 5, 8: 2, 14: 3, 15: 4}


@pytest.fixture(scope="session")
def real_fer_faces() -> dict[int, np.ndarray]:
    """Real FER2013 faces decoded straight from the shared CSV (rows ``FACE_ROWS``), by row."""
    from tests.recognize.recognize_helpers import FACE_ROWS, FER_CSV, read_fer_rows

    if not FER_CSV.exists():
        pytest.skip(f"FER2013 CSV not found at {FER_CSV}")
    return read_fer_rows(FACE_ROWS)


@pytest.fixture(scope="session")
def fer_faces(request: pytest.FixtureRequest) -> dict[int, np.ndarray]:
    """Faces for tests of detection, tracking, I/O and serving, by FER2013 row: the real ones
    (``real_fer_faces``), or generated ones in their place where the datasets are absent."""
    from tests.generated_faces import generated_faces
    from tests.recognize.recognize_helpers import FER_CSV

    if FER_CSV.exists():
        return request.getfixturevalue("real_fer_faces")
    drawn = generated_faces(24)
    return {row: drawn[i] for row, i in _DRAWN_FOR_ROW.items()}


@pytest.fixture(scope="session")
def face(fer_faces: dict[int, np.ndarray]) -> np.ndarray:
    """One clear frontal face (FER2013 row 8, or its generated stand-in)."""
    return fer_faces[8]


@pytest.fixture(scope="session")
def real_face(real_fer_faces: dict[int, np.ndarray]) -> np.ndarray:
    """One clear frontal FER2013 face (row 8)."""
    return real_fer_faces[8]
