"""The readers on the real data in ``<repo>/../shared/datasets`` (skipped when it is absent).

Expected counts are the ones measured and published in that folder's README.md. The 301 MB
FER2013 CSV is parsed once per session (``fer2013_cache_dir`` in ``tests/conftest.py``); every
test here loads it from that cache.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from ferlab.data import FER2013_CLASSES, FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS, load_dataset
from ferlab.data.ferplus import DROP_REASONS

pytestmark = pytest.mark.dataset

# README.md, "Per-split, per-class counts" (angry disgust fear happy sad surprise neutral).
FER2013_COUNTS = {
    "train": [3995, 436, 4097, 7215, 4830, 3171, 4965],
    "val": [467, 56, 496, 895, 653, 415, 607],
    "test": [491, 55, 528, 879, 594, 416, 626],
}
# FER+ majority, as measured by this reader and recorded in docs/data.md.
FERPLUS_MAJORITY = {
    "train": [8740, 7287, 3149, 3014, 2100, 119, 532, 119],
    "val": [1182, 865, 415, 351, 287, 24, 62, 13],
    "test": [1090, 893, 396, 384, 273, 18, 83, 16],
}
FERPLUS_MAJORITY_DROPPED = {"not_face_or_unknown": 399, "no_majority": 4076}


# Tests that need the parsed real CSV: the first of them pays for the session's one parse.
slow_csv = pytest.mark.slow


@pytest.fixture(scope="module")
def fer2013(fer2013_csv: Path, fer2013_cache_dir: Path):
    return load_dataset(fer2013_csv, cache_dir=fer2013_cache_dir, progress=False)


@pytest.fixture(scope="module")
def ferplus_file(datasets_dir: Path) -> Path:
    path = datasets_dir / "ferplus" / "fer2013new.csv"
    if not path.is_file():
        pytest.skip(f"fer2013new.csv not found at {path}")
    return path


def per_class(data, split: str) -> list[int]:
    return list(data.counts()[split]["per_class"].values())


@slow_csv
def test_fer2013_counts_match_the_readme(fer2013) -> None:
    assert fer2013.format == "fer2013-csv" and len(fer2013) == 35_887
    assert fer2013.classes == FER2013_CLASSES
    for split, counts in FER2013_COUNTS.items():
        assert per_class(fer2013, split) == counts
    # README: rows 0-28708 Training, 28709-32297 PublicTest, 32298-35886 PrivateTest
    assert torch.equal(fer2013.index, torch.arange(35_887))
    assert fer2013.split[28_708] == 0 and fer2013.split[28_709] == 1
    assert fer2013.split[32_297] == 1 and fer2013.split[32_298] == 2


@slow_csv
def test_fer2013_black_images(fer2013) -> None:
    black = torch.nonzero(fer2013.images.flatten(1).amax(1) == 0).flatten().tolist()
    assert black == [
        6458,
        7629,
        10423,
        11286,
        13148,
        13402,
        13988,
        15894,
        22198,
        22927,
        28601,
        30002,
    ]


@slow_csv
def test_fer2013_pixels_match_a_plain_parse_of_sampled_rows(fer2013, fer2013_csv: Path) -> None:
    import gzip

    wanted = {0, 1, 2, 777}  # early rows: reading on would re-parse the whole file
    with gzip.open(fer2013_csv, "rt", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i in wanted:
                pixels = np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48)
                assert np.array_equal(fer2013.images[i].numpy(), pixels)
                assert fer2013.labels[i] == int(row["emotion"])
            if i >= max(wanted):
                break


@slow_csv
def test_ferplus_majority(fer2013_csv: Path, fer2013_cache_dir: Path, ferplus_file: Path) -> None:
    data = load_dataset(
        fer2013_csv,
        ferplus=ferplus_file,
        labels="ferplus-majority",
        cache_dir=fer2013_cache_dir,
        progress=False,
    )
    assert data.classes == FERPLUS_CLASSES
    for split, counts in FERPLUS_MAJORITY.items():
        assert per_class(data, split) == counts
        assert data.counts()[split]["total"] == sum(counts)
    assert data.dropped == FERPLUS_MAJORITY_DROPPED
    assert len(data) + sum(data.dropped.values()) == 35_887, "rows leave only by the rules"

    # Independent check of the majority rule on the raw votes.
    with ferplus_file.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    votes = np.array([[int(r[c]) for c in (*FERPLUS_VOTE_COLUMNS, "unknown", "NF")] for r in rows])
    cleaned = np.where(votes > 1, votes, 0)
    majority = (cleaned.max(1) * 2 > cleaned.sum(1)) & (cleaned.argmax(1) < 8)
    assert data.index.tolist() == np.flatnonzero(majority).tolist()
    assert data.labels.tolist() == cleaned.argmax(1)[majority].tolist()
    # the 173 rows without an image name are all NF=10, so the NF rule drops them all
    unnamed = {i for i, r in enumerate(rows) if not r["Image name"]}
    assert len(unnamed) == 173 and not unnamed & set(data.index.tolist())
    # splits stay those of fer2013.csv
    expected_split = (data.index >= 28_709).to(torch.int8) + (data.index >= 32_298).to(torch.int8)
    assert torch.equal(data.split, expected_split)


@slow_csv
@pytest.mark.parametrize("mode", ["probability", "crossentropy", "multi"])
def test_ferplus_soft_modes(
    fer2013_csv: Path, fer2013_cache_dir: Path, ferplus_file: Path, mode: str
) -> None:
    data = load_dataset(
        fer2013_csv,
        ferplus=ferplus_file,
        labels=f"ferplus-{mode}",
        cache_dir=fer2013_cache_dir,
        progress=False,
    )
    assert set(data.dropped) <= set(DROP_REASONS)
    assert len(data) + sum(data.dropped.values()) == 35_887
    assert data.dropped["not_face_or_unknown"] == FERPLUS_MAJORITY_DROPPED["not_face_or_unknown"]
    assert data.targets.shape == (len(data), 8) and data.targets.dtype == torch.float32
    rows = torch.arange(len(data))
    if mode == "multi":
        assert set(data.targets.unique().tolist()) == {0.0, 1.0}
        assert (data.targets[rows, data.labels] == 1).all()
    else:
        assert torch.allclose(data.targets.sum(1), torch.ones(len(data)))
        assert torch.equal(data.targets.argmax(1), data.labels)
    # the soft modes keep more rows than majority voting
    assert len(data) > sum(map(sum, FERPLUS_MAJORITY.values()))


def test_image_zip_sample(datasets_dir: Path) -> None:
    path = datasets_dir / "fer2013-images" / "fer2013-images-sample.zip"
    data = load_dataset(path, progress=False)
    assert data.format == "fer2013-images-zip" and data.classes == FER2013_CLASSES
    assert [per_class(data, s) for s in ("train", "val", "test")] == [[40] * 7, [12] * 7, [12] * 7]


def test_face_nonface(datasets_dir: Path) -> None:
    data = load_dataset(datasets_dir / "face-nonface", progress=False)
    assert data.format == "image-folder" and data.classes == ("face", "nonface")
    assert [per_class(data, s) for s in ("train", "val", "test")] == [
        [1000, 1000],
        [250, 250],
        [250, 250],
    ]
    assert data.images.shape == (3000, 48, 48)
