"""Folders and lists of images on several threads: the same results, in the same order, as one
image at a time, with the faces of many images classified in one call."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from recognize_helpers import BrightnessClassifier, background, paste

from ferlab.errors import DataError
from ferlab.recognize import Recognizer

#: Where faces go (x, y, size) in the 640×480 scenes: none, one or two per image.
PLACES = ((), ((300, 150, 160),), ((40, 40, 150), (400, 200, 170)))


@pytest.fixture
def folder(tmp_path: Path, fer_faces: dict[int, np.ndarray]) -> Path:
    """17 photos with 0-2 faces each (one in a subfolder, one 48×48 crop) and an unreadable
    file among them."""
    rows = sorted(fer_faces)
    for i in range(15):
        scene = background()
        for j, (x, y, size) in enumerate(PLACES[i % 3]):
            scene = paste(scene, fer_faces[rows[(i + j) % len(rows)]], x, y, size)
        cv2.imwrite(str(tmp_path / f"{i:02d}.png"), scene)
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "crop.png"), fer_faces[rows[0]])
    (tmp_path / "07b.jpg").write_text("not an image")
    return tmp_path


def dicts(rec: Recognizer, source, **kwargs) -> list[dict]:
    return [fr.to_dict() for fr in rec.iter_frames(source, errors="collect", **kwargs)]


def test_a_folder_on_four_threads_matches_one_thread(folder: Path):
    one = Recognizer(model=BrightnessClassifier(), threads=1)
    many_classifier = BrightnessClassifier()
    many = Recognizer(model=many_classifier, threads=4)
    want = dicts(one, folder)
    assert dicts(many, folder) == want
    assert sum(len(d["faces"]) for d in want) >= 15  # faces were found, not just empties
    assert any("error" in d for d in want)
    # Faces of several images went to the classifier together.
    assert max(len(batch) for batch in many_classifier.batches) > 2


def test_a_list_of_image_paths_matches_and_keeps_other_sources(folder: Path):
    files = sorted(folder.glob("*.png"))[:6]
    sources = [*files, background(), str(files[0])]
    one = Recognizer(model=BrightnessClassifier(), threads=1)
    many = Recognizer(model=BrightnessClassifier(), threads=3)
    got = dicts(many, sources)
    assert got == dicts(one, sources)
    assert [d["source"] for d in got] == [*map(str, files), "<array>", str(files[0])]


def test_errors_raise_in_order_on_threads(folder: Path):
    many = Recognizer(model=BrightnessClassifier(), threads=4)
    seen = []
    with pytest.raises(DataError, match="07b.jpg"):
        for fr in many.iter_frames(folder):
            seen.append(Path(fr.source).name)
    assert seen == [f"{i:02d}.png" for i in range(8)]


def test_the_real_model_gives_the_same_faces_batched(folder: Path):
    pytest.importorskip("onnxruntime")
    one = Recognizer(threads=1, tta="none")
    many = Recognizer(model=one.classifier, threads=4)
    want, got = dicts(one, folder), dicts(many, folder)
    assert [d["source"] for d in got] == [d["source"] for d in want]
    for a, b in zip(got, want, strict=True):
        assert [f["box"] for f in a["faces"]] == [f["box"] for f in b["faces"]]
        for fa, fb in zip(a["faces"], b["faces"], strict=True):
            assert fa["scores"] == pytest.approx(fb["scores"], abs=1e-4)
