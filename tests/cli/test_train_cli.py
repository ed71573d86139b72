"""``ferlab train``, ``ferlab evaluate`` and ``ferlab compare`` through the CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ferlab.cli.app import main

RECIPE = """\
model: {name: deep_emotion_nostn}
data: {path: fer_small.csv, normalize: global}
augment: {flip: true, shift: 0.1}
optim: {name: adam, lr: 0.003}
schedule: {kind: constant}
train: {epochs: 2, batch_size: 16}
eval: {tta: flip, plots: false}
paper: {source: "test paper", reported_accuracy: 50.0}
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A small FER2013-format CSV (class-dependent brightness ramps) and a recipe beside it."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 1, 48)[:, None]
    lines = ["emotion,pixels,Usage"]
    for i in range(210):
        usage = "Training" if i < 140 else ("PublicTest" if i < 175 else "PrivateTest")
        label = i % 7
        img = np.clip(rng.random((48, 48)) * 60 + label * 24 * ramp, 0, 255).astype(int)
        lines.append(f"{label},{' '.join(map(str, img.ravel()))},{usage}")
    (tmp_path / "fer_small.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    return tmp_path


def _run(args: list[str]) -> None:
    main([str(a) for a in args])


def _fails(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _run(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_train_resume_evaluate_compare(workdir, capsys):
    out = workdir / "runs" / "small"
    cache = workdir / "cache"
    _run(["train", workdir / "recipe.yaml", "--out", out, "--epochs", "1", "--cache-dir", cache])
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    capsys.readouterr()

    # A finished run can be extended: --resume with more epochs continues from last.pt.
    _run(
        [
            "train",
            workdir / "recipe.yaml",
            "--out",
            out,
            "--resume",
            "--epochs",
            "3",
            "--cache-dir",
            cache,
            "--json",
        ]
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["epochs"] == 3 and metrics["steps"] == 3 * (140 // 16)
    assert metrics["paper"]["reported_accuracy"] == 50.0
    assert metrics["test"]["n"] == 35 and metrics["tta"] == "flip"

    _run(
        [
            "evaluate",
            out / "best.pt",
            "--split",
            "test",
            "--tta",
            "ten_crop",
            "--json",
            "--cache-dir",
            cache,
            "--out",
            workdir / "eval",
        ]
    )
    result = json.loads(capsys.readouterr().out)
    assert {"accuracy", "per_class", "macro_f1", "confusion", "n"} <= result.keys()
    assert result["n"] == 35 and len(result["per_class"]) == 7
    assert sum(map(sum, result["confusion"])) == 35
    assert (workdir / "eval" / "confusion_test.png").is_file()
    assert (workdir / "eval" / "misclassified_test.png").is_file()

    table_json = workdir / "compare.json"
    _run(["compare", out, "--json-out", table_json])
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("| run | model | params")
    assert "| small | deep_emotion_nostn |" in table and "50.00 (test paper)" in table
    rows = json.loads(table_json.read_text())
    assert rows[0]["val_accuracy"] == metrics["val"]["accuracy"]


def test_train_a_model_name_with_overrides(workdir, capsys):
    out = workdir / "runs" / "byname"
    command = ["train", "deep_emotion_nostn", "--data", workdir / "fer_small.csv", "--out", out]
    _run(
        [
            *command,
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--lr",
            "0.001",
            "--seed",
            "3",
            "--cache-dir",
            workdir / "cache",
        ]
    )
    config = (out / "config.yaml").read_text()
    assert "batch_size: 32" in config and "seed: 3" in config and "lr: 0.001" in config
    # The same command again: the run folder is taken.
    err = _fails([*command, "--cache-dir", workdir / "cache"], capsys)
    assert "already holds a run" in err and "--resume" in err


def test_user_errors_are_one_line(workdir, capsys):
    assert "neither a recipe file nor a registered model" in _fails(["train", "nosuchnet"], capsys)
    bad = workdir / "bad.yaml"
    bad.write_text("model: {name: medium_cnn}\ntrain: {epoch: 3}\n")
    err = _fails(["train", bad], capsys)
    assert str(bad) in err and "did you mean 'epochs'" in err
    err = _fails(["train", "medium_cnn", "--time-budget", "soon"], capsys)
    assert "cannot read duration" in err
    err = _fails(["train", "medium_cnn", "--precision", "fp8"], capsys)
    assert "unknown --precision value 'fp8'" in err
    err = _fails(["evaluate", workdir / "missing.pt"], capsys)
    assert "checkpoint not found" in err
    err = _fails(["compare", workdir], capsys)
    assert "not a run folder" in err


def test_train_passes_the_recipes_ferplus_weight(workdir, monkeypatch):
    """``data.ferplus_weight`` reaches the data loader (the soft targets depend on it)."""
    import ferlab.cli.train as train_cli

    seen = {}

    class Stop(Exception):
        pass

    def spy(*args):
        seen["args"] = args
        raise Stop

    monkeypatch.setattr(train_cli, "load_from_cli", spy)
    recipe = RECIPE.replace(
        "data: {path: fer_small.csv, normalize: global}",
        "data: {path: fer_small.csv, ferplus: votes.csv, labels: fer2013-ferplus, "
        "ferplus_weight: 0.25}",
    )
    (workdir / "soft.yaml").write_text(recipe)
    with pytest.raises(Stop):
        _run(["train", workdir / "soft.yaml", "--out", workdir / "runs" / "soft"])
    assert seen["args"][2] == "fer2013-ferplus" and seen["args"][-1] == 0.25
