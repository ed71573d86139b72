"""Format detection and option checks of load_dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fer_builders import imagefolder_files, standard_rows, write_csv, write_tree, write_zip

from ferlab.data import LABEL_MODES, detect_source, load_dataset
from ferlab.errors import DataError, FerlabError, UnknownNameError


def test_detects_each_form(tmp_path: Path, small_csv: Path) -> None:
    gz = write_csv(tmp_path / "any-name.gz", standard_rows(2), gz=True)
    folder = write_tree(tmp_path / "imgs", imagefolder_files(("a", "b"), n_train=1))
    zipped = write_zip(tmp_path / "imgs.zip", imagefolder_files(("a", "b"), n_train=1))
    holder = tmp_path / "holder"
    holder.mkdir()
    shutil.copy(small_csv, holder / "fer2013.csv")
    assert detect_source(small_csv).kind == "csv"
    assert detect_source(gz).kind == "csv"
    assert detect_source(folder).kind == "images"
    assert detect_source(zipped).kind == "images"
    assert detect_source(holder).path == (holder / "fer2013.csv").resolve()


@pytest.mark.parametrize("name", ["notes.txt", "folder"])
def test_unsupported_forms_list_what_is_supported(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name == "folder":
        path.mkdir()
    else:
        path.write_text("hello")
    with pytest.raises(DataError, match="cannot tell the dataset format; supported: .*ImageFolder"):
        load_dataset(path, progress=False)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file or folder"):
        load_dataset(tmp_path / "nope.csv", progress=False)


def test_zip_without_train(tmp_path: Path) -> None:
    path = write_zip(tmp_path / "x.zip", {"images/a.png": b"x"})
    with pytest.raises(DataError, match="the zip holds no train/ folder"):
        load_dataset(path, progress=False)


def test_ferplus_needs_a_csv_source(tmp_path: Path) -> None:
    folder = write_tree(tmp_path / "imgs", imagefolder_files(("a", "b"), n_train=1))
    votes = tmp_path / "v.csv"
    votes.write_text("x")
    with pytest.raises(DataError, match="cannot be applied to an image folder"):
        load_dataset(folder, ferplus=votes, labels="ferplus-majority", progress=False)


@pytest.mark.parametrize(
    ("kw", "error", "words"),
    [
        ({"labels": "ferplus"}, UnknownNameError, "unknown label mode 'ferplus'"),
        ({"val_fraction": 1.0}, FerlabError, "val_fraction must be"),
        ({"val_fraction": -0.1}, FerlabError, "val_fraction must be"),
        ({"val_fraction": float("nan")}, FerlabError, "val_fraction must be"),
        ({"seed": -1}, FerlabError, "seed must be"),
    ],
)
def test_bad_options(small_csv: Path, kw: dict, error: type, words: str) -> None:
    with pytest.raises(error, match=words):
        load_dataset(small_csv, progress=False, **kw)


def test_label_modes() -> None:
    assert LABEL_MODES[0] == "fer2013"
    ferplus = [m for m in LABEL_MODES if m.startswith("ferplus-")]
    assert {m.removeprefix("ferplus-") for m in ferplus} == {
        "majority",
        "probability",
        "crossentropy",
        "multi",
    }
    assert set(LABEL_MODES) - set(ferplus) == {"fer2013", "fer2013-ferplus"}


def test_progress_bars_do_not_break_loading(small_csv: Path, capsys: pytest.CaptureFixture) -> None:
    data = load_dataset(small_csv, progress=True, cache_dir=small_csv.parent / "c")
    assert len(data) == 9
    assert capsys.readouterr().out == "", "progress goes to stderr only"
