"""FER+ relabelling: the vote file and the four label modes of Barsoum et al. (2016).

FER+ (microsoft/FERPlus, ``fer2013new.csv``) asked ten crowd workers to re-tag every FER2013
image with one of eight emotions, ``unknown`` or ``NF`` (not a face). Its columns are
``Usage,Image name,<8 emotions>,unknown,NF``, the emotions spelt neutral, happiness, surprise,
sadness, anger, disgust, fear, contempt (:data:`~ferlab.data.dataset.FERPLUS_VOTE_COLUMNS`);
ferlab calls them by the names its models use (:data:`~ferlab.data.dataset.FERPLUS_CLASSES`:
``happy``, ``sad``, ``angry`` for the three nouns).

Joining: row *i* of the vote file belongs to row *i* of ``fer2013.csv``. The ``Image name``
column is not a row index (it is a running counter over named rows, and 173 rows have no name),
so it is never used. The join checks that both files have the same number of data rows and the
same ``Usage`` on every row.

The label rules follow the reference reader ``FERPlusReader`` in microsoft/FERPlus
``src/ferplus.py`` (``_process_data`` and ``load_folders``), applied to all ten vote columns:

1. Outlier removal: every count of 1 (``<= 1``; a single worker's vote) is set to 0, in every
   column including ``unknown`` and ``NF``. The total below is the sum after this step, unknown
   and NF votes included.
2. Mode rules, as in the reference:

   * ``majority``: keep the row when the largest count is more than half the total; the target
     is that column (the first one on a tie).
   * ``probability`` / ``crossentropy``: take the largest counts one level at a time (all
     columns tied at a level together) until they cover at least 75 % of the total or three
     columns are taken. Reaching ``unknown`` or ``NF`` stops the walk, and that column is left out
     again when emotions were taken before it. The row is dropped when the taken counts are not
     more than half the total, or when ties took more than three columns. The target is the
     taken counts, normalised.
   * ``multi``: take every column with at least 30 % of the total; drop the row when those
     are not more than half the total. The target is the 0/1 mask of the taken emotions. The
     reference training code smooths it to ``(1 - 0.001) * mask + 0.001`` in the loss; that is
     left to the trainer.
3. A row whose target peaks on ``unknown`` or ``NF`` is dropped (this drops every row whose
   largest count is ``unknown`` or ``NF``, e.g. the 173 unnamed rows, which all have NF=10).
   Kept targets are cut to the eight emotions and renormalised.

``probability`` and ``crossentropy`` give the same targets: the reference draws a one-hot label
from the distribution for every mini-batch in probability mode, which is the trainer's job.
The hard label of every kept row, in every mode, is the first emotion with the largest count
after outlier removal (what accuracy is measured against).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferlab.data._problems import Problems
from ferlab.data.dataset import FER2013_CLASSES, FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS
from ferlab.data.fer2013_csv import USAGE_SPLITS, read_source_bytes, usage_split
from ferlab.errors import DataError

__all__ = [
    "FERPLUS_MODES",
    "fer2013_soft_targets",
    "FerplusLabels",
    "FerplusVotes",
    "ferplus_labels",
    "ferplus_target",
    "read_ferplus_votes",
]

#: Label modes of the FER+ paper, as named by the reference code (``multi`` = ``multi_target``).
FERPLUS_MODES: tuple[str, ...] = ("majority", "probability", "crossentropy", "multi")
_HEADER = ("Usage", "Image name", *FERPLUS_VOTE_COLUMNS, "unknown", "NF")
_N_VOTES = len(FERPLUS_CLASSES) + 2
_N_EMOTIONS = len(FERPLUS_CLASSES)

#: Why a row was left out, as counted in :attr:`FerplusLabels.dropped`.
DROP_REASONS: dict[str, str] = {
    "no_votes": "no emotion kept more than one vote",
    "not_face_or_unknown": "largest vote is unknown or NF (not a face)",
    "no_majority": "no emotion has more than half of the votes",
    "ambiguous": "the top emotions cover no more than half of the votes",
}


@dataclass
class FerplusVotes:
    """The vote file, one entry per data row (bad rows hold -1)."""

    votes: np.ndarray  # int64 N×10: the 8 emotions, unknown, NF
    split: np.ndarray  # int8 N, from the Usage column

    @property
    def n_rows(self) -> int:
        return int(self.split.shape[0])


@dataclass
class FerplusLabels:
    """The outcome of one label mode for every vote row."""

    keep: np.ndarray  # bool N
    labels: np.ndarray  # int64 N, FER+ class id (meaningful where keep)
    targets: np.ndarray  # float32 N×8 (zeros where not keep)
    dropped: dict[str, int]  # rows left out, by reason (keys of DROP_REASONS)


def read_ferplus_votes(path: Path, problems: Problems) -> FerplusVotes:
    """Read ``fer2013new.csv``; bad rows are recorded in ``problems`` and hold -1.

    Raises:
        DataError: the file is empty, or its header is not the FER+ header.
    """
    data = read_source_bytes(path).removeprefix(b"\xef\xbb\xbf")
    if not data or data.isspace():
        raise DataError("the file is empty", path=path)
    header, _, body = data.partition(b"\n")
    found = header.decode("utf-8", errors="replace").strip()
    if tuple(c.strip() for c in found.split(",")) != _HEADER:
        raise DataError(
            f"not a FER+ vote file: expected the header {','.join(_HEADER)!r}, "
            f"found {found[:120]!r}",
            path=path,
            row=1,
        )
    body = body.rstrip()  # trailing blank lines are not rows
    if not body:
        raise DataError("the file has a header but no data rows", path=path)
    # Clean files are parsed in bulk; the row-by-row reader runs only to name what is wrong.
    return _bulk_votes(body) or _votes_by_row(body, path, problems)


# A clean row: known Usage, any name without commas or quotes, ten plain integers.
_CLEAN_ROW = re.compile(
    rb"^(Training|PublicTest|PrivateTest),[^,\"\r\n]*,((?:[0-9]{1,18},){9}[0-9]{1,18})\r?$",
    re.MULTILINE,
)


def _bulk_votes(body: bytes) -> FerplusVotes | None:
    """The arrays when every row is clean, else None."""
    rows = _CLEAN_ROW.findall(body)
    if len(rows) != body.count(b"\n") + 1:
        return None
    split = np.array([USAGE_SPLITS[usage.decode()] for usage, _ in rows], dtype=np.int8)
    # Only digits and single commas remain, which numpy's text reader parses exactly.
    counts = b",".join(c for _, c in rows).decode()
    votes = np.fromstring(counts, dtype=np.int64, sep=",").reshape(len(rows), _N_VOTES)
    return FerplusVotes(votes=votes, split=split)


def _votes_by_row(body: bytes, path: Path, problems: Problems) -> FerplusVotes:
    lines = body.decode("utf-8", errors="replace").split("\n")
    votes = np.full((len(lines), _N_VOTES), -1, dtype=np.int64)
    split = np.full(len(lines), -1, dtype=np.int8)
    try:
        rows = list(csv.reader(line.rstrip("\r") for line in lines))
    except csv.Error as exc:
        raise DataError(f"not a readable CSV file ({exc})", path=path) from None
    for i, row in enumerate(rows):
        line = i + 2
        if len(row) != len(_HEADER):
            problems.add(f"expected {len(_HEADER)} fields, found {len(row)}", path=path, row=line)
            continue
        split_id = usage_split(row[0].strip(), line, path, problems)
        if split_id < 0:
            continue
        counts = [_count(c) for c in row[2:]]
        bad = next((j for j, c in enumerate(counts) if c is None), None)
        if bad is not None:
            problems.add(
                f"vote count {row[2 + bad].strip()[:20]!r} is not a non-negative integer",
                path=path,
                row=line,
                field=_HEADER[2 + bad],
            )
            continue
        split[i] = split_id
        votes[i] = counts
    return FerplusVotes(votes=votes, split=split)


def _count(text: str) -> int | None:
    """A vote count as the bulk reader (numpy, i.e. ``int()``) reads it, or None."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if 0 <= value < 2**63 else None


