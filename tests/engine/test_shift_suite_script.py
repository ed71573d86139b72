"""benchmarks/shift_suite.py: models side by side, differences to the reference with intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ferlab.engine.shifts import SHIFT_NAMES


@pytest.fixture
def script(benchmark_script):
    return benchmark_script("shift_suite")


def _result(correct: dict[str, np.ndarray]) -> dict:
    shifts = {
        n: {"accuracy": float(c.mean()), "correct": c, "n": len(c)} for n, c in correct.items()
    }
    shifted = [shifts[n]["accuracy"] for n in SHIFT_NAMES if n != "clean"]
    return {"shifts": shifts, "mean": float(np.mean(shifted)), "n": 600}


def test_differences_beyond_noise_are_marked_and_recorded(script):
    rng = np.random.default_rng(0)
    ref = {n: rng.random(600) < 0.6 for n in SHIFT_NAMES}
    same = {n: c.copy() for n, c in ref.items()}
    same["blur"][np.flatnonzero(~ref["blur"])[:2]] = True  # two faces: noise
    worse = {n: c.copy() for n, c in ref.items()}
    worse["frame"][np.flatnonzero(ref["frame"])[:60]] = False  # 10 points lower
    results = {"ref": _result(ref), "same": _result(same), "worse": _result(worse)}
    script.versus_reference(results, seed=0)

    assert "vs_reference" not in results["ref"]
    frame = results["worse"]["vs_reference"]["frame"]
    assert frame["diff"] == pytest.approx(-0.1) and frame["ci"][1] < 0
    blur = results["same"]["vs_reference"]["blur"]
    assert blur["ci"][0] <= 0 <= blur["ci"][1]
    json.dumps(results)  # the per-face arrays are gone
    rows = {line.split(" | ")[0]: line for line in script.table(results)}
    worse_row = rows["| worse − ref"].split(" | ")
    assert worse_row[1 + SHIFT_NAMES.index("frame")] == "-10.00*"
    same_row = rows["| same − ref"].split(" | ")
    assert same_row[1 + SHIFT_NAMES.index("blur")] == "+0.33"
