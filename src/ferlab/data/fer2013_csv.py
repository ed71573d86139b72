"""Reader of the FER2013 challenge CSV and its ``icml_face_data.csv`` variant.

The challenge file (Kaggle, ICML 2013 representation-learning challenge) has the header
``emotion,pixels,Usage``: an emotion id 0-6 (:data:`~ferlab.data.dataset.FER2013_CLASSES`
order), 2304 space-separated grey levels (48×48, row-major) and the split name
``Training`` / ``PublicTest`` / ``PrivateTest``. The ``icml_face_data.csv`` release holds the same
rows as ``emotion, Usage, pixels`` (other column order, a space after each comma). Any order of
those three columns is read; spaces and double quotes around a field are ignored. Files may be
gzip-compressed (detected from the content, not the name) and are read without unpacking to disk.

Speed: the full file is 301 MB with 82.7 M numbers. A Python loop over the numbers takes minutes,
so only the 35,887 line structures (commas, emotion, Usage) are handled in Python; the pixel
columns are parsed in bulk with numpy over blocks of lines: digit runs are found from byte
classes, their values assembled from the last three digits, and counts and ranges checked for
every row at once. This also validates every byte, which ``np.fromstring``-style parsing would
not (it stops silently at the first bad character).

Row numbers in messages are 1-based line numbers of the file (the header is line 1). The row
position used to join FER+ (:mod:`ferlab.data.ferplus`) is the 0-based data row, i.e. line - 2.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ferlab.data._problems import Problems
from ferlab.data._progress import progress_bar
from ferlab.data.dataset import FER2013_CLASSES
from ferlab.errors import DataError

__all__ = ["USAGE_SPLITS", "CsvRows", "parse_fer2013_csv", "read_fer2013_csv", "read_source_bytes"]

#: Usage column value -> split id (0 train, 1 val, 2 test).
USAGE_SPLITS: dict[str, int] = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}

_SIDE = 48
_PIXELS = _SIDE * _SIDE
_COLUMNS = ("emotion", "pixels", "usage")
_ICML_ORDER = ["emotion", "usage", "pixels"]
_EXPECTED_HEADER = "'emotion,pixels,Usage' (or 'emotion, Usage, pixels')"
# Lines per numpy block: ~9 MB of text, which keeps the temporaries near 150 MB.
_BLOCK = 1024
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class CsvRows:
    """The good rows of a challenge CSV, as numpy arrays."""

    images: np.ndarray  # uint8 N×48×48
    labels: np.ndarray  # int64 N, FER2013 emotion ids
    split: np.ndarray  # int8 N
    index: np.ndarray  # int64 N, 0-based data row position in the file
    n_rows: int  # data rows in the file, bad ones included (the FER+ join checks it)
    format: str
    skipped: list[str] = field(default_factory=list)
    classes: tuple[str, ...] = FER2013_CLASSES
    resized: int = 0  # the CSV holds 48×48 images only; kept for symmetry with image folders


def read_source_bytes(path: Path, *, progress: bool = False) -> bytes:
    """The whole content of ``path``, decompressed when it is gzip data.

    Raises:
        DataError: the file cannot be read, or its gzip stream is truncated or corrupt.
    """
    try:
        with open(path, "rb") as raw:
            if raw.read(2) != _GZIP_MAGIC:
                raw.seek(0)
                return raw.read()
            raw.seek(0)
            size = os.fstat(raw.fileno()).st_size
            chunks = []
            with (
                gzip.GzipFile(fileobj=raw, mode="rb") as gz,
                progress_bar(f"Reading {path.name}", size, progress) as update,
            ):
                while chunk := gz.read(1 << 24):
                    chunks.append(chunk)
                    update(raw.tell())
            return b"".join(chunks)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"truncated or corrupt gzip data ({exc})", path=path) from None
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=path) from None


def read_fer2013_csv(
    path: Path, problems: Problems, *, skip_bad: bool = False, progress: bool = False
) -> CsvRows:
    """Read a challenge CSV (plain or gzip) from ``path``; see :func:`parse_fer2013_csv`."""
    return parse_fer2013_csv(
        read_source_bytes(path, progress=progress),
        path,
        problems,
        skip_bad=skip_bad,
        progress=progress,
    )


def parse_fer2013_csv(
    data: bytes,
    path: Path,
    problems: Problems,
    *,
    skip_bad: bool = False,
    progress: bool = False,
) -> CsvRows:
    """Parse the bytes of a challenge CSV.

    Every bad row (wrong field count, emotion not an integer 0-6, unknown Usage, a pixel that is
    not an integer, outside 0-255, or not exactly 2304 of them, an empty line between rows) is
    recorded in ``problems`` with its line number, and only good rows are returned. With
    ``skip_bad`` the problems are also listed in :attr:`CsvRows.skipped`; otherwise the caller
    decides whether to raise (``Problems.raise_first``).

    Raises:
        DataError: for problems that leave nothing to read: an empty file, a missing or garbled
            header, a file with a header but no rows.
    """
    if not data or data.isspace():  # isspace stops at the first other byte; strip would copy
        raise DataError("the file is empty", path=path)
    buf = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_bounds(buf)
    columns, fmt = _parse_header(data[starts[0] : ends[0]], path)
    n_rows = len(starts) - 1
    if n_rows == 0:
        raise DataError("the file has a header but no data rows", path=path)
    # Field and pixel problems are found in two passes; they are reported in line order.
    found = Problems()

    labels = np.full(n_rows, -1, dtype=np.int64)
    split = np.full(n_rows, -1, dtype=np.int8)
    pixel_rows, pixel_lo, pixel_hi = [], [], []
    for row in range(n_rows):
        bounds = _row_fields(data, int(starts[row + 1]), int(ends[row + 1]), row, path, found)
        if bounds is None:
            continue
        line = row + 2
        lo, hi = bounds[columns["emotion"]]
        labels[row] = _emotion(data[lo:hi], line, path, found)
        lo, hi = bounds[columns["usage"]]
        split[row] = usage_split(_clean(data[lo:hi]), line, path, found)
        lo, hi = bounds[columns["pixels"]]
        # A quoted pixel field: the quotes are not part of the numbers.
        if hi > lo and data[lo] == 0x22:
            lo += 1
        if hi > lo and data[hi - 1] == 0x22:
            hi -= 1
        pixel_rows.append(row)
        pixel_lo.append(lo)
        pixel_hi.append(hi)

    images = np.zeros((n_rows, _PIXELS), dtype=np.uint8)
    pixels_ok = np.zeros(n_rows, dtype=bool)
    rows = np.asarray(pixel_rows, dtype=np.int64)
    lo_all = np.asarray(pixel_lo, dtype=np.int64)
    hi_all = np.asarray(pixel_hi, dtype=np.int64)
    with progress_bar(f"Parsing {path.name}", len(rows), progress) as update:
        for b in range(0, len(rows), _BLOCK):
            block = slice(b, b + _BLOCK)
            values, good, bad = _parse_pixel_block(buf, lo_all[block], hi_all[block])
            block_rows = rows[block]
            images[block_rows[good]] = values
            pixels_ok[block_rows[good]] = True
            for local, problem in bad:
                found.add(problem, path=path, row=int(block_rows[local]) + 2, field="pixels")
            update(min(b + _BLOCK, len(rows)))

    problems.items.extend(sorted(found.items, key=lambda e: e.row or 0))

    keep = pixels_ok & (labels >= 0) & (split >= 0)
    index = np.flatnonzero(keep)
    return CsvRows(
        images=images[index].reshape(-1, _SIDE, _SIDE),
        labels=labels[index],
        split=split[index],
        index=index.astype(np.int64),
        n_rows=n_rows,
        format=fmt,
        skipped=[str(p) for p in problems.items] if skip_bad else [],
    )


def _line_bounds(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive, without CR) of every line up to the last non-blank one."""
    newlines = np.flatnonzero(buf == 0x0A)
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    ends = np.concatenate((newlines, [len(buf)])).astype(np.int64)
    has_cr = ends > starts
    has_cr[has_cr] = buf[ends[has_cr] - 1] == 0x0D
    ends -= has_cr
    # Trailing newlines (and blank lines after the last row) are not rows.
    last = int(np.flatnonzero(ends > starts)[-1])
    return starts[: last + 1], ends[: last + 1]


