"""scripts/release_model.py: a finished run becomes a shipped model, its card section written."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

import ferlab
import ferlab.inference.shipped as shipped_module
from ferlab.engine import read_checkpoint, recipe_from_dict, train
from tests.engine.engine_helpers import write_synthetic_csv

pytest.importorskip("onnxruntime")

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "release_model.py"


def _script():
    spec = importlib.util.spec_from_file_location("release_model", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_release_ships_weights_onnx_twin_and_card(tiny_model, tmp_path):
    csv = write_synthetic_csv(tmp_path / "fer.csv")
    recipe = recipe_from_dict(
        {
            "model": {"name": tiny_model},
            "data": {"path": str(csv), "crop": 44, "cache_dir": str(tmp_path / "cache")},
            "optim": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 2, "batch_size": 32},
            "eval": {"tta": "flip"},
        }
    )
    run = train(recipe, out_dir=tmp_path / "run").out_dir
    card = tmp_path / "docs" / "models.md"
    card.parent.mkdir()
    card.write_text("# Models\n\nHand-written text.\n\n## Measured: `default`\n\nold numbers\n")
    weights = tmp_path / "weights"
    table = tmp_path / "shipped.py"
    table.write_text(Path(shipped_module.__file__).read_text())
    argv = [str(run), "default", "--weights-dir", str(weights), "--card", str(card)]
    _script().main([*argv, "--table", str(table)])
    recorded = table.read_text()
    for name in ("default.pt", "default.onnx"):
        assert f'"{shipped_module.file_sha256(weights / name)}"' in recorded
    assert shipped_module.SHIPPED["ferplus"].pt_sha256 in recorded  # the other model unchanged

    shipped = read_checkpoint(weights / "default.pt")
    assert "train_state" not in shipped and shipped["tta"] == "flip"
    assert (
        shipped["metrics"]["test"]["accuracy"]
        == read_checkpoint(run / "best.pt")["metrics"]["test"]["accuracy"]
    )
    assert shipped["training"]["steps"] > 0 and shipped["code_version"]
    faces = np.random.default_rng(0).integers(0, 256, (4, 48, 48), dtype=np.uint8)
    torch_probs = ferlab.load_model(weights / "default.pt", tta="none").predict_proba(faces)
    onnx_probs = ferlab.load_model(weights / "default.onnx", tta="none").predict_proba(faces)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)

    text = card.read_text()
    assert "Hand-written text." in text and "old numbers" not in text
    assert text.count("| val (PublicTest) |") == 3  # one row per test-time augmentation
    assert "**test (PrivateTest)**" in text
    assert (tmp_path / "docs" / "img" / "models" / "default_confusion_test.png").is_file()


def test_release_as_a_new_shipped_name_adds_its_table_entry(tiny_model, tmp_path):
    """A name of the releasable ones that the table lacks (``fast`` before it shipped) gets its
    entry written by the release, and the card says what it was distilled from."""
    csv = write_synthetic_csv(tmp_path / "fer.csv")
    teacher = train(
        recipe_from_dict(
            {
                "model": {"name": tiny_model},
                "data": {"path": str(csv), "crop": 44, "cache_dir": str(tmp_path / "cache")},
                "train": {"epochs": 1, "batch_size": 32},
                "eval": {"plots": False},
            }
        ),
        out_dir=tmp_path / "teacher",
    ).out_dir
    student = recipe_from_dict(
        {
            "model": {"name": tiny_model},
            "data": {"path": str(csv), "crop": 44, "cache_dir": str(tmp_path / "cache")},
            "distill": {"teacher": str(teacher / "best.pt"), "weight": 0.6, "tta": "flip"},
            "train": {"epochs": 1, "batch_size": 32},
            "eval": {"plots": False},
        }
    )
    run = train(student, out_dir=tmp_path / "run").out_dir
    card = tmp_path / "models.md"
    card.write_text("# Models\n")
    weights, table = tmp_path / "weights", tmp_path / "shipped.py"
    # The table as it was before ``fast`` shipped: its entry removed.
    before = re.sub(
        r'\n    "fast": ShippedModel\(.*?\n    \),',
        "",
        Path(shipped_module.__file__).read_text(),
        flags=re.S,
    )
    assert '"fast"' not in before
    table.write_text(before)
    argv = [str(run), "fast", "--weights-dir", str(weights), "--card", str(card)]
    _script().main([*argv, "--table", str(table)])

    namespace: dict = {}
    exec(compile(table.read_text(), str(table), "exec"), namespace)
    recorded = namespace["SHIPPED"]
    assert list(recorded) == [*(n for n in shipped_module.SHIPPED if n != "fast"), "fast"]
    assert recorded["fast"].pt_sha256 == shipped_module.file_sha256(weights / "fast.pt")
    assert recorded["fast"].onnx_sha256 == shipped_module.file_sha256(weights / "fast.onnx")
    assert recorded["default"].digests() == shipped_module.SHIPPED["default"].digests()
    text = card.read_text()
    assert "## Measured: `fast`" in text and "Distilled from `best.pt`" in text
    assert "flip probabilities" in text and "make 0.6 of each target" in text


def test_release_with_a_tta_chosen_after_the_run_evaluates_the_test_split_for_it(
    tiny_model, tmp_path
):
    csv = write_synthetic_csv(tmp_path / "fer.csv")

    def run(name: str) -> Path:
        recipe = {
            "model": {"name": tiny_model},
            "data": {"path": str(csv), "crop": 44, "cache_dir": str(tmp_path / "cache")},
            "train": {"epochs": 1, "batch_size": 32},
            "eval": {"tta": "none"},
        }
        return train(recipe_from_dict(recipe), out_dir=tmp_path / name).out_dir

    first, other = run("run"), run("other")
    card = tmp_path / "models.md"
    card.write_text("# Models\n")
    table = tmp_path / "shipped.py"
    table.write_text(Path(shipped_module.__file__).read_text())
    argv = [str(first), "default", "--weights-dir", str(tmp_path / "w"), "--card", str(card)]
    argv += ["--table", str(table)]
    with pytest.raises(SystemExit, match="neither"):  # weights of another run
        _script().main([*argv, "--weights", str(other / "best.pt")])
    with pytest.raises(SystemExit, match="--why"):
        _script().main([*argv, "--tta", "flip"])
    assert not (tmp_path / "w").exists()  # refused before anything was written

    _script().main([*argv, "--tta", "flip", "--why", "Flip was chosen on PublicTest."])
    shipped = read_checkpoint(tmp_path / "w" / "default.pt")
    assert shipped["tta"] == "flip" and shipped["metrics"]["test"]["tta"] == "flip"
    assert shipped["metrics"]["val"]["tta"] == "flip" and shipped["metrics"]["test"]["n"] > 0
    text = card.read_text()
    assert "Flip was chosen on PublicTest. The test split was evaluated once more" in text
    assert "| **test (PrivateTest)** |" in text and "| flip | **" in text
