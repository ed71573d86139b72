"""Image-folder readers: Kaggle release and generic ImageFolder, as folders and zips."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from fer_builders import (
    imagefolder_files,
    kaggle_files,
    pixels_of,
    png_bytes,
    write_tree,
    write_zip,
)

from ferlab.data import FER2013_CLASSES, check_dataset, load_dataset
from ferlab.errors import DataError


def load(path: Path, **kw: object):
    return load_dataset(path, cache_dir=path.parent / "cache", progress=False, **kw)


def test_kaggle_folder_splits_from_prefixes_and_fer2013_class_order(tmp_path: Path) -> None:
    data = load(write_tree(tmp_path / "fer", kaggle_files(per_split=2)))
    assert data.format == "fer2013-images" and data.classes == FER2013_CLASSES
    counts = data.counts()
    for split in ("train", "val", "test"):
        assert counts[split]["total"] == 14
        assert set(counts[split]["per_class"].values()) == {2}
    # check one image end to end: surprise is the first folder written (k = 0..5)
    first = data.images[(data.labels == FER2013_CLASSES.index("surprise")) & (data.split == 0)]
    assert np.array_equal(first[0].numpy(), pixels_of(0))


def test_kaggle_zip_matches_the_folder(tmp_path: Path) -> None:
    files = kaggle_files(per_split=1)
    folder = load(write_tree(tmp_path / "fer", files))
    zipped = load(write_zip(tmp_path / "fer.zip", files, dirs=["train", "test"]))
    assert zipped.format == "fer2013-images-zip"
    assert torch.equal(folder.images, zipped.images) and torch.equal(folder.labels, zipped.labels)
    assert torch.equal(folder.split, zipped.split)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "fer", "fer.zip"]


def test_zip_with_a_wrapper_folder_and_mac_junk(tmp_path: Path) -> None:
    files = {f"archive/{k}": v for k, v in kaggle_files(per_split=1).items()}
    files["__MACOSX/archive/._x"] = b"junk"
    files["archive/train/happy/.DS_Store"] = b"junk"
    assert len(load(write_zip(tmp_path / "a.zip", files))) == 21


def test_imagefolder_with_val_and_alphabetical_classes(tmp_path: Path) -> None:
    files = imagefolder_files(classes=("nonface", "face"), n_train=3)
    files["README.md"] = b"top-level files are documentation"
    data = load(write_tree(tmp_path / "fnf", files))
    assert data.format == "image-folder" and data.classes == ("face", "nonface")
    c = data.counts()
    assert (c["train"]["total"], c["val"]["total"], c["test"]["total"]) == (6, 4, 4)
    assert c["train"]["per_class"] == {"face": 3, "nonface": 3}


def test_class_folders_in_fer_plus_spelling_get_ferlab_names(tmp_path: Path) -> None:
    files = imagefolder_files(classes=("sadness", "Happy", "happiness"), n_train=2)
    data = load(write_tree(tmp_path / "fp", files))
    # Renamed after sorting (the labels keep their ids); other names stay as written.
    assert data.classes == ("Happy", "happy", "sad")
    assert data.counts()["train"]["per_class"] == {"Happy": 2, "happy": 2, "sad": 2}
    both = imagefolder_files(classes=("anger", "angry"), n_train=1)
    with pytest.raises(DataError, match="'angry' twice"):
        load(write_tree(tmp_path / "both", both))


@pytest.mark.parametrize("fraction", [0.0, 0.2, 0.5])
def test_val_is_carved_stratified_and_seeded(tmp_path: Path, fraction: float) -> None:
    root = write_tree(tmp_path / "f", imagefolder_files(("a", "b"), n_train=10, with_val=False))
    data = load(root, val_fraction=fraction, seed=3)
    counts = data.counts()
    assert counts["val"]["per_class"] == {"a": round(10 * fraction), "b": round(10 * fraction)}
    assert counts["train"]["total"] + counts["val"]["total"] == 20
    again = load(root, val_fraction=fraction, seed=3)
    assert torch.equal(data.split, again.split)


def test_other_seed_other_val(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "f", imagefolder_files(("a", "b"), n_train=20, with_val=False))
    a, b = load(root, seed=0, val_fraction=0.3), load(root, seed=1, val_fraction=0.3)
    assert a.counts()["val"] == b.counts()["val"]
    assert not torch.equal(a.split, b.split)


def test_other_sizes_and_colour_are_converted_with_a_warning(tmp_path: Path) -> None:
    files = imagefolder_files(("a", "b"), n_train=2)
    big = np.zeros((96, 96, 3), dtype=np.uint8)
    big[:, :, 0] = 255  # pure red: luma 76
    files["train/a/big.png"] = png_bytes(big, mode="RGB")
    with pytest.warns(UserWarning, match="1 of 13 images were not 48×48"):
        data = load(write_tree(tmp_path / "f", files))
    assert data.images.shape == (13, 48, 48)
    # uniform red becomes uniform grey 76 (ITU-R 601 luma: 0.299 * 255), resizing keeps it
    assert (data.images.float().mean(dim=(1, 2)) == 76).sum() == 1


def corrupt(files: dict[str, bytes]) -> dict[str, bytes]:
    files["train/a/img000.png"] = files["train/a/img000.png"][:40]
    return files


def stray_txt(files: dict[str, bytes]) -> dict[str, bytes]:
    files["train/a/notes.txt"] = b"hello"
    return files


def stray_in_split(files: dict[str, bytes]) -> dict[str, bytes]:
    files["test/loose.png"] = files["test/a/img000.png"]
    return files


def nested(files: dict[str, bytes]) -> dict[str, bytes]:
    files["train/a/deeper/img.png"] = files["train/a/img000.png"]
    return files


def class_not_in_train(files: dict[str, bytes]) -> dict[str, bytes]:
    files["test/c/img.png"] = files["test/a/img000.png"]
    return files


def unexpected_folder(files: dict[str, bytes]) -> dict[str, bytes]:
    files["extra/a/img.png"] = files["test/a/img000.png"]
    return files


BROKEN = {
    "corrupt image": (corrupt, "train/a/img000.png", "cannot decode the image"),
    "stray file": (stray_txt, "train/a/notes.txt", "not an image file"),
    "file in split": (stray_in_split, "test/loose.png", "directly in a split folder"),
    "nested folder": (nested, "train/a/deeper/img.png", "nested inside a class folder"),
    "class not in train": (class_not_in_train, "", "class folder 'test/c' has no counterpart"),
    "unexpected folder": (unexpected_folder, "", "unexpected folder 'extra/'"),
}


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_trees(tmp_path: Path, case: str, zipped: bool) -> None:
    make, where, words = BROKEN[case]
    files = make(imagefolder_files(("a", "b"), n_train=2))
    path = write_zip(tmp_path / "d.zip", files) if zipped else write_tree(tmp_path / "d", files)
    with pytest.raises(DataError, match=words) as info:
        load(path)
    assert str(info.value).startswith(str(path.resolve()))
    assert where in str(info.value)
    data = load(path, skip_bad=True)
    assert len(data.skipped) == 1 and words.split("'")[0] in data.skipped[0]
    assert len(data) == 12 - (case == "corrupt image")


def test_empty_class_folder(tmp_path: Path) -> None:
    root = write_tree(tmp_path / "d", imagefolder_files(("a", "b"), n_train=2))
    (root / "val" / "c").mkdir()
    (root / "train" / "c").mkdir()
    report = check_dataset(root, progress=False)
    assert [p.problem for p in report.problems] == ["empty class folder (no image files)"] * 2
    assert report.data.classes == ("a", "b", "c")


def test_unknown_class_folder_in_the_kaggle_layout(tmp_path: Path) -> None:
    files = kaggle_files(per_split=1)
    files["train/contempt/Training_1.png"] = png_bytes(pixels_of(1))
    with pytest.raises(DataError, match="unknown class folder 'contempt'"):
        load(write_tree(tmp_path / "k", files))


def test_missing_prefix_among_prefixed_names(tmp_path: Path) -> None:
    files = kaggle_files(per_split=1)
    files["train/happy/photo.png"] = png_bytes(pixels_of(1))
    with pytest.raises(DataError, match="lacks the Training_/PublicTest_/PrivateTest_ prefix"):
        load(write_tree(tmp_path / "k", files))


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"train/a/x.png": b""}, "no test/ folder"),
        ({"test/a/x.png": b""}, "no train/ folder"),
        ({"train/a/x.txt": b"", "test/a/y.txt": b""}, "holds no class folder with images"),
    ],
)
def test_missing_splits(tmp_path: Path, files: dict[str, bytes], words: str) -> None:
    with pytest.raises(DataError, match=words):
        load(write_tree(tmp_path / "d", files))


def test_zip_with_junk(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    with pytest.raises(DataError, match="not a readable zip archive"):
        load(junk)
    good = write_zip(tmp_path / "ok.zip", imagefolder_files(("a", "b"), n_train=2))
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError):
        load(truncated)


def test_zip_member_with_bad_crc(tmp_path: Path) -> None:
    files = imagefolder_files(("a", "b"), n_train=2)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    raw = bytearray(buf.getvalue())
    at = raw.find(files["train/a/img000.png"][20:40])  # flip a byte inside the first member
    raw[at] ^= 0xFF
    path = tmp_path / "crc.zip"
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train/a/img000.png: cannot read the file"):
        load(path)