def _parse_header(line: bytes, path: Path) -> tuple[dict[str, int], str]:
    """Column positions from the header line, and the format name."""
    line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark some editors add
    shown = line[:80].decode("utf-8", errors="replace")
    try:
        names = [c.strip().strip('"').strip().lower() for c in line.decode("ascii").split(",")]
    except UnicodeDecodeError:
        names = []
    if names[:2] == ["usage", "image name"]:
        raise DataError(
            "this is a FER+ vote file (fer2013new.csv), which holds no pixels: give the FER2013 "
            "CSV as the dataset and this file as --ferplus, with --labels ferplus-majority "
            "(or another ferplus-* mode)",
            path=path,
        )
    if sorted(names) != sorted(_COLUMNS):
        raise DataError(
            f"missing or unrecognised header: expected {_EXPECTED_HEADER}, found {shown!r}",
            path=path,
            row=1,
        )
    fmt = "icml-face-csv" if names == _ICML_ORDER else "fer2013-csv"
    return {name: names.index(name) for name in _COLUMNS}, fmt


def _row_fields(
    data: bytes, start: int, end: int, row: int, path: Path, problems: Problems
) -> tuple[tuple[int, int], ...] | None:
    """Byte ranges of the three fields of one line, or None (recorded) when malformed."""
    line = row + 2
    if start == end:
        problems.add("empty line between data rows", path=path, row=line)
        return None
    commas = data.count(b",", start, end)
    if commas != 2:
        problems.add(f"expected 3 comma-separated fields, found {commas + 1}", path=path, row=line)
        return None
    c1 = data.find(b",", start, end)
    c2 = data.find(b",", c1 + 1, end)
    return (start, c1), (c1 + 1, c2), (c2 + 1, end)


