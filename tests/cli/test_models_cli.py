"""``ferlab models``: the zoo listing as JSON and as a table."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import ferlab.models
from ferlab.cli.app import app
from ferlab.models import get_model_entry, list_models

runner = CliRunner()


def test_models_json_lists_every_registered_model() -> None:
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["name"] for row in rows] == list_models()
    for row in rows:
        assert set(row) == {"name", "params", "mflops", "input_size", "source"}
        assert isinstance(row["params"], int) and row["params"] > 0
        assert isinstance(row["mflops"], float) and row["mflops"] > 0
        assert len(row["input_size"]) == 3
        assert row["source"] == get_model_entry(row["name"]).source
    by_name = {row["name"]: row for row in rows}
    for name in ("vgg19", "face_vgg19", "facial_attention_m3", "resnet18", "densenet121"):
        assert name in by_name
    assert by_name["vgg19"]["input_size"] == [1, 44, 44]
    # The facial-attention models carry a whole frozen face network besides their VGG19.
    assert by_name["facial_attention_m1"]["params"] > 2 * by_name["face_vgg19"]["params"] - 10_000


def test_models_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # The table layout does not depend on which models exist: two cheap ones suffice.
    monkeypatch.setattr(ferlab.models, "list_models", lambda: ["face_vgg19", "resnet18"])
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    assert "face_vgg19" in result.stdout and "resnet18" in result.stdout
    assert "MFLOPs" in result.stdout and "He et al." in result.stdout


def test_models_verb_is_listed_in_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.stdout


def test_models_shipped_lists_the_installed_weights(tmp_path, monkeypatch) -> None:
    import ferlab.inference.shipped
    from ferlab.engine.checkpoint import release_checkpoint
    from tests.engine.engine_helpers import register_tiny, trained_checkpoint, unregister_tiny

    register_tiny()
    try:
        best = trained_checkpoint(tmp_path / "run", "engine_test_tiny", epochs=1, n=120)
        release_checkpoint(best, tmp_path / "default.pt", tta="flip")
        monkeypatch.setattr(ferlab.inference.shipped, "weights_dir", lambda: tmp_path)
        # Replaced weights fail the shipped digests on load, so their speed is not measured.
        result = runner.invoke(app, ["models", "--shipped", "--no-speed", "--json"])
        assert result.exit_code == 0, result.output
        (row,) = json.loads(result.stdout)
        assert row["name"] == "default" and row["architecture"] == "engine_test_tiny"
        assert row["tta"] == "flip" and len(row["labels"]) == 7 and row["bytes"] > 0
        table = runner.invoke(app, ["models", "--shipped", "--no-speed"])
        assert table.exit_code == 0 and "engine_test_tiny" in table.stdout
    finally:
        unregister_tiny()
    monkeypatch.setattr(ferlab.inference.shipped, "weights_dir", lambda: tmp_path / "none")
    result = runner.invoke(app, ["models", "--shipped"])
    assert result.exit_code == 0 and "no shipped models" in result.stdout


def test_models_shipped_measures_each_models_speed_here() -> None:
    from ferlab.inference import shipped_models

    if not shipped_models():
        pytest.skip("no shipped models in this install (ferlab/weights/)")
    result = runner.invoke(app, ["models", "--shipped", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows] == list(shipped_models())
    for row in rows:
        crops = {"none": 1, "flip": 2, "ten_crop": 10}[row["tta"]]
        assert row["faces_per_s"] > 0 and row["runtime"].split("-")[0] in ("onnx", "torch")
        assert row["crops_per_s"] == pytest.approx(row["faces_per_s"] * crops, rel=0.01)
