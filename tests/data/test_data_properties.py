"""Property-based tests: whatever malformed input the readers get, they raise DataError.

Never another exception type, never a hang: random malformed rows in an otherwise valid CSV,
truncations of valid files, and random bytes thrown at every reader.
"""

from __future__ import annotations

import gzip
import tempfile
from pathlib import Path

import pytest
from fer_builders import (
    FERPLUS_HEADER,
    csv_row,
    imagefolder_files,
    pixels_of,
    standard_rows,
    write_tree,
    write_zip,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ferlab.data import check_dataset, load_dataset
from ferlab.errors import DataError

SETTINGS = settings(max_examples=40, deadline=None)
GOOD_PIXELS = [str(v) for v in pixels_of(0).ravel().tolist()]


def load_bytes(content: bytes, name: str, **kw: object):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(content)
        return load_dataset(path, cache_dir=Path(tmp) / "cache", progress=False, **kw)


@st.composite
def bad_pixel_fields(draw: st.DrawFn) -> str:
    """A pixel field that is wrong in one way: count, a non-integer, or a value above 255."""
    pixels = list(GOOD_PIXELS)
    kind = draw(st.sampled_from(["count", "token", "range"]))
    if kind == "count":
        n = draw(st.integers(0, 4000).filter(lambda k: k != 2304))
        pixels = (pixels * 2)[:n]
    elif kind == "token":
        token = draw(st.text(min_size=1, max_size=6).filter(lambda t: not t.strip().isdigit()))
        token = token.replace(",", ";").replace("\n", "x").replace("\r", "x").replace('"', "'")
        if not token.strip(" "):
            token = "x"
        pixels[draw(st.integers(0, 2303))] = token
    else:
        pixels[draw(st.integers(0, 2303))] = str(draw(st.integers(256, 10**12)))
    return " ".join(pixels)


@st.composite
def bad_rows(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["pixels", "emotion", "usage", "fields"]))
    if kind == "pixels":
        return csv_row(0, draw(bad_pixel_fields()), "Training")
    pixels = " ".join(GOOD_PIXELS)
    if kind == "emotion":
        emotion = draw(
            st.one_of(
                st.integers().filter(lambda e: not 0 <= e <= 6).map(str),
                st.text(max_size=5).filter(
                    lambda t: "," not in t and "\n" not in t and "\r" not in t
                ),
            )
        )
        return csv_row(emotion if emotion.strip(' "') not in "0123456" else "x", pixels, "Training")
    if kind == "usage":
        usage = draw(st.text(max_size=12).filter(lambda t: not set(t) & set(',\n\r"')))
        if usage.strip() in ("Training", "PublicTest", "PrivateTest"):
            usage = "Bogus"
        return csv_row(1, pixels, usage)
    return ",".join(["1", pixels, "Training"] + ["x"] * draw(st.integers(1, 3)))


@SETTINGS
@given(row=bad_rows(), at=st.integers(0, 3), gz=st.booleans())
def test_any_malformed_row_is_a_data_error_at_its_line(row: str, at: int, gz: bool) -> None:
    rows = standard_rows(3)
    rows.insert(at, row)
    content = ("\n".join(["emotion,pixels,Usage", *rows]) + "\n").encode()
    with pytest.raises(DataError) as info:
        load_bytes(gzip.compress(content) if gz else content, "f.csv")
    assert info.value.row == at + 2
    data = load_bytes(content, "f.csv", skip_bad=True)
    assert len(data) == 3 and len(data.skipped) >= 1


def _valid_csv() -> bytes:
    return ("\n".join(["emotion,pixels,Usage", *standard_rows(3)]) + "\n").encode()


@SETTINGS
@given(cut=st.integers(0, len(_valid_csv()) - 1))
def test_truncated_csv_is_a_data_error_or_fewer_rows(cut: int) -> None:
    try:
        data = load_bytes(_valid_csv()[:cut], "f.csv")
    except DataError:
        return
    # only dropping the final newline leaves a whole file; any other cut loses or breaks a row
    assert len(data) < 3 or cut == len(_valid_csv()) - 1


@SETTINGS
@given(cut=st.integers(0, len(gzip.compress(_valid_csv())) - 1))
def test_truncated_gzip_is_a_data_error(cut: int) -> None:
    with pytest.raises(DataError):
        load_bytes(gzip.compress(_valid_csv())[:cut], "f.csv.gz")


@SETTINGS
@given(content=st.binary(max_size=3000), name=st.sampled_from(["f.csv", "f.csv.gz", "f.zip"]))
def test_random_bytes_are_a_data_error(content: bytes, name: str) -> None:
    with pytest.raises(DataError):
        load_bytes(content, name)


@SETTINGS
@given(content=st.binary(max_size=2000))
def test_random_bytes_after_a_valid_header(content: bytes) -> None:
    with pytest.raises(DataError):
        load_bytes(b"emotion,pixels,Usage\n" + content, "f.csv")


@SETTINGS
@given(content=st.binary(max_size=2000), with_header=st.booleans())
def test_random_ferplus_files_are_a_data_error(content: bytes, with_header: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "fer2013.csv"
        csv.write_text("\n".join(["emotion,pixels,Usage", *standard_rows(3)]) + "\n")
        votes = Path(tmp) / "votes.csv"
        votes.write_bytes((FERPLUS_HEADER.encode() + b"\n" if with_header else b"") + content)
        with pytest.raises(DataError):
            load_dataset(
                csv, ferplus=votes, labels="ferplus-majority", cache_dir=Path(tmp), progress=False
            )


@SETTINGS
@given(content=st.binary(max_size=500), zipped=st.booleans())
def test_random_image_bytes_are_a_data_error(content: bytes, zipped: bool) -> None:
    files = imagefolder_files(("a", "b"), n_train=1)
    files["train/a/img000.png"] = content
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = write_zip(root / "d.zip", files) if zipped else write_tree(root / "d", files)
        with pytest.raises(DataError, match="img000.png"):
            load_dataset(path, cache_dir=root / "cache", progress=False)
        report = check_dataset(path, progress=False)
        assert len(report.problems) == 1 and report.fatal is None


@SETTINGS
@given(cut=st.integers(0, 3000))
def test_truncated_zip_is_a_data_error(cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        good = write_zip(Path(tmp) / "ok.zip", imagefolder_files(("a", "b"), n_train=1))
        raw = good.read_bytes()
        bad = Path(tmp) / "bad.zip"
        bad.write_bytes(raw[: min(cut, len(raw) - 1)])
        with pytest.raises(DataError):
            load_dataset(bad, cache_dir=Path(tmp) / "cache", progress=False)


@SETTINGS
@given(at=st.integers(0, 10**6), value=st.integers(0, 255))
def test_flipped_byte_in_a_deflated_zip_never_escapes_as_another_error(at: int, value: int) -> None:
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.zip"
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name, data in imagefolder_files(("a", "b"), n_train=1).items():
                zf.writestr(name, data)
        raw = bytearray(path.read_bytes())
        raw[at % len(raw)] = value
        path.write_bytes(bytes(raw))
        try:
            data = load_dataset(path, cache_dir=Path(tmp) / "cache", progress=False)
        except DataError:
            return
        assert len(data) == 10  # the byte was outside anything that matters
