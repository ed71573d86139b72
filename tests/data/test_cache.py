"""The decoded-array cache: hits, invalidation, atomic files, and where it lives."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch
from fer_builders import imagefolder_files, pixels_of, standard_rows, write_csv, write_tree

import ferlab.data.loader as loader
from ferlab.data import default_cache_dir, load_dataset


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every real parse (a cache miss) made by load_dataset."""
    calls: list[str] = []
    real = loader._read

    def spy(source, *args, **kwargs):
        calls.append(source.path.name)
        return real(source, *args, **kwargs)

    monkeypatch.setattr(loader, "_read", spy)
    return calls


def test_second_load_hits_the_cache_and_is_equal(
    tmp_path: Path, small_csv: Path, parses: list[str]
) -> None:
    cache = tmp_path / "c"
    first = load_dataset(small_csv, cache_dir=cache, progress=False)
    second = load_dataset(small_csv, cache_dir=cache, progress=False)
    assert parses == ["fer2013.csv"]
    for name in ("images", "labels", "split", "index"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert (first.classes, first.format, first.source) == (
        second.classes,
        second.format,
        second.source,
    )
    assert [p.suffix for p in cache.iterdir()] == [".npz"]


def test_touching_or_changing_the_source_invalidates(
    tmp_path: Path, small_csv: Path, parses: list[str]
) -> None:
    cache = tmp_path / "c"
    load_dataset(small_csv, cache_dir=cache, progress=False)
    st = small_csv.stat()
    os.utime(small_csv, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    load_dataset(small_csv, cache_dir=cache, progress=False)
    assert len(parses) == 2

    write_csv(small_csv, standard_rows(4))
    data = load_dataset(small_csv, cache_dir=cache, progress=False)
    assert len(parses) == 3 and len(data) == 4
    assert len(list(cache.iterdir())) == 1, "a stale entry is replaced, not kept beside"


def test_image_folder_invalidates_when_a_file_inside_changes(
    tmp_path: Path, parses: list[str]
) -> None:
    root = write_tree(tmp_path / "f", imagefolder_files(("a", "b"), n_train=2))
    cache = tmp_path / "c"
    load_dataset(root, cache_dir=cache, progress=False)
    load_dataset(root, cache_dir=cache, progress=False)
    assert len(parses) == 1
    (root / "train" / "a" / "img000.png").unlink()
    assert len(load_dataset(root, cache_dir=cache, progress=False)) == 11
    assert len(parses) == 2


def test_options_that_change_the_result_have_their_own_entry(
    tmp_path: Path, parses: list[str]
) -> None:
    root = write_tree(tmp_path / "f", imagefolder_files(("a", "b"), n_train=10, with_val=False))
    cache = tmp_path / "c"
    a = load_dataset(root, cache_dir=cache, progress=False, seed=0)
    b = load_dataset(root, cache_dir=cache, progress=False, seed=1)
    assert len(parses) == 2 and not torch.equal(a.split, b.split)
    load_dataset(root, cache_dir=cache, progress=False, seed=0, skip_bad=True)
    assert len(parses) == 3


def test_corrupt_cache_entry_is_rebuilt(tmp_path: Path, small_csv: Path, parses: list[str]) -> None:
    cache = tmp_path / "c"
    load_dataset(small_csv, cache_dir=cache, progress=False)
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes()[:100])
    data = load_dataset(small_csv, cache_dir=cache, progress=False)
    assert len(parses) == 2 and torch.equal(data.images[3], torch.from_numpy(pixels_of(3)))
    assert load_dataset(small_csv, cache_dir=cache, progress=False) is not None
    assert len(parses) == 2


def test_unwritable_cache_only_warns(tmp_path: Path, small_csv: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    with pytest.warns(UserWarning, match="could not write the data cache"):
        data = load_dataset(small_csv, cache_dir=blocker / "sub", progress=False)
    assert len(data) == 9


def test_nothing_is_written_next_to_the_source(tmp_path: Path, small_csv: Path) -> None:
    before = sorted(tmp_path.iterdir())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(small_csv, progress=False)  # default cache folder (the session's)
    assert sorted(tmp_path.iterdir()) == before


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FERLAB_CACHE_DIR", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("FERLAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "ferlab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "ferlab"
