"""Faces the user already has: whole-image crops, given boxes (API and ``--boxes`` CSV), and the
one ``crop_faces`` with its ``MIN_ROLL`` rule. Runs on the example photo and the shipped model
through ONNX Runtime, so it needs neither the datasets nor PyTorch."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import ferlab.recognize.align as align
from ferlab.errors import DataError
from ferlab.recognize import Recognizer, align_crop, crop_faces
from ferlab.recognize.io import read_boxes
from tests.cli.cli_helpers import run

ROOT = Path(__file__).resolve().parents[2]
ASTRONAUT = ROOT / "examples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return cv2.imread(str(ASTRONAUT))


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer(model="default", runtime="onnx", device="cpu")


@pytest.fixture(scope="module")
def found(recognizer: Recognizer, photo: np.ndarray):
    (face,) = recognizer(photo)  # the example photo has one face
    return face


@pytest.fixture(scope="module")
def fer_crop(photo: np.ndarray, found, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The astronaut's face as a 48×48 FER-style crop file."""
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    path = tmp_path_factory.mktemp("crop") / "face48.png"
    cv2.imwrite(str(path), align_crop(gray, found.box))
    return path


def test_crop_faces_levels_only_rolls_of_min_roll_or_more(photo, found, monkeypatch):
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    for roll, rotated in ((3.0, False), (-4.9, False), (5.0, True), (-12.0, True)):
        monkeypatch.setattr(align, "eye_angle", lambda g, b, roll=roll: roll)
        crops, rolls = crop_faces(gray, [found.box], align=True)
        assert rolls == [roll]  # the measured roll is reported either way
        want = align_crop(gray, found.box, angle=roll if rotated else 0.0)
        np.testing.assert_array_equal(crops[0], want)
    crops, rolls = crop_faces(gray, [found.box], align=False)
    assert rolls == [None] and crops.shape == (1, 48, 48)
    assert crop_faces(gray, [], align=True)[0].shape == (0, 48, 48)


def test_a_48_pixel_crop_is_one_face(recognizer, fer_crop, capsys):
    crop = cv2.imread(str(fer_crop), cv2.IMREAD_GRAYSCALE)
    (face,) = recognizer(str(fer_crop))
    assert face.box == (0, 0, 48, 48) and face.score is None
    want = recognizer.classifier.predict_proba(crop)[0]
    assert [face.scores[k] for k in recognizer.labels] == pytest.approx(want.tolist(), abs=1e-6)
    code, out, err = run(["predict", str(fer_crop), "--runtime", "onnx", "--json"], capsys)
    assert code == 0, err
    (line,) = out.splitlines()
    (row,) = json.loads(line)["faces"]
    assert row["box"] == [0, 0, 48, 48] and row["score"] is None


def test_faces_detect_searches_even_small_images(fer_crop, capsys):
    code, out, _ = run(
        ["predict", str(fer_crop), "--runtime", "onnx", "--faces", "detect", "--json"], capsys
    )
    assert code == 0 and json.loads(out)["faces"] == []


def test_faces_whole_takes_a_photo_as_one_face(capsys):
    code, out, err = run(
        ["predict", str(ASTRONAUT), "--runtime", "onnx", "--faces", "whole", "--json"], capsys
    )
    assert code == 0, err
    (row,) = json.loads(out)["faces"]
    h, w = cv2.imread(str(ASTRONAUT)).shape[:2]
    assert row["box"] == [0, 0, w, h]


def test_given_boxes_skip_detection(recognizer, photo, found):
    (face,) = recognizer(photo, boxes=[found.box])
    assert face.box == found.box and face.score is None
    assert face.scores == pytest.approx(found.scores, abs=1e-6)  # same crop, same scores
    assert recognizer(photo, boxes=[]).faces == []
    with pytest.raises(DataError, match="outside"):
        recognizer(photo, boxes=[(5000, 10, 40, 40)])
    with pytest.raises(DataError, match="four integers"):
        recognizer(photo, boxes=[(1, 2, 3)])


def test_predict_boxes_csv(found, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    image = tmp_path / "photo.jpg"
    image.write_bytes(ASTRONAUT.read_bytes())
    x, y, w, h = found.box
    (tmp_path / "boxes.csv").write_text(
        f"image,x,y,w,h\nphoto.jpg,{x},{y},{w},{h}\nphoto.jpg,0,0,60,60\n"
    )
    code, out, err = run(
        ["predict", "photo.jpg", "--boxes", "boxes.csv", "--runtime", "onnx", "--json"], capsys
    )
    assert code == 0, err
    boxes = [f["box"] for f in json.loads(out)["faces"]]
    assert boxes == [[x, y, w, h], [0, 0, 60, 60]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("img,x,y,w,h\na.jpg,1,2,3,4\n", "line 1: missing column(s) image"),
        ("image,x,y,w,h\na.jpg,1,2,3,4\na.jpg,1,two,3,4\n", "line 3: field 'y': 'two' is not"),
        ("image,x,y,w,h\na.jpg,1,2,0,4\n", "line 2: box (1, 2, 0, 4) must have"),
        ("image,x,y,w,h\n,1,2,3,4\n", "line 2: field 'image': the image path is empty"),
    ],
)
def test_bad_box_files_name_the_file_and_line(tmp_path, capsys, text, message):
    path = tmp_path / "boxes.csv"
    path.write_text(text)
    with pytest.raises(DataError) as info:
        read_boxes(path)
    assert str(info.value).startswith(f"{path}: {message}")
    code, _, err = run(["predict", str(ASTRONAUT), "--boxes", str(path)], capsys)
    assert code == 2 and message in " ".join(err.split()) and "Traceback" not in err
    with pytest.raises(DataError, match="box file not found"):
        read_boxes(tmp_path / "none.csv")


def test_min_face_and_detect_size_reach_the_detector(capsys, monkeypatch):
    import ferlab.cli.predict as predict

    seen = {}

    def build(model, detector, device, runtime, tta, min_face, detect_size, *more, **kwargs):
        seen.update(min_face=min_face, detect_size=detect_size)
        raise SystemExit(0)

    monkeypatch.setattr(predict, "build_recognizer", build)
    run(["predict", str(ASTRONAUT), "--min-face", "24", "--detect-size", "1280"], capsys)
    assert seen == {"min_face": 24, "detect_size": 1280}
    for verb in (["video", "clip.mp4"], ["live"]):
        seen.clear()
        run([*verb, "--min-face", "30", "--detect-size", "900"], capsys)
        assert seen == {"min_face": 30, "detect_size": 900}


def test_photos_use_the_models_tta_and_tracked_frames_the_stream_tta(recognizer):
    assert recognizer.classifier.tta == "ten_crop"  # the shipped model's own
    assert recognizer.stream_classifier.tta == "none"  # ferlab.inference.STREAM_TTA
    assert recognizer.stream_classifier.network is recognizer.classifier.network
    chosen = Recognizer(model="default", runtime="onnx", tta="flip")
    assert chosen.classifier.tta == chosen.stream_classifier.tta == "flip"