def ferplus_target(votes: Sequence[int], mode: str) -> tuple[float, ...] | str:
    """The FER+ target of one row of ten vote counts, or the reason it is dropped.

    Follows the reference ``_process_data`` step by step (see the module docstring); floats and
    comparisons are the reference's, so borderline rows fall on the same side.

    Returns:
        Eight floats over :data:`FERPLUS_CLASSES` summing to 1 (one-hot for ``majority``; the
        normalised taken counts for ``probability``/``crossentropy`` and ``multi``), or a key of
        :data:`DROP_REASONS`.
    """
    if mode not in FERPLUS_MODES:
        raise ValueError(f"mode must be one of {FERPLUS_MODES}, not {mode!r}")
    raw = [v if v > 1 else 0 for v in votes]  # outlier removal: single votes count as none
    total = sum(raw)
    if total == 0:
        return "no_votes"
    top = max(raw)
    # When unknown or NF strictly out-votes every emotion, each mode of the reference ends with
    # a target peaking there and drops the row; saying so up front names the reason. Otherwise
    # no mode can peak on them, as a tying emotion comes first in column order.
    if raw.index(top) >= _N_EMOTIONS:
        return "not_face_or_unknown"
    taken = [0] * len(raw)
    if mode == "majority":
        if not top > 0.5 * total:
            return "no_majority"
        taken[raw.index(top)] = top
    elif mode == "multi":
        for i, v in enumerate(raw):
            if v >= 0.3 * total:
                taken[i] = v
        if sum(taken) <= 0.5 * total:
            return "ambiguous"
    else:
        part, count, valid = 0, 0, True
        while part < 0.75 * total and count < 3 and valid:
            level = max(raw)
            for i in range(len(raw)):
                if raw[i] == level:
                    taken[i], raw[i] = level, 0
                    part += level
                    count += 1
                    if i >= _N_EMOTIONS:  # unknown or NF tie with the level: stop here
                        valid = False
                        if sum(taken) > level:  # emotions were taken before it
                            taken[i] = 0
                            count -= 1
                        break
        if sum(taken) <= 0.5 * total or count > 3:
            return "ambiguous"
    emotions = taken[:_N_EMOTIONS]
    norm = sum(emotions)
    return tuple(v / norm for v in emotions)


