"""``ferlab explain`` through the real entry point: figures for crops and photos, every kind of
method, JSON output and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from tests.cli.cli_helpers import run
from tests.data.fer_builders import USAGES, csv_row, write_csv
from tests.engine.engine_helpers import synthetic_data
from tests.recognize.recognize_helpers import background, paste

PNG = b"\x89PNG\r\n\x1a\n"


def _is_png(path: str | Path) -> bool:
    return Path(path).read_bytes()[:8] == PNG


@pytest.fixture
def crops(tmp_path: Path) -> Path:
    """A folder of two 48×48 face crops (synthetic faces the checkpoint was trained on)."""
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, image in enumerate(synthetic_data(2, seed=9).images.numpy()):
        cv2.imwrite(str(folder / f"crop{i}.png"), image)
    return folder


def test_gradcam_figures_for_a_folder_of_crops(checkpoint, crops, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(
        ["explain", str(checkpoint), "--images", str(crops), "--out", str(out), "--json"], capsys
    )
    assert code == 0, err
    report = json.loads(stdout)
    assert report["method"] == "gradcam"
    assert report["files"] == [str(out / "crop0_gradcam.png"), str(out / "crop1_gradcam.png")]
    assert all(_is_png(f) for f in report["files"])
    for face in report["faces"]:
        assert face["label"] == max(face["scores"], key=face["scores"].get)
        assert "box" not in face  # crops are used whole


@pytest.mark.parametrize("method", ["gradcam++", "layercam", "scorecam", "stn"])
def test_other_face_methods(method, checkpoint, crops, tmp_path, capsys):
    image = crops / "crop0.png"
    code, stdout, err = run(
        ["explain", str(checkpoint), "-i", str(image), "-o", str(tmp_path), "-m", method], capsys
    )
    assert code == 0, err
    assert stdout.split() == [str(tmp_path / f"crop0_{method}.png")]
    assert _is_png(tmp_path / f"crop0_{method}.png")


def test_one_target_class(checkpoint, crops, tmp_path, capsys):
    args = ["explain", str(checkpoint), "-i", str(crops / "crop1.png"), "-o", str(tmp_path)]
    code, _, err = run([*args, "--target", "happy"], capsys)
    assert code == 0, err
    assert _is_png(tmp_path / "crop1_gradcam.png")
    code, _, err = run([*args, "--target", "joy"], capsys)
    assert code == 2 and "unknown class 'joy'" in err


@pytest.mark.parametrize(
    ("model", "method", "extra"),
    [
        ("deep_emotion_msa", "attention", ["--query", "10,30"]),
        ("ferlab_net", "se", []),
        # Two full-size VGG19s (40 M parameters) built from scratch.
        pytest.param("facial_attention_m1", "facial", [], marks=pytest.mark.slow),
    ],
)
def test_zoo_architectures_with_random_weights(model, method, extra, crops, tmp_path, capsys):
    image = crops / "crop0.png"
    code, stdout, err = run(
        ["explain", model, "-i", str(image), "-o", str(tmp_path), "-m", method, *extra], capsys
    )
    assert code == 0, err
    assert "random weights" in err
    assert _is_png(stdout.strip())


@pytest.fixture(scope="module")
def photo(face, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A photo with one face (FER2013 row 8, or its generated stand-in), 160 px wide."""
    path = tmp_path_factory.mktemp("photo") / "photo.jpg"
    cv2.imwrite(str(path), paste(background(), face, 300, 150, 160))
    return path


def test_faces_in_a_photo_are_found_like_predict_finds_them(checkpoint, photo, tmp_path, capsys):
    code, stdout, err = run(
        ["explain", str(checkpoint), "-i", str(photo), "-o", str(tmp_path), "--json"], capsys
    )
    assert code == 0, err
    (face,) = json.loads(stdout)["faces"]
    assert face["name"] == "photo_face0" and _is_png(face["file"])
    x, y, w, h = face["box"]
    assert abs(x - 300) < 25 and abs(y - 150) < 25 and 120 < w < 200
    code, stdout, _ = run(
        ["explain", str(checkpoint), "-i", str(photo), "-o", str(tmp_path), "--faces", "whole"],
        capsys,
    )
    assert code == 0 and stdout.split() == [str(tmp_path / "photo_gradcam.png")]


