"""The challenge-CSV reader: layouts, exact values, and every kind of malformed input."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from fer_builders import USAGES, csv_row, pixels_of, standard_rows, write_csv

from ferlab.data import FER2013_CLASSES, check_dataset, load_dataset
from ferlab.errors import DataError


def load(path: Path, **kw: object):
    return load_dataset(path, cache_dir=path.parent / "cache", progress=False, **kw)


def test_reads_values_labels_and_splits(small_csv: Path) -> None:
    data = load(small_csv)
    assert data.format == "fer2013-csv"
    assert data.classes == FER2013_CLASSES
    assert data.images.dtype == torch.uint8 and data.images.shape == (9, 48, 48)
    for i in range(9):
        assert np.array_equal(data.images[i].numpy(), pixels_of(i))
    assert data.labels.tolist() == [i % 7 for i in range(9)]
    assert data.labels.dtype == torch.int64 and data.split.dtype == torch.int8
    assert data.split.tolist() == [i % 3 for i in range(9)]
    assert data.index.tolist() == list(range(9))
    assert data.targets is None and data.label_mode == "fer2013"
    assert data.source == str(small_csv.resolve())


def test_icml_variant_gives_the_same_arrays(tmp_path: Path, small_csv: Path) -> None:
    icml = write_csv(
        tmp_path / "icml_face_data.csv", standard_rows(icml=True), header="emotion, Usage, pixels"
    )
    a, b = load(small_csv), load(icml)
    assert b.format == "icml-face-csv"
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.split, b.split)


def test_gzip_is_read_directly(tmp_path: Path, small_csv: Path) -> None:
    gz = write_csv(tmp_path / "fer2013.csv.gz", standard_rows(), gz=True)
    a, b = load(small_csv), load(gz)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not (tmp_path / "fer2013.csv.gz.csv").exists()


def test_crlf_bom_and_quoted_fields(tmp_path: Path, small_csv: Path) -> None:
    rows = [
        csv_row(f'"{i % 7}"', f'"{" ".join(map(str, pixels_of(i).ravel()))}"', f'"{USAGES[i % 3]}"')
        for i in range(9)
    ]
    path = tmp_path / "quoted.csv"
    write_csv(path, rows, header='\ufeff"emotion","pixels","Usage"', newline="\r\n")
    assert torch.equal(load(path).images, load(small_csv).images)


def test_blank_lines_at_the_end_are_not_rows(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "f.csv", [*standard_rows(3), "", ""])
    assert len(load(path)) == 3


BAD_PIXELS = " ".join(["7"] * 2303)
CASES = {
    "too few pixels": (csv_row(0, BAD_PIXELS, "Training"), "pixels", "found 2303"),
    "too many pixels": (csv_row(0, BAD_PIXELS + " 1 2", "Training"), "pixels", "found 2305"),
    "non-integer": (csv_row(0, BAD_PIXELS + " 1.5", "Training"), "pixels", "'1.5' is not an int"),
    "letters": (csv_row(0, "abc " + BAD_PIXELS, "Training"), "pixels", "'abc' is not an integer"),
    "above 255": (csv_row(0, BAD_PIXELS + " 256", "Training"), "pixels", "256 is outside 0-255"),
    "negative": (csv_row(0, BAD_PIXELS + " -3", "Training"), "pixels", "'-3' is not an integer"),
    "unknown emotion": (csv_row(7, BAD_PIXELS + " 0", "Training"), "emotion", "emotion id 7"),
    "emotion text": (csv_row("x", BAD_PIXELS + " 0", "Training"), "emotion", "not an integer"),
    "huge emotion": (csv_row("9" * 5000, BAD_PIXELS + " 0", "Training"), "emotion", "id 999"),
    "unknown usage": (csv_row(1, BAD_PIXELS + " 0", "Train"), "Usage", "unknown Usage 'Train'"),
    "extra field": (csv_row(1, BAD_PIXELS + " 0", "Training") + ",x", None, "found 4"),
    "missing field": (f"1,{BAD_PIXELS} 0", None, "found 2"),
    "empty line": ("", None, "empty line"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_row_names_file_line_and_field(tmp_path: Path, case: str) -> None:
    bad, field, words = CASES[case]
    path = write_csv(tmp_path / "bad.csv", [*standard_rows(2), bad, *standard_rows(2)])
    with pytest.raises(DataError) as info:
        load(path)
    err = info.value
    assert err.row == 4, "header is line 1, so the third data row is line 4"
    assert err.field == field
    assert words in err.problem
    assert str(path.resolve()) in str(err) and "line 4" in str(err)


def test_all_problems_are_reported_and_skip_bad_drops_them(tmp_path: Path) -> None:
    rows = standard_rows(6)
    rows[1] = csv_row(9, pixels_of(1), "Training")
    rows[3] = csv_row(1, BAD_PIXELS, "Training")
    rows[4] = csv_row(1, pixels_of(4), "Nope")
    path = write_csv(tmp_path / "bad.csv", rows)

    with pytest.raises(DataError, match=r"line 3.*\(2 more problems"):
        load(path)
    report = check_dataset(path, progress=False)
    assert [p.row for p in report.problems] == [3, 5, 6]
    assert report.fatal is None and len(report.data) == 3

    data = load(path, skip_bad=True)
    assert data.index.tolist() == [0, 2, 5], "index keeps the row positions of the good rows"
    assert len(data.skipped) == 3 and "line 5" in data.skipped[1]
    assert np.array_equal(data.images[2].numpy(), pixels_of(5))


@pytest.mark.parametrize(
    ("content", "row", "words"),
    [
        (b"", None, "empty"),
        (b"\n\n  \n", None, "empty"),
        (b"emotion,pixels,Usage\n", None, "no data rows"),
        (b"emotion,pixels,Usage\n\n\n", None, "no data rows"),
        (b"0,1 2 3,Training\n", 1, "missing or unrecognised header"),
        (b"emotion;pixels;Usage\n0;1;Training\n", 1, "missing or unrecognised header"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", 1, "missing or unrecognised header"),
        (b"emotion,pixels,Usage,extra\n", 1, "missing or unrecognised header"),
    ],
)
def test_whole_file_problems(tmp_path: Path, content: bytes, row: int | None, words: str) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=words) as info:
        load(path)
    assert info.value.row == row and info.value.path == str(path.resolve())


def test_truncated_gzip(tmp_path: Path) -> None:
    whole = gzip.compress("\n".join(["emotion,pixels,Usage", *standard_rows(20)]).encode())
    path = tmp_path / "fer2013.csv.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="truncated or corrupt gzip"):
        load(path)


def test_source_is_never_modified(tmp_path: Path, small_csv: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    load(small_csv)
    after = {p: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.name != "cache"}
    assert after == before


def test_ferplus_vote_file_given_as_the_dataset_says_what_to_do(tmp_path: Path) -> None:
    votes = tmp_path / "fer2013new.csv"
    votes.write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
        "unknown,NF\nTraining,fer0000000.png,4,0,0,1,3,2,0,0,0,0\n"
    )
    with pytest.raises(DataError, match="--ferplus"):
        load_dataset(votes, progress=False)
