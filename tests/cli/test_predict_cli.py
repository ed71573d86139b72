"""``ferlab predict``, ``ferlab video`` and ``ferlab live`` through the real entry point.

The emotion model is replaced by a small deterministic classifier (the verbs load models by name
through ``ferlab.recognize.recognizer.load_classifier``), so these tests exercise detection,
tracking, output formats and error handling on generated faces (no real data needed).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from cli_helpers import run

import ferlab.recognize.recognizer as recognizer_module
from ferlab.inference.runtimes import thread_count

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
BOX = (300, 150, 160, 160)


class MeanClassifier:
    """Probabilities from the crop's mean brightness (deterministic, needs no weights)."""

    labels = LABELS

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        mean = faces.reshape(len(faces), -1).mean(axis=1) / 255.0
        logits = -((mean[:, None] - np.linspace(0, 1, len(LABELS))[None]) ** 2) * 40.0
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True)
def test_model(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """``--model test`` loads :class:`MeanClassifier`; the calls (name, device and any other
    option the recognizer passes, such as ``tta``) are recorded."""
    calls: list[tuple] = []

    def load(name: str, device: str = "auto", **options: str) -> MeanClassifier:
        calls.append((name, device, *options.values()))
        return MeanClassifier()

    monkeypatch.setattr(recognizer_module, "load_classifier", load)
    return calls


@pytest.fixture(scope="module")
def face(drawn_faces: np.ndarray) -> np.ndarray:
    """A generated frontal face: the classifier is a stand-in, so no real face is needed."""
    return drawn_faces[1]


def scene(face: np.ndarray | None, x: int = BOX[0]) -> np.ndarray:
    yy, xx = np.mgrid[0:480, 0:640]
    gray = (70 + 100 * xx / 640 + 15 * np.sin(yy / 9.0)).astype(np.uint8)
    if face is not None:
        gray[BOX[1] : BOX[1] + BOX[3], x : x + BOX[2]] = cv2.resize(
            face, BOX[2:], interpolation=cv2.INTER_CUBIC
        )
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


def _iou(a: list[int], b: tuple[int, ...]) -> float:
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(ix, 0) * max(iy, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


@pytest.fixture
def inputs(tmp_path: Path, face: np.ndarray) -> dict[str, Path]:
    paths = {
        "good": tmp_path / "good.jpg",
        "empty": tmp_path / "empty.png",
        "text": tmp_path / "notes.jpg",
        "missing": tmp_path / "missing.png",
    }
    cv2.imwrite(str(paths["good"]), scene(face))
    cv2.imwrite(str(paths["empty"]), scene(None))
    paths["text"].write_text("not a photo")
    return paths


def test_predict_json_reports_every_input_and_goes_on_after_errors(
    inputs: dict[str, Path], capsys: pytest.CaptureFixture, test_model: list
) -> None:
    order = ["missing", "good", "text", "empty"]
    code, out, err = run(
        ["predict", *(str(inputs[k]) for k in order), "--json", "--model", "test"], capsys
    )
    assert code == 1  # some inputs failed
    assert test_model == [("test", "auto", "auto", None, thread_count())]
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["source"] for line in lines] == [str(inputs[k]) for k in order]
    missing, good, text, empty = lines
    assert "no such file" in missing["error"] and missing["faces"] == []
    assert "not an image" in text["error"]
    assert empty["faces"] == [] and "error" not in empty
    (found,) = good["faces"]
    assert _iou(found["box"], BOX) > 0.6
    assert list(found["scores"]) == list(LABELS)
    assert found["label"] == max(found["scores"], key=found["scores"].get)
    assert sum(found["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert "missing.png" in err and "notes.jpg" in err


def test_predict_table_csv_and_annotations(
    inputs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # the table shows paths relative to the working folder
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.jpg").write_bytes(inputs["good"].read_bytes())
    (folder / "b.png").write_bytes(inputs["empty"].read_bytes())
    out_dir, table = tmp_path / "annotated", tmp_path / "faces.csv"
    code, out, _ = run(
        [
            "predict",
            str(folder),
            "--model",
            "test",
            "--csv",
            str(table),
            "--annotate",
            str(out_dir),
        ],
        capsys,
    )
    assert code == 0
    assert "photos/sub/a.jpg" in out and "no face found" in out and "photos/b.png" in out
    assert "det.: the face detector's confidence" in out  # the table says what its columns are
    # Every image is in the CSV, as in --json: the one without a face with empty face columns.
    rows = list(csv.DictReader(table.open()))
    assert [Path(r["source"]).name for r in rows] == ["b.png", "a.jpg"]
    empty, found = rows
    assert empty["face_id"] == empty["label"] == empty["error"] == ""
    assert set(LABELS) <= set(found) and found["label"] in LABELS and found["face_id"] == "0"
    drawn = cv2.imread(str(out_dir / "sub" / "a.jpg"))
    assert drawn is not None and drawn.shape == (480, 640, 3)
    assert np.abs(drawn.astype(int) - scene_from(inputs["good"]).astype(int)).mean() > 1.0
    assert (out_dir / "b.png").exists()


def scene_from(path: Path) -> np.ndarray:
    return cv2.imread(str(path))


def test_predict_bad_choices_are_one_line_errors(
    inputs: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    code, _, err = run(["predict", str(inputs["good"]), "--detector", "yolo"], capsys)
    assert code == 2
    assert "unknown detector 'yolo'" in err and "haar-profile" in err
    assert "Traceback" not in err
    code, _, err = run(["predict", str(inputs["good"]), "--tta", "twelve_crop"], capsys)
    assert code == 2 and "unknown test-time augmentation 'twelve_crop'" in err
    assert "ten_crop" in err


def test_help_names_every_detector(capsys: pytest.CaptureFixture) -> None:
    from ferlab.recognize import DETECTORS

    code, out, _ = run(["predict", "--help"], capsys)
    assert code == 0
    flat = " ".join(out.split())
    for name in DETECTORS:
        assert name in flat


@pytest.fixture
def clip(tmp_path: Path, face: np.ndarray) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    for i in range(12):
        writer.write(scene(face, x=150 + 12 * i))
    writer.release()
    return path


def test_video_json_csv_out_and_timeline(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, table, plot = tmp_path / "out.mp4", tmp_path / "v.csv", tmp_path / "t.png"
    argv = ["video", str(clip), "--model", "test", "--every", "2", "--json"]
    code, stdout, _ = run(
        [*argv, "--out", str(out), "--csv", str(table), "--timeline", str(plot)], capsys
    )
    assert code == 0
    frames = [json.loads(line) for line in stdout.splitlines()]
    assert [f["frame"] for f in frames] == list(range(0, 12, 2))
    assert [f["time"] for f in frames] == pytest.approx([i / 10 for i in range(0, 12, 2)])
    assert {face["face_id"] for f in frames for face in f["faces"]} == {0}
    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()
    # One row per face, and one per frame without a face: every frame --json lists.
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == sum(max(1, len(f["faces"])) for f in frames)
    assert sorted({int(r["frame"]) for r in rows}) == [f["frame"] for f in frames]
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_video_summary_table(clip: Path, capsys: pytest.CaptureFixture, test_model: list) -> None:
    code, out, _ = run(["video", str(clip), "--model", "test", "--every", "3"], capsys)
    assert code == 0
    assert "1 face" in out and "dominant emotion" in out
    # Video defaults to one input per face; photos use the model's own augmentation.
    assert test_model == [("test", "auto", "auto", None, thread_count())]


def test_video_that_cannot_be_opened(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fake = tmp_path / "broken.mp4"
    fake.write_bytes(b"\x00" * 1000)
    code, _, err = run(["video", str(fake), "--model", "test"], capsys)
    assert code == 1
    assert "broken.mp4" in err and "cannot open video" in err
    code, _, err = run(["video", str(tmp_path / "gone.mp4"), "--model", "test"], capsys)
    assert code == 1 and "no such file" in err


def test_live_streams_json_lines(clip: Path, capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run(
        ["live", "--camera", str(clip), "--json", "--frames", "3", "--model", "test"], capsys
    )
    assert code == 0
    frames = [json.loads(line) for line in out.splitlines()]
    assert 1 <= len(frames) <= 3
    assert all(f["source"] == f"camera:{clip}" and "faces" in f for f in frames)


def test_live_without_a_camera_is_a_clear_error(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["live", "--camera", "/nonexistent/stream.avi", "--model", "test"], capsys)
    assert code == 2
    assert "/nonexistent/stream.avi: no such file" in err and "no device" not in err
    assert "Traceback" not in err


def test_camera_names_are_printed_as_typed(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run(["live", "--camera", "-1", "--model", "test"], capsys)
    assert code == 2 and "camera:-1: a camera index is 0 or more" in err  # not an emoji
    code, _, err = run(["live", "--camera", "[red]x:+1:", "--model", "test"], capsys)
    assert code == 2 and "error: [red]x:+1:: no such file" in err


def test_predict_on_an_empty_folder_is_an_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "photos" / "notes.txt").write_text("no images here")
    code, _, err = run(["predict", str(tmp_path / "photos"), "--model", "test"], capsys)
    assert code == 1
    assert f"{tmp_path / 'photos'}: no images in this folder" in err


def test_opencv_warnings_do_not_precede_the_error(tmp_path: Path, capfd) -> None:
    """OpenCV's and FFmpeg's own warnings go to the process's stderr, so fd-level capture."""
    from ferlab.cli.app import main

    fake = tmp_path / "broken.mp4"
    fake.write_text("not a video")  # FFmpeg: "moov atom not found"
    for argv in (
        ["video", str(fake)],
        ["live", "--camera", str(fake), "--json"],
        ["live", "--camera", "99", "--json"],
    ):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--model", "test"])
        assert exit_.value.code != 0
        err = capfd.readouterr().err
        assert [line for line in err.splitlines() if line.strip()] == [
            line for line in err.splitlines() if line.startswith("error: ")
        ], err


def test_piped_tables_keep_long_paths_whole(tmp_path: Path, capsys, face) -> None:
    folder = tmp_path / ("a-folder-with-a-long-name-" * 4)
    folder.mkdir()
    photo = folder / "photo.png"
    cv2.imwrite(str(photo), scene(face))
    code, out, _ = run(["predict", str(photo), "--model", "test"], capsys)
    assert code == 0 and str(photo) in out  # stdout is not a terminal: no wrapping at 80


def test_predict_streams_the_csv_of_the_sequential_path(
    inputs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import pandas as pd

    from ferlab.recognize import Recognizer

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(6):
        key = ("good", "empty", "text")[i % 3]
        (folder / f"{i}{inputs[key].suffix}").write_bytes(inputs[key].read_bytes())
    table = tmp_path / "streamed.csv"
    argv = ["predict", str(folder), str(inputs["good"]), "--model", "test", "--json"]
    code, out, _ = run([*argv, "--csv", str(table), "--threads", "3"], capsys)
    assert code == 1  # the text files are unreadable
    sequential = Recognizer(model=MeanClassifier(), threads=1)
    want = sequential.run([folder, inputs["good"]], errors="collect")
    assert [json.loads(line)["source"] for line in out.splitlines()] == want.sources
    reference = tmp_path / "reference.csv"
    want.to_csv(reference, every_frame=True)
    pd.testing.assert_frame_equal(pd.read_csv(table), pd.read_csv(reference))


def test_video_sample_fps_and_per_second_timeline(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    per_second, plot = tmp_path / "seconds.csv", tmp_path / "t.png"
    argv = ["video", str(clip), "--model", "test", "--sample-fps", "5", "--json"]
    code, stdout, _ = run(
        [*argv, "--timeline-csv", str(per_second), "--timeline", str(plot)], capsys
    )
    assert code == 0
    frames = [json.loads(line) for line in stdout.splitlines()]
    assert [f["frame"] for f in frames] == [0, 2, 4, 6, 8, 10]  # 10 fps video, 5 per second
    rows = list(csv.DictReader(per_second.open()))
    assert [r["second"] for r in rows] == ["0", "1"]
    assert [r["frames"] for r in rows] == ["5", "1"]
    assert all(r["label"] in LABELS for r in rows)
    assert plot.read_bytes()[:4] == b"\x89PNG"
    code, _, err = run([*argv, "--every", "2"], capsys)
    assert code == 2 and "--sample-fps or --every" in err
