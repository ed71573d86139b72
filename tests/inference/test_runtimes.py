"""The default runtime: the fastest available within 0.1 point of fp32, and threads.

Availability is simulated by hiding a library from the import system (``sys.modules[name] =
None`` makes ``import`` fail and ``find_spec`` find nothing), as on a machine without it.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import ferlab.inference.runtimes as runtimes
from ferlab.errors import FerlabError
from ferlab.inference import load_model
from ferlab.inference.shipped import int8_file, model_file

FACES = np.random.default_rng(0).integers(0, 256, (3, 48, 48), dtype=np.uint8)


def hide(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)


def record(int8_drop: float, bf16_drop: float) -> dict:
    ref = {"none": 70.0, "ten_crop": 71.0}
    return {
        "accuracy": {
            "torch-fp32": ref,
            "onnx-fp32": ref,
            "onnx-int8": {k: v - int8_drop for k, v in ref.items()},
            "torch-bf16": {k: v + bf16_drop for k, v in ref.items()},
        }
    }


def choose(name: str = "default", device: str = "cpu") -> tuple[str, str]:
    return runtimes.choose_runtime(name, model_file(name), int8_file(name), device)


def test_reduced_precisions_only_within_a_tenth_of_a_point(monkeypatch):
    pytest.importorskip("onnxruntime")
    if int8_file("default") is None:
        pytest.skip("the default model ships no int8 twin in this tree")
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: record(0.08, 0.0))
    assert choose() == ("onnx", "int8")
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: record(0.2, 0.0))
    assert choose() == ("onnx", "fp32")
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: {})  # never measured
    assert choose() == ("onnx", "fp32")


def test_a_record_missing_a_tta_does_not_qualify():
    rec = record(0.0, 0.0)
    del rec["accuracy"]["onnx-int8"]["ten_crop"]
    assert not runtimes.within_fp32(rec, "onnx-int8")
    assert runtimes.within_fp32(rec, "torch-bf16")


def test_the_shipped_default_runs_on_onnx_runtime_when_installed():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("torch")
    model = load_model("default")
    assert model.runtime == "onnx"
    want = load_model("default", runtime="torch").predict_proba(FACES)
    # int8 / fp32 ONNX against fp32 PyTorch: the same decisions on these faces, close values.
    got = model.predict_proba(FACES)
    assert got.shape == want.shape
    assert np.abs(got - want).max() < 0.05


def test_without_onnx_runtime_the_default_runs_on_pytorch(monkeypatch):
    pytest.importorskip("torch")
    hide(monkeypatch, "onnxruntime")
    monkeypatch.setattr(runtimes, "native_bf16", lambda: False)
    model = load_model("default", tta="none")
    assert (model.runtime, model.precision) == ("torch", "fp32")
    assert model.predict_proba(FACES).shape == (3, 7)


def test_bf16_needs_native_bf16_and_a_record(monkeypatch):
    pytest.importorskip("torch")
    hide(monkeypatch, "onnxruntime")
    monkeypatch.setattr(runtimes, "native_bf16", lambda: True)
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: record(0.0, -0.05))
    assert choose() == ("torch", "bf16")
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: record(0.0, -0.3))
    assert choose() == ("torch", "fp32")
    monkeypatch.setattr(runtimes, "native_bf16", lambda: False)
    monkeypatch.setattr(runtimes, "runtime_record", lambda name: record(0.0, 0.0))
    assert choose() == ("torch", "fp32")


def test_without_pytorch_the_default_runs_on_onnx_runtime(monkeypatch):
    pytest.importorskip("onnxruntime")
    hide(monkeypatch, "torch")
    model = load_model("default", tta="none", precision="fp32")
    assert (model.runtime, model.precision) == ("onnx", "fp32")
    assert model.predict_proba(FACES).shape == (3, 7)


def test_a_forced_runtime_is_kept(monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    model = load_model("default", runtime="torch")
    assert (model.runtime, model.precision) == ("torch", "fp32")
    model = load_model("default", runtime="onnx")
    assert (model.runtime, model.precision) == ("onnx", "fp32")
    with pytest.raises(FerlabError, match="int8 is for the onnx runtime"):
        load_model("default", runtime="torch", precision="int8")


def test_threads_from_the_option_else_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert runtimes.thread_count() == 3
    assert runtimes.thread_count(1) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert runtimes.thread_count() is None
    with pytest.raises(FerlabError, match="threads must be 1 or more"):
        runtimes.thread_count(0)


def test_onnx_sessions_get_the_thread_count(monkeypatch):
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    model = load_model("default", runtime="onnx")
    assert model.network.get_session_options().intra_op_num_threads == 1
    model = load_model("default", runtime="onnx", threads=2)
    assert model.network.get_session_options().intra_op_num_threads == 2