def test_a_photo_without_faces_is_reported(checkpoint, tmp_path, capsys):
    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), background())
    code, stdout, err = run(
        ["explain", str(checkpoint), "-i", str(empty), "-o", str(tmp_path / "o")], capsys
    )
    assert code == 1 and stdout == "" and "no face found" in err


def test_filters(checkpoint, tmp_path, capsys):
    code, stdout, err = run(
        ["explain", str(checkpoint), "-o", str(tmp_path), "-m", "filters", "--steps", "3"]
        + ["--count", "2"],
        capsys,
    )
    assert code == 0, err
    assert stdout.split() == [str(tmp_path / "filters.png")] and _is_png(tmp_path / "filters.png")
    code, _, err = run(
        ["explain", str(checkpoint), "-o", str(tmp_path), "-m", "filters", "--filters", "1,x"],
        capsys,
    )
    assert code == 2 and "--filters must be comma-separated numbers" in err


def test_misclassified(checkpoint, tmp_path, capsys):
    data = synthetic_data(210, seed=4)
    rows = [
        csv_row(int(label), image, USAGES[int(split)])
        for image, label, split in zip(data.images.numpy(), data.labels, data.split, strict=True)
    ]
    csv = write_csv(tmp_path / "small.csv", rows)
    out = tmp_path / "out"
    code, stdout, err = run(
        ["explain", str(checkpoint), "-o", str(out), "-m", "misclassified", "--data", str(csv)]
        + ["--cache-dir", str(tmp_path / "cache")],
        capsys,
    )
    assert code == 0, err
    assert stdout.split() == [str(out / "misclassified_val.png")]
    assert _is_png(out / "misclassified_val.png")
    assert f"of {len(data.subset('val'))} val faces misclassified" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-m", "se"], "does not support --method se; it supports: gradcam, gradcam++"),
        (["-m", "heat"], "unknown explain method 'heat'"),
        (["-m", "misclassified"], "needs the dataset: pass --data"),
        (["-m", "attention"], "does not support --method attention"),
    ],
)
def test_errors_are_one_clear_line(args, message, checkpoint, crops, tmp_path, capsys):
    base = ["explain", str(checkpoint), "-i", str(crops / "crop0.png"), "-o", str(tmp_path)]
    code, _, err = run([*base, *args], capsys)
    assert code == 2 and message in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vgg19", "-o", "x"], "explains faces: give them with --images"),
        (["nonesuch", "-o", "x", "-m", "filters"], "unknown model (shipped name"),
        (["deep_emotion_msa", "-o", "x", "-m", "attention", "-i", "nope.png"], "no such file"),
        (["deep_emotion_msa", "-o", "x", "-m", "filters", "--steps", "0"], "--steps"),
    ],
)
def test_bad_arguments(args, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["explain", *args], capsys)
    assert code == 2 and message in err


def test_bad_query(crops, tmp_path, capsys):
    args = ["explain", "deep_emotion_msa", "-i", str(crops / "crop0.png"), "-o", str(tmp_path)]
    code, _, err = run([*args, "-m", "attention", "--query", "3"], capsys)
    assert code == 2 and "--query must be X,Y" in err
    code, _, err = run([*args, "-m", "attention", "--query", "60,2"], capsys)
    assert code == 2 and "outside" in err


def test_help_lists_the_methods(capsys):
    code, stdout, _ = run(["explain", "--help"], capsys)
    assert code == 0
    text = " ".join(stdout.split())
    for method in ("gradcam++", "scorecam", "stn", "facial", "filters", "misclassified"):
        assert method in text
