"""Misclassified faces of a split, per class, with their figure."""

from __future__ import annotations

import numpy as np
import pytest

from ferlab.errors import DataError, FerlabError
from ferlab.explain.misclassified import misclassified, plot_misclassified
from tests.engine.engine_helpers import synthetic_data
from tests.explain.conftest import small_model


def test_misclassified_faces_are_the_wrong_predictions(emotion_model, tmp_path):
    data = synthetic_data(300, seed=5)
    result = misclassified(emotion_model, data, "val")
    part = data.subset("val")
    pred = emotion_model.predict_proba(part.images.numpy()).argmax(1)
    wrong = np.flatnonzero(pred != part.labels.numpy())
    assert result.total == len(part)
    np.testing.assert_array_equal(result.index, wrong)
    np.testing.assert_array_equal(result.predicted, pred[wrong])
    np.testing.assert_array_equal(result.images, part.images.numpy()[wrong])
    assert (result.true != result.predicted).all()
    grid = result.per_class(limit=2)
    assert list(grid) == list(emotion_model.labels)
    for cls, rows in grid.items():
        assert len(rows) <= 2
        for index, predicted in rows:
            assert emotion_model.labels[part.labels[index]] == cls and predicted != cls
    path = plot_misclassified(result, tmp_path / "wrong.png", per_class=3)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_split_and_bad_inputs(emotion_model):
    data = synthetic_data(200, seed=6)
    assert misclassified(emotion_model, data, "test").total == len(data.subset("test"))
    with pytest.raises(FerlabError, match="split must be one of"):
        misclassified(emotion_model, data, "PublicTest")
    with pytest.raises(FerlabError, match="trained model"):
        misclassified(small_model("deep_emotion"), data)
    with pytest.raises(DataError, match="classes"):
        misclassified(emotion_model, synthetic_data(50, ferplus="probability"))
    train_only = data.select(data.split == 0)
    with pytest.raises(DataError, match="no 'val' faces"):
        misclassified(emotion_model, train_only)
