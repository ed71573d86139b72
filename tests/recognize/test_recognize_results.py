"""Results tables, JSON lines, CSV, drawing, and the classifier contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from recognize_helpers import EMOTIONS, BrightnessClassifier, background, paste

import ferlab.recognize.recognizer as recognizer_module
from ferlab.errors import FerlabError
from ferlab.recognize import Recognizer, Results, annotate
from ferlab.recognize.draw import label_color

BOXES = [(60, 200, 150, 150), (380, 60, 150, 150)]


@pytest.fixture
def two_faces(fer_faces: dict[int, np.ndarray]) -> np.ndarray:
    # Row 4 is a dark face (mean 98), row 8 a bright one (mean 171): the brightness classifier
    # labels them differently.
    scene = paste(background(), fer_faces[4], *BOXES[0][:2], 150)
    return paste(scene, fer_faces[8], *BOXES[1][:2], 150)


def test_dataframe_has_one_tidy_row_per_face(two_faces: np.ndarray, recognizer: Recognizer) -> None:
    results = recognizer(two_faces)
    df = results.to_dataframe()
    assert list(df.columns) == [
        "source", "frame", "time", "face_id", "x", "y", "w", "h", "score", "roll",
        *EMOTIONS, "label",
    ]  # fmt: skip
    assert len(df) == 2 and list(df["face_id"]) == [0, 1]
    assert np.allclose(df[list(EMOTIONS)].sum(axis=1), 1.0, atol=1e-5)
    assert list(df["label"]) == [df.loc[i, list(EMOTIONS)].astype(float).idxmax() for i in (0, 1)]
    assert df.loc[0, "label"] != df.loc[1, "label"]
    assert (df["score"] >= 2.0).all()


def test_jsonl_and_csv_round_trip(
    two_faces: np.ndarray, recognizer: Recognizer, tmp_path: Path
) -> None:
    results = recognizer(two_faces)
    lines = results.to_jsonl(tmp_path / "faces.jsonl").splitlines()
    assert (tmp_path / "faces.jsonl").read_text().splitlines() == lines
    objects = [json.loads(line) for line in lines]
    assert [o["box"] for o in objects] == [list(f.box) for f in results]
    assert all(list(o["scores"]) == list(EMOTIONS) for o in objects)
    assert [o["label"] for o in objects] == [f.label for f in results]

    results.to_csv(tmp_path / "nested" / "faces.csv")
    back = pd.read_csv(tmp_path / "nested" / "faces.csv")
    pd.testing.assert_frame_equal(
        back[["x", "y", "w", "h", "label"]],
        results.to_dataframe()[["x", "y", "w", "h", "label"]],
        check_dtype=False,
    )


def test_empty_results_still_have_columns() -> None:
    results = Results(EMOTIONS)
    assert list(results.to_dataframe().columns) == results.columns
    assert results.to_jsonl() == ""
    assert results.summary().empty


def test_annotate_draws_boxes_and_bars(
    two_faces: np.ndarray, recognizer: Recognizer, real_fer_faces
) -> None:
    # Real faces only: where the panel lands below is set for their detection boxes.
    results = recognizer(two_faces)
    drawn = annotate(two_faces, results.faces)
    assert drawn.shape == two_faces.shape and drawn is not two_faces
    for face in results:
        x, y, w, h = face.box
        color = np.array(label_color(face.label))
        left_edge = drawn[y + 5 : y + h - 5, x]
        assert (np.abs(left_edge.astype(int) - color).sum(axis=1) < 10).mean() > 0.9
        # The probability panel sits beside the box and darkens what is under it.
        panel = drawn[y + 5 : y + 40, x + w + 8 : x + w + 20]
        under = two_faces[y + 5 : y + 40, x + w + 8 : x + w + 20]
        assert panel.mean() < under.mean()
    far = (slice(10, 40), slice(600, 630))  # nowhere near a face
    assert (drawn[far] == two_faces[far]).all()


def test_classifier_output_is_checked(two_faces: np.ndarray) -> None:
    class WrongShape:
        labels = ("a", "b", "c")

        def predict_proba(self, faces: np.ndarray) -> np.ndarray:
            return np.full((len(faces), 2), 0.5)

    with pytest.raises(FerlabError, match="classifier returned"):
        Recognizer(model=WrongShape())(two_faces)


def test_model_objects_are_duck_typed() -> None:
    with pytest.raises(FerlabError, match="predict_proba"):
        Recognizer(model=object())  # type: ignore[arg-type]

    class Clash:
        labels = ("happy", "score")

        def predict_proba(self, faces: np.ndarray) -> np.ndarray:
            return np.zeros((len(faces), 2))

    with pytest.raises(FerlabError, match="clash"):
        Recognizer(model=Clash())


def test_model_names_go_to_load_model(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def load_model(name: str, *, device: str, runtime: str, tta: str | None, threads: int | None):
        calls.append((name, device, runtime, tta))
        assert threads == 2
        return BrightnessClassifier()

    monkeypatch.setattr(recognizer_module, "load_model", load_model)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    recognizer = Recognizer(model="default", device="cpu")
    assert calls == [("default", "cpu", "auto", None)] and recognizer.labels == EMOTIONS
    Recognizer(model=Path("runs/best.pt"), runtime="onnx")
    assert calls[-1] == ("runs/best.pt", "auto", "onnx", None)
    Recognizer(model="default", tta="none")
    assert calls[-1] == ("default", "auto", "auto", "none")


def test_settings_are_validated() -> None:
    for kwargs in (
        {"every_n": 0},
        {"smoothing": 1.5},
        {"full_scan_every": 0},
        {"sample_fps": 0},
        {"sample_fps": 5, "every_n": 2},
    ):
        with pytest.raises(FerlabError):
            Recognizer(model=BrightnessClassifier(), **kwargs)
