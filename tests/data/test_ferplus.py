"""FER+ label modes on hand-computed rows, and the row-position join with the challenge CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from fer_builders import FERPLUS_HEADER, USAGES, csv_row, pixels_of, standard_rows, write_csv

from ferlab.data import (
    FER2013_CLASSES,
    FERPLUS_CLASSES,
    ferplus_labels,
    ferplus_target,
    load_dataset,
)
from ferlab.errors import DataError, FerlabError

# Vote columns: neutral happiness surprise sadness anger disgust fear contempt unknown NF.
# Each case: votes -> expected outcome per mode, worked out by hand from the reference rules
# (counts of 1 zeroed first; totals include unknown and NF).
ROW_A = [4, 0, 0, 1, 3, 2, 0, 0, 0, 0]  # -> [4,0,0,0,3,2,0,0,0,0], total 9
ROW_B = [6, 0, 1, 1, 0, 0, 0, 0, 2, 0]  # -> [6,0,0,0,0,0,0,0,2,0], total 8
ROW_TIE = [4, 4, 0, 0, 0, 0, 0, 0, 2, 0]  # total 10, two emotions tie
ROW_UNKNOWN_LATE = [5, 0, 0, 0, 0, 0, 0, 0, 3, 2]  # total 10, unknown is the 2nd level
ROW_FOUR_WAY = [3, 3, 3, 3, 0, 0, 0, 0, 0, 0]  # total 12, four-way tie
ROW_NF = [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]
ROW_UNKNOWN = [2, 0, 0, 0, 0, 0, 0, 0, 8, 0]
ROW_SINGLES = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]

EXPECTED = {
    # 4 of 9 is not more than half -> no majority; walk: 4 (4 < 6.75), then 3 (7 >= 6.75);
    # 30 % of 9 = 2.7 keeps neutral (4) and anger (3), not disgust (2).
    "A": (ROW_A, "no_majority", (4 / 7, 0, 0, 0, 3 / 7, 0, 0, 0), (1, 0, 0, 0, 1, 0, 0, 0)),
    # 6 of 8 is a majority; the walk stops after 6 (6 >= 0.75 * 8); unknown's 2 < 2.4.
    "B": (ROW_B, (1, 0, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0, 0, 0)),
    "tie": (ROW_TIE, "no_majority", (0.5, 0.5, 0, 0, 0, 0, 0, 0), (1, 1, 0, 0, 0, 0, 0, 0)),
    # walk: neutral 5 (5 < 7.5), then unknown 3 stops it and is removed again: 5 <= 5 -> drop;
    # multi keeps neutral (5) and unknown (3 >= 3): 8 > 5 -> kept, mask on neutral only.
    "late": (ROW_UNKNOWN_LATE, "no_majority", "ambiguous", (1, 0, 0, 0, 0, 0, 0, 0)),
    # the walk takes all four tied columns (count 4 > 3); nothing reaches 30 % of 12 = 3.6.
    "four": (ROW_FOUR_WAY, "no_majority", "ambiguous", "ambiguous"),
    "nf": (ROW_NF, "not_face_or_unknown", "not_face_or_unknown", "not_face_or_unknown"),
    "unknown": (ROW_UNKNOWN, "not_face_or_unknown", "not_face_or_unknown", "not_face_or_unknown"),
    "singles": (ROW_SINGLES, "no_votes", "no_votes", "no_votes"),
}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_hand_computed_targets(case: str) -> None:
    votes, majority, probability, multi = EXPECTED[case]
    for mode, want in (
        ("majority", majority),
        ("probability", probability),
        ("crossentropy", probability),
        ("multi", multi),
    ):
        got = ferplus_target(votes, mode)
        if isinstance(want, str):
            assert got == want, mode
        elif mode == "multi":
            assert tuple(float(v > 0) for v in got) == want, mode
        else:
            assert got == pytest.approx(want), mode


def test_labels_over_an_array() -> None:
    votes = np.array([EXPECTED[c][0] for c in sorted(EXPECTED)] + [[-1] * 10], dtype=np.int64)
    result = ferplus_labels(votes, "multi")
    order = sorted(EXPECTED)
    assert result.keep.tolist() == [not isinstance(EXPECTED[c][3], str) for c in order] + [False]
    assert result.dropped == {"no_votes": 1, "not_face_or_unknown": 2, "ambiguous": 1}
    kept = result.keep
    # the hard label is the top emotion; the multi mask holds it
    assert result.targets[kept, result.labels[kept]].tolist() == [1.0] * int(kept.sum())
    assert result.labels[order.index("tie")] == 0, "ties go to the first emotion"
    assert result.targets.dtype == np.float32 and result.targets.shape == (len(votes), 8)


def write_votes(path: Path, rows: list[tuple[str, list[int]]], name: str = "fer{:07d}.png") -> Path:
    lines = [FERPLUS_HEADER]
    lines += [f"{u},{name.format(i)},{','.join(map(str, v))}" for i, (u, v) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """A 9-row challenge CSV and its FER+ votes (usage cycling like the CSV)."""
    votes = [
        ROW_A,
        ROW_B,
        ROW_TIE,
        ROW_UNKNOWN_LATE,
        ROW_FOUR_WAY,
        ROW_NF,
        ROW_UNKNOWN,
        ROW_B,
        ROW_A,
    ]
    csv = write_csv(tmp_path / "fer2013.csv", standard_rows(9))
    fp = write_votes(tmp_path / "fer2013new.csv", [(USAGES[i % 3], v) for i, v in enumerate(votes)])
    return csv, fp


def load(csv: Path, fp: Path | None, labels: str, **kw: object):
    return load_dataset(
        csv, ferplus=fp, labels=labels, cache_dir=csv.parent / "cache", progress=False, **kw
    )


def test_join_by_row_position(pair: tuple[Path, Path]) -> None:
    csv, fp = pair
    major = load(csv, fp, "ferplus-majority")
    assert major.classes == FERPLUS_CLASSES and major.label_mode == "ferplus-majority"
    assert major.index.tolist() == [1, 7] and major.labels.tolist() == [0, 0]
    assert major.targets is None
    assert np.array_equal(major.images[1].numpy(), pixels_of(7))
    assert major.split.tolist() == [1, 1]
    assert major.dropped == {"not_face_or_unknown": 2, "no_majority": 5}

    prob = load(csv, fp, "ferplus-probability")
    assert prob.index.tolist() == [0, 1, 2, 7, 8]
    assert torch.allclose(prob.targets.sum(1), torch.ones(5))
    assert prob.targets[2].tolist() == [0.5, 0.5, 0, 0, 0, 0, 0, 0]
    ce = load(csv, fp, "ferplus-crossentropy")
    assert torch.equal(ce.targets, prob.targets) and ce.label_mode == "ferplus-crossentropy"

    multi = load(csv, fp, "ferplus-multi")
    assert multi.index.tolist() == [0, 1, 2, 3, 7, 8]
    assert multi.targets[0].tolist() == [1, 0, 0, 0, 1, 0, 0, 0]


def test_image_names_are_ignored(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    csv, fp = pair
    scrambled = fp.read_text().replace("fer0000001.png", "").replace("fer0000002", "fer0000099")
    other = tmp_path / "renamed.csv"
    other.write_text(scrambled)
    assert torch.equal(
        load(csv, fp, "ferplus-majority").labels, load(csv, other, "ferplus-majority").labels
    )


def test_skipped_csv_rows_keep_the_alignment(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    csv, fp = pair
    rows = csv.read_text().splitlines()
    rows[1] = csv_row(0, "1 2 3", "Training")  # data row 0 is bad
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(rows) + "\n")
    data = load(bad, fp, "ferplus-probability", skip_bad=True)
    assert data.index.tolist() == [1, 2, 7, 8]
    assert np.array_equal(data.images[0].numpy(), pixels_of(1))
    assert len(data.skipped) == 1 and "line 2" in data.skipped[0]


def test_row_count_mismatch(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    csv, _ = pair
    fp = write_votes(tmp_path / "short.csv", [(USAGES[i % 3], ROW_B) for i in range(8)])
    with pytest.raises(DataError, match="has 8 data rows but .* has 9"):
        load(csv, fp, "ferplus-majority")


def test_usage_mismatch(tmp_path: Path, pair: tuple[Path, Path]) -> None:
    csv, _ = pair
    fp = write_votes(tmp_path / "shifted.csv", [(USAGES[(i + 1) % 3], ROW_B) for i in range(9)])
    with pytest.raises(DataError, match="Usage differs .* on 9 rows") as info:
        load(csv, fp, "ferplus-majority")
    assert info.value.row == 2 and info.value.field == "Usage"


@pytest.mark.parametrize(
    ("line", "words", "field"),
    [
        ("Training,x.png,1,2,3", "expected 12 fields, found 5", None),
        ("Train,x.png,1,0,0,0,0,0,0,0,0,0", "unknown Usage 'Train'", "Usage"),
        ("Training,x.png,1,0,0,0,0,0,0,0,0,z", "'z' is not a non-negative integer", "NF"),
        ("Training,x.png,1,-2,0,0,0,0,0,0,0,0", "'-2' is not", "happiness"),
        ("Training,x.png,1,0,0,0,0,2.5,0,0,0,0", "'2.5' is not", "disgust"),
    ],
)
def test_bad_vote_rows(tmp_path: Path, line: str, words: str, field: str | None) -> None:
    csv = write_csv(tmp_path / "fer2013.csv", standard_rows(3))
    fp = tmp_path / "votes.csv"
    fp.write_text(
        f"{FERPLUS_HEADER}\nTraining,a.png,{','.join(map(str, ROW_B))}\n{line}\n"
        f"PrivateTest,c.png,{','.join(map(str, ROW_B))}\n"
    )
    with pytest.raises(DataError, match=words) as info:
        load(csv, fp, "ferplus-majority")
    assert info.value.row == 3 and info.value.field == field
    data = load(csv, fp, "ferplus-majority", skip_bad=True)
    assert data.index.tolist() == [0, 2] and len(data.skipped) == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("", "empty"),
        ("Usage,Image name,neutral\nTraining,a,1\n", "not a FER\\+ vote file"),
        (FERPLUS_HEADER + "\n", "no data rows"),
    ],
)
def test_bad_vote_files(tmp_path: Path, small_csv: Path, content: str, words: str) -> None:
    fp = tmp_path / "votes.csv"
    fp.write_text(content)
    with pytest.raises(DataError, match=words):
        load(small_csv, fp, "ferplus-majority")


def test_inconsistent_options(tmp_path: Path, small_csv: Path, pair: tuple[Path, Path]) -> None:
    _, fp = pair
    with pytest.raises(FerlabError, match="need the FER\\+ vote file"):
        load(small_csv, None, "ferplus-majority")
    with pytest.raises(FerlabError, match="choose a FER\\+ label mode"):
        load(small_csv, fp, "fer2013")
    with pytest.raises(DataError, match="no such file"):
        load(small_csv, tmp_path / "missing.csv", "ferplus-majority")


def test_fer2013_labels_with_ferplus_soft_targets(pair: tuple[Path, Path]) -> None:
    csv, fp = pair
    data = load(csv, fp, "fer2013-ferplus", ferplus_weight=0.4)
    # Every row stays, with FER2013's classes and labels (row i has emotion i % 7).
    assert data.classes == FER2013_CLASSES and data.label_mode == "fer2013-ferplus"
    assert data.index.tolist() == list(range(9))
    assert data.labels.tolist() == [i % 7 for i in range(9)]
    assert torch.allclose(data.targets.sum(1), torch.ones(9))
    # Row 0 (angry) has ROW_A's votes: neutral 4, sadness 1, anger 3, disgust 2 of 10 counted
    # (no outlier removal) -> over angry..neutral: 0.3, 0.2, 0, 0, 0.1, 0, 0.4.
    expected = 0.6 * torch.tensor([1.0, 0, 0, 0, 0, 0, 0]) + 0.4 * torch.tensor(
        [0.3, 0.2, 0, 0, 0.1, 0, 0.4]
    )
    assert torch.allclose(data.targets[0], expected)
    # Row 5 (surprise) is not a face for FER+ (no emotion vote): its FER2013 label alone.
    assert data.targets[5].tolist() == [0, 0, 0, 0, 0, 1, 0]
    # The FER2013 label stays the strict mode of every target below weight 0.5.
    assert torch.equal(data.targets.argmax(1), data.labels)
    assert torch.equal(
        load(csv, fp, "fer2013-ferplus", ferplus_weight=0.0).targets.argmax(1), data.labels
    )
    with pytest.raises(FerlabError, match="ferplus_weight"):
        load(csv, fp, "fer2013-ferplus", ferplus_weight=1.5)
    with pytest.raises(FerlabError, match="FER\\+ vote file"):
        load(csv, None, "fer2013-ferplus")