def ferplus_labels(votes: np.ndarray, mode: str) -> FerplusLabels:
    """Apply :func:`ferplus_target` to every row of an N×10 vote array.

    Rows holding -1 (unreadable in the vote file) are neither kept nor counted as dropped.
    Identical vote rows are common (a few thousand distinct among 35,887), so each distinct row is
    evaluated once.
    """
    n = votes.shape[0]
    keep = np.zeros(n, dtype=bool)
    targets = np.zeros((n, _N_EMOTIONS), dtype=np.float32)
    valid = (votes >= 0).all(axis=1)
    rows = np.flatnonzero(valid)
    distinct: dict[tuple[int, ...], int] = {}
    which = np.array(
        [distinct.setdefault(tuple(r), len(distinct)) for r in votes[valid].tolist()],
        dtype=np.int64,
    )
    outcomes = [ferplus_target(r, mode) for r in distinct]  # dicts keep insertion order
    kept = np.array([not isinstance(o, str) for o in outcomes], dtype=bool)
    distinct_targets = np.array(
        [(0.0,) * _N_EMOTIONS if isinstance(o, str) else o for o in outcomes], dtype=np.float32
    ).reshape(-1, _N_EMOTIONS)
    keep[rows] = kept[which]
    targets[rows] = distinct_targets[which]
    dropped: dict[str, int] = {}
    counts = np.bincount(which, minlength=len(outcomes)).tolist()
    for outcome, count in zip(outcomes, counts, strict=True):
        if isinstance(outcome, str):
            dropped[outcome] = dropped.get(outcome, 0) + count
    if mode == "multi":
        targets = (targets > 0).astype(np.float32)
    cleaned = np.where(votes > 1, votes, 0)[:, :_N_EMOTIONS]
    labels = cleaned.argmax(axis=1).astype(np.int64)
    return FerplusLabels(
        keep=keep,
        labels=labels,
        targets=targets,
        dropped={k: dropped[k] for k in DROP_REASONS if k in dropped},
    )


# FER+ emotion columns (FERPLUS_CLASSES order) → FER2013 class ids, by name; contempt has none.
_TO_FER2013 = {
    i: FER2013_CLASSES.index(c) for i, c in enumerate(FERPLUS_CLASSES) if c in FER2013_CLASSES
}


def fer2013_soft_targets(votes: np.ndarray, labels: np.ndarray, weight: float) -> np.ndarray:
    """Soft targets over the 7 FER2013 classes: FER2013's label blended with the FER+ votes.

    The target is ``(1 - weight) · onehot(label) + weight · votes``, where ``votes`` is the
    row's FER+ vote distribution over the seven emotions FER2013 has: every vote counts (no
    outlier removal: a single fear vote on a surprised face is the ambiguity worth keeping), and
    contempt, unknown and not-a-face votes are left out. Rows without any such vote, and rows the
    vote file could not give (-1), keep the one-hot FER2013 label. With ``weight < 0.5`` the
    FER2013 label stays the target's strict mode, so training agrees with what accuracy is
    measured against.

    Args:
        votes: int64 N×10 vote counts (FER+ column order), -1 on unreadable rows.
        labels: int64 N FER2013 class ids.
        weight: share of the target given to the votes, in [0, 1].
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], not {weight!r}")
    n = labels.shape[0]
    onehot = np.zeros((n, len(_TO_FER2013)), dtype=np.float64)
    onehot[np.arange(n), labels] = 1.0
    counts = np.zeros_like(onehot)
    for src, dst in _TO_FER2013.items():
        counts[:, dst] = votes[:, src]
    counts[(votes < 0).any(axis=1)] = 0.0
    total = counts.sum(axis=1, keepdims=True)
    dist = np.where(total > 0, counts / np.maximum(total, 1), onehot)
    return ((1.0 - weight) * onehot + weight * dist).astype(np.float32)
