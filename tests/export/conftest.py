"""Fixtures of the export tests: real FER2013 faces and a checkpoint trained on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.recognize.recognize_helpers import FER_CSV, read_fer_rows


@pytest.fixture(scope="session")
def real_faces() -> np.ndarray:
    """The first 24 FER2013 faces (uint8 24×48×48), decoded straight from the shared CSV."""
    if not FER_CSV.exists():
        pytest.skip(f"FER2013 CSV not found at {FER_CSV}")
    rows = read_fer_rows(tuple(range(24)))
    return np.stack([rows[i] for i in range(24)])


@pytest.fixture(scope="session")
def fer2013_data(fer2013_csv: Path, fer2013_cache_dir: Path):
    """The full real FER2013 CSV as FERData, from the session's parsed-CSV cache."""
    from ferlab.data import load_dataset

    return load_dataset(fer2013_csv, cache_dir=fer2013_cache_dir, progress=False)


@pytest.fixture(scope="session")
def real_checkpoint(fer2013_data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Deep-Emotion without its transformer, trained briefly on 2,000 real FER2013 faces with
    histogram equalisation and global normalisation, released with ten-crop TTA (so the ONNX
    path's equalisation, normalisation and ten-crop views are all exercised)."""
    from ferlab.engine import train
    from ferlab.engine.checkpoint import release_checkpoint
    from ferlab.engine.recipe import (
        DataSection,
        EvalSection,
        ModelSection,
        OptimSection,
        Recipe,
        ScheduleSection,
        TrainSection,
    )

    recipe = Recipe(
        name="export-tests",
        model=ModelSection(name="deep_emotion_nostn"),
        data=DataSection(hist_eq=True, normalize="global", max_train=2000, max_eval=200),
        optim=OptimSection(name="adam", lr=0.003),
        schedule=ScheduleSection(kind="onecycle", pct_start=0.2),
        train=TrainSection(epochs=3, batch_size=64),
        eval=EvalSection(plots=False),
    )
    run = tmp_path_factory.mktemp("export-run")
    train(recipe, data=fer2013_data, out_dir=run)
    release_checkpoint(run / "best.pt", run / "model.pt", tta="ten_crop")
    return run / "model.pt"


@pytest.fixture(scope="session")
def scene(real_faces: np.ndarray) -> np.ndarray:
    """A 640×480 BGR scene with three real FER2013 faces the Haar detector finds."""
    from tests.recognize.recognize_helpers import background, paste

    image = background()
    for face, (x, y, size) in zip(
        real_faces[[0, 8, 15]], [(30, 60, 120), (230, 250, 160), (440, 40, 170)], strict=True
    ):
        image = paste(image, face, x, y, size)
    return image
