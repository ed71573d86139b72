"""The Ray engine on a local Ray with 2 CPUs: rows identical to the local engine on the
Kaggle-layout sample, a killed worker (every input exactly once), video ranges, the CLI.

One Ray for the module (starting one costs seconds); skipped without ray or without the sample.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from batch_helpers import SAMPLE_ZIP, DiesOnce, extract_sample, write_clip

from ferlab import batch
from ferlab.batch.jobs import ID_STRIDE, tidy
from ferlab.recognize import Recognizer
from tests.cli.cli_helpers import run

ray = pytest.importorskip("ray", reason='the ray engine needs ray: pip install "ferlab[ray]"')


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    """A local Ray with 2 CPUs whose workers can import this folder's helpers."""
    ray.init(
        "local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).parent)}},
    )
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not SAMPLE_ZIP.is_file():
        pytest.skip(f"the Kaggle-layout sample is not at {SAMPLE_ZIP.resolve()}")
    return extract_sample(tmp_path_factory.mktemp("sample"))


def local_rows(paths: list[Path], **options) -> pd.DataFrame:
    """The local engine's table (``ferlab predict --csv``), with the batch column types."""
    rec = Recognizer(model="default", runtime="onnx", **options)
    return tidy(rec.run([str(p) for p in paths], errors="collect").to_dataframe(every_frame=True))


@pytest.fixture(scope="module")
def inputs(sample: Path) -> list[Path]:
    """The sample's test half (168 FER2013 crops in class folders), a photo with a face the
    detector finds, and a missing file."""
    return [
        sample / "test",
        Path(__file__).parents[2] / "examples" / "astronaut.jpg",
        sample / "no",
    ]


@pytest.fixture(scope="module")
def expected(inputs: list[Path]) -> pd.DataFrame:
    return local_rows(inputs)


def test_rows_are_the_local_engines(inputs: list[Path], expected: pd.DataFrame) -> None:
    df = batch.predict(inputs, engine="ray", workers=2)
    assert len(df) == 168 + 2 and df["error"].notna().sum() == 1
    # Same faces, boxes and labels; probabilities equal up to float rounding (ONNX Runtime
    # runs the same graph per face; batch size could change the last bits on some CPUs).
    pd.testing.assert_frame_equal(df, expected, check_exact=False, rtol=0, atol=1e-6)
    assert (df["label"].fillna("") == expected["label"].fillna("")).all()


def test_a_killed_worker_loses_and_duplicates_nothing(
    inputs: list[Path], expected: pd.DataFrame, tmp_path: Path
) -> None:
    marker, out = tmp_path / "killed", tmp_path / "out"
    labels = Recognizer(model="default", runtime="onnx").labels
    df = batch.predict(
        inputs,
        engine="ray",
        workers=2,
        out=out,
        images_per_chunk=16,
        model=DiesOnce(marker, labels),
    )
    dead = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(dead, 0)  # the worker did die mid-job
    files = pd.concat(pd.read_parquet(f) for f in out.glob("part-*.parquet"))
    assert files["unit"].is_unique  # one row per input: every input exactly once
    assert len(files) == len(df) == 170
    pd.testing.assert_frame_equal(df, expected, check_exact=False, rtol=0, atol=1e-6)


def test_a_video_is_split_into_ranges_across_workers(tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.avi", frames=24)
    whole = local_rows([clip])
    split = batch.predict([clip], engine="ray", workers=2, chunk_frames=12)
    assert split["frame"].tolist() == whole["frame"].tolist()
    first = split["frame"] < 12
    pd.testing.assert_frame_equal(split[first], whole[first], check_exact=False, atol=1e-6)
    assert set(split.loc[~first, "face_id"].dropna()) == {ID_STRIDE}  # frames may lack a face


def test_cli_video_rows_are_the_local_engines(tmp_path: Path, capsys) -> None:
    clip = str(write_clip(tmp_path / "clip.avi", frames=12))
    code, local, _ = run(["video", clip, "--runtime", "onnx", "--json"], capsys)
    assert code == 0 and len(local.splitlines()) == 12
    code, out, _ = run(["video", clip, "--engine", "ray", "--workers", "2", "--json"], capsys)
    assert code == 0 and out == local


def test_cli_json_and_out(sample: Path, tmp_path: Path, capsys) -> None:
    folder = sample / "test" / "happy"
    code, local, _ = run(["predict", str(folder), "--runtime", "onnx", "--json"], capsys)
    assert code == 0
    argv = ["predict", str(folder), "--engine", "ray", "--workers", "2", "--json"]
    code, out, _ = run([*argv, "--out", str(tmp_path / "rows")], capsys)
    assert code == 0 and out == local
    assert len(batch.read(tmp_path / "rows")) == len(out.splitlines())
