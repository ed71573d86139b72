"""``ferlab data info`` and ``ferlab data check`` through the real entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

HEADER = "emotion,pixels,Usage"
USAGES = ("Training", "PublicTest", "PrivateTest")


def row(i: int, emotion: int | str | None = None, usage: str | None = None, n: int = 2304) -> str:
    pixels = " ".join(map(str, np.random.default_rng(i).integers(0, 256, n).tolist()))
    return f"{i % 7 if emotion is None else emotion},{pixels},{usage or USAGES[i % 3]}"


def write(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


@pytest.fixture
def clean(tmp_path: Path) -> Path:
    return write(tmp_path / "fer2013.csv", [row(i) for i in range(14)])


@pytest.fixture
def dirty(tmp_path: Path) -> Path:
    rows = [row(i) for i in range(10)]
    rows[2] = row(2, emotion=9)
    rows[5] = row(5, n=100)
    rows[7] = row(7, usage="Validation")
    return write(tmp_path / "dirty.csv", rows)


def test_info_json_shape(clean: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(["data", "info", str(clean), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["format"] == "fer2013-csv"
    assert list(doc["splits"]) == ["train", "val", "test"]
    assert doc["splits"]["train"]["total"] == 5
    assert doc["splits"]["train"]["per_class"] == {
        "angry": 1,
        "disgust": 0,
        "fear": 1,
        "happy": 1,
        "sad": 0,
        "surprise": 1,
        "neutral": 1,
    }
    for split in doc["splits"].values():
        assert split["total"] == sum(split["per_class"].values())
    assert doc["classes"][0] == "angry" and doc["label_mode"] == "fer2013"
    assert doc["skipped"] == []


def test_info_table(clean: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(["data", "info", str(clean)], capsys)
    assert code == 0
    for word in ("angry", "neutral", "train", "val", "test", "total", "fer2013-csv"):
        assert word in out


def test_info_skip_bad_summarises_on_stderr(dirty: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(["data", "info", str(dirty), "--skip-bad", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert sum(s["total"] for s in doc["splits"].values()) == 7 and len(doc["skipped"]) == 3
    assert "skipped 3 bad rows" in err and "line 4" in err


def test_bad_data_is_one_clean_line(dirty: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, err = run(["data", "info", str(dirty)], capsys)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "line 4" in lines[0] and "unknown emotion id 9" in lines[0]
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv",
    [
        ["data", "info", "/nonexistent/fer2013.csv"],
        ["data", "info", "{csv}", "--labels", "nope"],
        ["data", "info", "{csv}", "--labels", "ferplus-majority"],
        ["data", "info", "{csv}", "--val-fraction", "2"],
        ["data", "check", "{csv}", "--labels", "nope"],
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], clean: Path, capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run([a.format(csv=clean) for a in argv], capsys)
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_check_clean(clean: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(["data", "check", str(clean)], capsys)
    assert code == 0 and "no problems" in out and "14 good" in out


def test_check_lists_every_problem(dirty: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(["data", "check", str(dirty)], capsys)
    assert code == 1
    assert "3 problems" in out
    for line, words in ((4, "unknown emotion id 9"), (7, "found 100"), (9, "'Validation'")):
        assert any(f"line {line}" in x and words in x for x in out.splitlines())
    assert "7 good" in out


def test_check_with_skip_bad_accepts_row_problems(
    dirty: Path, capsys: pytest.CaptureFixture
) -> None:
    code, out, _ = run(["data", "check", str(dirty), "--skip-bad"], capsys)
    assert code == 0 and "3 problems" in out and "--skip-bad leaves out" in out


def test_check_fatal_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "x.csv"
    path.write_text("not,a,header\n")
    code, out, _ = run(["data", "check", str(path), "--skip-bad"], capsys)
    assert code == 1 and "missing or unrecognised header" in out


def test_check_caps_the_listing(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = write(tmp_path / "many.csv", [row(i, emotion=8) for i in range(60)])
    code, out, _ = run(["data", "check", str(path)], capsys)
    assert code == 1 and "60 problems" in out and "... and 10 more" in out
    assert sum("unknown emotion id 8" in x for x in out.splitlines()) == 50


@pytest.mark.dataset
@pytest.mark.slow
def test_info_json_on_the_real_csv(
    fer2013_csv: Path, fer2013_cache_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["data", "info", str(fer2013_csv), "--cache-dir", str(fer2013_cache_dir), "--json"]
    code, out, _ = run(argv, capsys)
    assert code == 0
    splits = json.loads(out)["splits"]
    assert [splits[s]["total"] for s in ("train", "val", "test")] == [28_709, 3_589, 3_589]
    assert splits["val"]["per_class"]["disgust"] == 56


@pytest.mark.dataset
def test_check_real_image_folders(datasets_dir: Path, capsys: pytest.CaptureFixture) -> None:
    for path in (
        datasets_dir / "face-nonface",
        datasets_dir / "fer2013-images" / "fer2013-images-sample.zip",
    ):
        code, out, _ = run(["data", "check", str(path)], capsys)
        assert code == 0 and "no problems" in out
