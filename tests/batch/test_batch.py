"""``ferlab.batch`` without Ray: planning, chunks, the local engine, the Parquet output and its
resumption, video ranges, and the CLI's engine options (the Ray engine: test_ray.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from batch_helpers import write_clip

from ferlab import batch
from ferlab.batch.jobs import ID_STRIDE, chunked, plan, tidy
from ferlab.errors import DataError, FerlabError
from ferlab.recognize import Recognizer
from ferlab.recognize.video import open_video, read_frames
from tests.cli.cli_helpers import run

pytest.importorskip("pyarrow", reason="the Parquet output needs pyarrow (ferlab[ray])")


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, drawn_faces: np.ndarray) -> Path:
    """A folder of 10 images: 48×48 face crops, one 640×480 scene without a face, one file that
    is not an image."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(8):
        cv2.imwrite(str(folder / f"face{i}.png"), drawn_faces[i])
    cv2.imwrite(str(folder / "scene.jpg"), np.full((480, 640, 3), 120, np.uint8))
    (folder / "broken.jpg").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.avi", frames=30)


def test_plan_lists_inputs_once_and_cuts_videos_into_ranges(photos: Path, clip: Path) -> None:
    units = plan([photos, clip, photos / "face1.png", photos / "missing.png"], chunk_frames=7)
    images = [u for u in units if not u.video]
    assert len(images) == 11  # the folder's 10 files, the missing one; face1.png once
    assert images[-1].source.endswith("missing.png")
    ranges = [(u.start, u.stop, u.first_id) for u in units if u.video]
    assert ranges == [
        (0, 7, 0),
        (7, 14, ID_STRIDE),
        (14, 21, 2 * ID_STRIDE),
        (21, 28, 3 * ID_STRIDE),
        (28, None, 4 * ID_STRIDE),
    ]
    # With every second frame processed, ranges start on processed frames (8 = 7 rounded up).
    assert [u.start for u in plan([clip], chunk_frames=7, every_n=2)] == [0, 8, 16, 24]
    chunks = chunked(units, images_per_chunk=4)
    assert [len(c) for c in chunks] == [4, 4, 2, 1, 1, 1, 1, 1, 1]
    assert sum(chunks, []) == units


def test_plan_reports_folders_without_images_as_errors(tmp_path: Path) -> None:
    (unit,) = plan([tmp_path])
    assert unit.error is not None and "no images in this folder" in unit.error


def test_seeking_a_range_reads_the_same_frames(clip: Path) -> None:
    cap, fps, count = open_video(clip)
    whole = list(read_frames(cap, fps, 2))
    cap.release()
    cap, fps, _ = open_video(clip)
    part = list(read_frames(cap, fps, 2, start=10, stop=20))
    cap.release()
    assert count == 30
    assert [i for i, _, _ in part] == [10, 12, 14, 16, 18]
    for (i, t, frame), (j, u, expected) in zip(part, whole[5:10], strict=True):
        assert (i, t) == (j, u)
        np.testing.assert_array_equal(frame, expected)


def _local_rows(paths: list[Path], **options) -> pd.DataFrame:
    """The local engine's own table (``ferlab predict --csv``), with the batch column types."""
    rec = Recognizer(model="default", runtime="onnx", **options)
    results = rec.run([str(p) for p in paths], errors="collect")
    return tidy(results.to_dataframe(every_frame=True))


def test_local_engine_rows_equal_the_recognizers(photos: Path) -> None:
    df = batch.predict([photos], images_per_chunk=3)
    expected = _local_rows([photos])
    assert len(df) == 10 and df["error"].notna().sum() == 1 and df["label"].isna().sum() == 2
    pd.testing.assert_frame_equal(df, expected)


def test_out_resumes_and_refuses_other_settings(photos: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "out"
    first = batch.predict([photos], out=out, images_per_chunk=3)
    files = sorted(out.glob("part-*.parquet"))
    assert len(files) == 4 and (out / "_ferlab.json").is_file()
    pd.testing.assert_frame_equal(batch.read(out), first)
    # A lost chunk is all that a rerun redoes.
    lost = set(pd.read_parquet(files[1])["unit"])
    files[1].unlink()
    calls = []
    real = batch.run_chunk
    monkeypatch.setattr(
        batch, "run_chunk", lambda rec, chunk: calls.append(chunk) or real(rec, chunk)
    )
    again = batch.predict([photos], out=out, images_per_chunk=3)
    assert [{u.key for u in chunk} for chunk in calls] == [lost]
    pd.testing.assert_frame_equal(again, first)
    assert not list(out.glob(".*"))  # no temporary file left
    with pytest.raises(DataError, match="other settings.*tta"):
        batch.predict([photos], out=out, tta="none")


def test_video_ranges_track_afresh_with_their_own_ids(clip: Path) -> None:
    whole = _local_rows([clip], every_n=2)
    split = batch.predict([clip], every_n=2, chunk_frames=10)
    assert split["frame"].tolist() == whole["frame"].tolist()  # every frame exactly once
    first = split["frame"] < 10
    pd.testing.assert_frame_equal(split[first], whole[first])
    later = split.loc[~first & split["label"].notna(), "face_id"]
    assert len(later) and (later // ID_STRIDE >= 1).all()
    assert (
        split.loc[~first, ["x", "y"]].to_numpy() == whole.loc[~first, ["x", "y"]].to_numpy()
    ).all()


def test_bad_engine_options_are_one_line_errors(photos: Path, clip: Path, capsys) -> None:
    code, _, err = run(["predict", str(photos), "--engine", "spark"], capsys)
    assert code == 2 and "unknown --engine value 'spark'" in err
    code, _, err = run(["predict", str(photos), "--workers", "2"], capsys)
    assert code == 2 and "--workers is for the ray engine" in err
    code, _, err = run(["predict", str(photos), "--engine", "ray", "--annotate", "x"], capsys)
    assert code == 2 and "--annotate is for the local engine" in err
    code, _, err = run(["video", str(clip), "--engine", "ray", "--sample-fps", "5"], capsys)
    assert code == 2 and "--sample-fps is for the local engine" in err
    with pytest.raises(FerlabError, match="unknown engine"):
        batch.predict([photos], engine="spark")


def test_without_ray_the_engine_says_how_to_install_it(photos: Path, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    code, _, err = run(["predict", str(photos), "--engine", "ray"], capsys)
    assert code == 2
    assert 'pip install "ferlab[ray]"' in " ".join(err.split())
    assert "Traceback" not in err
