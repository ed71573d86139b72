"""benchmarks/bench_speed.py's table of the runtime records (scripts/measure_runtimes.py)."""

from __future__ import annotations

import pytest

import ferlab.inference.runtimes as runtimes

# bench_speed imports the benchmark helpers, which need the training code (PyTorch).
pytest.importorskip("torch")


RECORDS = {
    # A model measured with its ten-crop and the one-thread speeds.
    "a": {
        "faces": 3589,
        "cpu": "Some CPU",
        "measured": "2026-12-05",
        "accuracy": {
            "torch-fp32": {"none": 70.0, "ten_crop": 71.0},
            "onnx-int8": {"none": 69.95, "ten_crop": 71.1},
        },
        "speed": {
            "load_average": 4.4,
            "crops_per_s_by_batch": {
                "1": {"torch-fp32": 850.0, "onnx-int8": 5128.2},
                "256": {"torch-fp32": 2742.2, "onnx-int8": 5672.0},
            },
        },
    },
    # One without ten-crop (the fast model) and without speeds (an older record).
    "b": {
        "faces": 3589,
        "cpu": "Some CPU",
        "measured": "2026-12-04",
        "accuracy": {"torch-fp32": {"none": 68.43}, "onnx-int8": {"none": 68.26}},
    },
}


@pytest.fixture
def script(benchmark_script):
    pytest.importorskip("cv2")
    return benchmark_script("bench_speed")


def test_the_table_shows_each_tta_measured_and_the_speeds(script, monkeypatch):
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: RECORDS.get(name, {}))
    lines = script.accuracy_lines(["a", "b", "unmeasured"])
    rows = [line for line in lines if line.startswith("| `")]
    assert rows == [
        "| `a` | PyTorch fp32 | 70.00 % | +0.00 | 71.00 % | +0.00 | 850 | 2,742 | 3,589 | "
        "Some CPU, 2026-12-05, load average 4.4 |",
        "| `a` | ONNX Runtime int8 (static) | 69.95 % | -0.05 | 71.10 % | +0.10 | 5,128 | 5,672 | "
        "3,589 | Some CPU, 2026-12-05, load average 4.4 |",
        "| `b` | PyTorch fp32 | 68.43 % | +0.00 | – | – | – | – | 3,589 | Some CPU, 2026-12-04 |",
        "| `b` | ONNX Runtime int8 (static) | 68.26 % | -0.17 | – | – | – | – | 3,589 | "
        "Some CPU, 2026-12-04 |",
    ]
    # Header and rows have the same number of columns.
    header = next(line for line in lines if line.startswith("| model"))
    assert all(row.count("|") == header.count("|") for row in rows)


def test_no_record_no_table(script, monkeypatch):
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: {})
    assert script.accuracy_lines(["a"]) == []


def test_found_faces_match_the_pasted_face_and_count_the_rest_as_false(script):
    truth = {"a.jpg": [12, 10, 50, 50], "b.jpg": [0, 0, 40, 40], "c.jpg": [5, 5, 30, 30]}
    boxes = {
        "a.jpg": [(10, 10, 50, 50), (200, 200, 30, 30)],  # the face and a false box
        "b.jpg": [(100, 100, 40, 40)],  # a box elsewhere only
        "c.jpg": [],
    }
    assert script.found_faces(boxes, truth) == {"faces": 1, "other_boxes": 2}
