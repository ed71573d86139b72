"""scripts/model_card.py: the robustness card is written from recorded files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ferlab.engine import read_checkpoint
from ferlab.engine.shifts import SHIFT_NAMES
from ferlab.inference import model_file

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "model_card.py"


def test_the_card_comes_from_the_checkpoint_and_the_shift_result(tmp_path):
    spec = importlib.util.spec_from_file_location("model_card", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metrics = read_checkpoint(model_file("default"))["metrics"]
    classes = list(metrics["test"]["per_class"])
    accuracy = {n: 0.6 - 0.01 * i for i, n in enumerate(SHIFT_NAMES)}  # glasses: the worst
    result = {
        "shifts": {
            n: {"accuracy": a, "n": 10, "per_class": dict.fromkeys(classes, a)}
            for n, a in accuracy.items()
        },
        "mean": 0.5,
        "clean": 0.6,
        "n": 10,
        "seed": 3,
        "split": "val",
    }
    result["shifts"]["glasses"]["per_class"]["fear"] = 0.1
    shifts = tmp_path / "shifts.json"
    shifts.write_text(json.dumps({"default (ten_crop)": result}))
    card = tmp_path / "models.md"
    card.write_text("# Models\n\n## Other\n\nkept\n")
    module.main(["default", "--shifts", f"{shifts}:default (ten_crop)", "--card", str(card)])
    text = card.read_text()
    assert "## Other\n\nkept" in text and "## Robustness card: `default`" in text
    fear = f"{100 * metrics['test']['per_class']['fear']:.1f}"
    assert f"| fear | {100 * metrics['val']['per_class']['fear']:.1f} |" in text
    assert f"*fear*: {fear} % recall on PrivateTest" in text
    assert "FER2013 PublicTest, 10 faces, seed 3" in text
    assert "Under *glasses* accuracy falls to 48.0 % (-12.0 points); *fear* suffers most" in text
    assert "| **mean of the shifted columns** | **50.0** |" in text
    assert "| hardware |" in text and "| optimiser steps |" in text
