"""benchmarks/choose_tta.py: the default TTA is chosen on PublicTest and the shift suite."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from engine_helpers import trained_checkpoint, write_synthetic_csv

from ferlab.engine.shifts import SHIFT_NAMES


@pytest.fixture
def script(benchmark_script):
    return benchmark_script("choose_tta")


def _result(correct_clean: np.ndarray, correct_shifted: np.ndarray) -> dict:
    """A suite result whose every shifted column has the same per-face correctness."""
    shifts = {}
    for name in SHIFT_NAMES:
        c = correct_clean if name == "clean" else correct_shifted
        shifts[name] = {"accuracy": float(c.mean()), "correct": c, "n": len(c)}
    return {"shifts": shifts, "seconds": 0.0}


def test_a_tta_is_chosen_only_when_it_raises_the_suite_beyond_noise(script):
    rng = np.random.default_rng(0)
    base = rng.random(400) < 0.6
    better = base | (rng.random(400) < 0.3)  # right on every face `none` gets, and more
    results = {
        "m": {
            "none": _result(base, base),
            "flip": _result(base, better),
            "ten_crop": _result(better, base),  # better plain, no better shifted
        },
        "b": {"none": _result(base, base), "flip": _result(base, base)},
    }
    summary = script.compare(results, seed=0)
    flip = summary["m"]["flip"]
    assert flip["mean_vs_none"] == pytest.approx(better.mean() - base.mean())
    assert flip["mean_vs_none_ci"][0] > 0 and summary["m"]["ten_crop"]["mean_vs_none"] == 0
    assert script.choose(summary["m"])["tta"] == "flip"
    # Raising only the plain faces is not enough; equal to `none` keeps the cheapest.
    assert script.choose(summary["b"])["tta"] == "none"
    del summary["m"]["flip"]
    assert script.choose(summary["m"])["tta"] == "none"
    lines = script.table({"m": summary["m"], "b": summary["b"]})
    assert len(lines) == 2 + 2 + 2 + 1  # header, rows of m and b, one difference row (none)


def test_the_cheapest_tta_within_noise_of_the_best_is_chosen(script):
    rng = np.random.default_rng(1)
    base = rng.random(400) < 0.6
    gain = base | (rng.random(400) < 0.3)
    a_little_more = gain.copy()  # ten-crop: right on 4 faces flip misses, wrong on 2 it gets
    a_little_more[np.flatnonzero(~gain)[:4]] = True
    a_little_more[np.flatnonzero(gain)[:2]] = False
    results = {
        "m": {
            "none": _result(base, base),
            "flip": _result(base, gain),
            "ten_crop": _result(base, a_little_more),
        }
    }
    rows = script.compare(results, seed=0)["m"]
    assert rows["ten_crop"]["mean"] > rows["flip"]["mean"]
    assert rows["flip"]["mean_vs_ci"]["ten_crop"][1] >= 0  # not measurably below
    decision = script.choose(rows)
    assert decision["tta"] == "flip" and "within noise of `ten_crop`" in decision["why"]
    # Far better than flip beyond noise: the extra views are worth it.
    results["m"]["flip"] = _result(base, base | (rng.random(400) < 0.05))
    assert script.choose(script.compare(results, seed=0)["m"])["tta"] == "ten_crop"


def test_the_script_runs_side_by_side_on_publictest_only(script, tiny_model, tmp_path, monkeypatch):
    csv = write_synthetic_csv(tmp_path / "fer.csv", n=120)
    ckpt = trained_checkpoint(tmp_path / "run", tiny_model, epochs=1, n=120)
    out = tmp_path / "out"
    argv = [str(ckpt), "--baseline", str(ckpt), "--data", str(csv), "--limit", "12"]
    monkeypatch.setattr(
        sys, "argv", ["choose_tta.py", *argv, "--tta", "none", "flip", "--out", str(out)]
    )
    script.main()
    record = json.loads((out / "choose_tta.json").read_text())
    assert record["split"] == "val (PublicTest)" and record["n"] == 12
    assert list(record["models"]) == ["run/best", "run/best (baseline)"]
    assert list(record["models"]["run/best"]) == ["none", "flip"]
    assert record["decision"]["run/best"]["tta"] in ("none", "flip")
    assert (out / "choose_tta.png").stat().st_size > 0
    assert "Default test-time augmentation" in (out / "choose_tta.md").read_text()