def _clean(raw: bytes) -> str:
    return raw.strip().strip(b'"').strip().decode("utf-8", errors="replace")


def _emotion(raw: bytes, line: int, path: Path, problems: Problems) -> int:
    text = _clean(raw)
    if not re.fullmatch(r"-?[0-9]+", text):
        problems.add(
            f"emotion {text[:20]!r} is not an integer", path=path, row=line, field="emotion"
        )
        return -1
    # Length first: int() refuses numbers longer than 4300 digits.
    if len(text) > 3 or not 0 <= int(text) < len(FER2013_CLASSES):
        problems.add(
            f"unknown emotion id {text[:20]} (expected 0-{len(FER2013_CLASSES) - 1})",
            path=path,
            row=line,
            field="emotion",
        )
        return -1
    return int(text)


def usage_split(text: str, line: int, path: Path, problems: Problems) -> int:
    """The split id of a ``Usage`` value, or -1 (recorded in ``problems``) when unknown.

    Shared by the FER2013 and FER+ readers, which carry the same column, so both report a bad
    value in the same words.
    """
    if text not in USAGE_SPLITS:
        problems.add(
            f"unknown Usage {text[:20]!r} (expected Training, PublicTest or PrivateTest)",
            path=path,
            row=line,
            field="Usage",
        )
        return -1
    return USAGE_SPLITS[text]


def _parse_pixel_block(
    buf: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, str]]]:
    """Parse the pixel fields ``buf[lo[i]:hi[i]]`` of a block of rows at once.

    Returns the values of the good rows (k×2304 uint8), the good-row mask and, for each bad row,
    its position in the block and the problem.
    """
    n = len(lo)
    if n == 0:
        return np.zeros((0, _PIXELS), np.uint8), np.zeros(0, bool), []
    base = int(lo[0])
    work = buf[base : int(hi[-1])].copy()
    rel_lo, rel_hi = lo - base, hi - base
    # Blank out the bytes between pixel fields (", Training\n3,"): a Python loop over the
    # short gaps is far cheaper than building an inside-field mask over every byte.
    for gap_lo, gap_hi in zip(rel_hi[:-1].tolist(), rel_lo[1:].tolist(), strict=True):
        work[gap_lo:gap_hi] = 0x20
    digit = work - np.uint8(0x30)  # wraps around for bytes below '0'
    is_digit = digit < 10
    stray = ~is_digit
    stray &= work != 0x20

    # Runs of digits are the numbers: run edges alternate start, stop, start, stop, ...
    edges = np.flatnonzero(np.diff(is_digit.view(np.int8), prepend=np.int8(0), append=np.int8(0)))
    first, stop = edges[0::2], edges[1::2]
    length = stop - first
    d1 = digit[stop - 1].astype(np.int16)
    d2 = np.where(length >= 2, digit[stop - 2], 0).astype(np.int16)
    d3 = np.where(length >= 3, digit[stop - 3], 0).astype(np.int16)
    values = d1 + 10 * d2 + 100 * d3
    out_of_range = (values > 255) | (length > 3)

    row_first = np.searchsorted(first, rel_lo)
    counts = np.diff(row_first, append=len(first))
    bad: dict[int, str] = {}
    # Only the first offending byte / number of each row is reported, so the Python loops
    # below run once per bad row, never once per bad byte.
    stray_pos = np.flatnonzero(stray)
    stray_rows, at = np.unique(
        np.searchsorted(rel_lo, stray_pos, side="right") - 1, return_index=True
    )
    for row, pos in zip(stray_rows.tolist(), stray_pos[at].tolist(), strict=True):
        token = _token(work, pos, int(rel_lo[row]), int(rel_hi[row]))
        bad[row] = f"pixel value {token!r} is not an integer"
    big = np.flatnonzero(out_of_range)
    big_rows, at = np.unique(
        np.searchsorted(rel_lo, first[big], side="right") - 1, return_index=True
    )
    for row, num in zip(big_rows.tolist(), big[at].tolist(), strict=True):
        if row not in bad:
            token = bytes(work[first[num] : stop[num]][:20]).decode()
            bad[row] = f"pixel value {token} is outside 0-255"
    for row in np.flatnonzero(counts != _PIXELS):
        if int(row) not in bad:
            bad[int(row)] = f"expected {_PIXELS} pixel values, found {int(counts[row])}"

    good = np.ones(n, dtype=bool)
    good[list(bad)] = False
    take = np.repeat(good, counts)
    good_values = values[take].astype(np.uint8).reshape(-1, _PIXELS)
    return good_values, good, sorted(bad.items())


def _token(seg: np.ndarray, pos: int, lo: int, hi: int) -> str:
    """The space-delimited word around byte ``pos``, for error messages."""
    a = pos
    while a > lo and seg[a - 1] != 0x20 and pos - a < 20:
        a -= 1
    b = pos
    while b < hi and seg[b] != 0x20 and b - a < 20:
        b += 1
    return bytes(seg[a:b]).decode("utf-8", errors="replace")
