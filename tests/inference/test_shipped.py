"""The shipped models' files: every weights file's SHA-256 is recorded and checked on load."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import ferlab.inference.shipped as shipped
from ferlab.errors import DataError
from ferlab.inference import load_model


def test_every_shipped_weights_file_has_its_recorded_digest():
    folder = shipped.weights_dir()
    on_disk = sorted(p.name for p in folder.iterdir() if p.suffix in (".pt", ".onnx"))
    recorded = {f: d for m in shipped.SHIPPED.values() for f, d in m.digests().items()}
    assert sorted(recorded) == on_disk
    for name, digest in recorded.items():
        assert shipped.file_sha256(folder / name) == digest, name


@pytest.fixture
def damaged_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A weights folder whose ``default.onnx`` has one flipped byte."""
    for path in shipped.weights_dir().glob("default.*"):
        shutil.copy(path, tmp_path / path.name)
    onnx = tmp_path / "default.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    monkeypatch.setattr(shipped, "weights_dir", lambda: tmp_path)
    return onnx


def test_a_damaged_shipped_file_is_an_error_naming_it(damaged_weights: Path):
    with pytest.raises(DataError, match="damaged or replaced") as info:
        load_model("default", runtime="onnx")
    assert str(damaged_weights) in str(info.value)
    (damaged_weights.parent / "default.pt").unlink()  # an install with the ONNX twin only
    with pytest.raises(DataError, match="default.onnx"):
        load_model("default")


def test_files_outside_the_weights_folder_are_not_checked(tmp_path: Path):
    copy = tmp_path / "default.onnx"
    data = bytearray((shipped.weights_dir() / "default.onnx").read_bytes())
    copy.write_bytes(bytes(data))
    model = load_model(copy)
    assert model.runtime == "onnx" and model.predict_proba(np.zeros((1, 48, 48))).shape == (1, 7)


def test_unknown_names_and_missing_files_are_clear():
    with pytest.raises(DataError, match="checkpoint not found"):
        load_model("runs/none/best.pt")
    with pytest.raises(Exception, match="known model"):
        load_model("defualt")
