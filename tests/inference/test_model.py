"""``EmotionModel`` and ``load_model``: the scikit-learn-like interface, the runtime chosen where
PyTorch is missing, and the commands that need PyTorch saying which extra installs it."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ferlab
import ferlab.inference.load as load
from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.inference.onnx_backend import softmax


@pytest.fixture(scope="module")
def model() -> ferlab.EmotionModel:
    return ferlab.load_model("default", runtime="onnx", device="cpu")


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (5, 48, 48), dtype=np.uint8)


def test_scikit_learn_style_interface(model, faces):
    assert list(model.classes_) == list(model.labels) and model.tta == "ten_crop"
    probs = model.predict_proba(faces)
    assert probs.shape == (5, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    predicted = model.predict(faces)
    assert model.score(faces, predicted) == 1.0
    assert model.score(faces, [model.labels.index(p) for p in predicted]) == 1.0
    wrong = [model.labels[(model.labels.index(p) + 1) % 7] for p in predicted]
    assert model.score(faces, wrong) == 0.0
    with pytest.raises(DataError, match="not one of the model's labels"):
        model.score(faces, ["calm"] * 5)
    with pytest.raises(DataError, match="5 faces"):
        model.score(faces, ["happy"])


def test_with_tta_shares_the_network(model, faces):
    plain = model.with_tta("none")
    assert plain.network is model.network and model.tta == "ten_crop"
    x = plain.preprocess(faces, "none")[0]
    np.testing.assert_array_equal(plain.predict_proba(faces), softmax(plain.backend.logits(x)))
    with pytest.raises(UnknownNameError):
        model.with_tta("twelve")


def test_auto_runtime_is_onnx_without_pytorch(monkeypatch):
    monkeypatch.setattr(load, "torch_installed", lambda: False)
    model = ferlab.load_model("ferplus")
    assert model.runtime == "onnx" and len(model.labels) == 8
    with pytest.raises(FerlabError, match="bf16 is for the torch runtime"):
        ferlab.load_model("default", runtime="onnx", precision="bf16")
    with pytest.raises(UnknownNameError, match="device"):
        ferlab.load_model("default", device="gpu")


def _without_torch(code: str) -> subprocess.CompletedProcess:
    """Run Python code where ``import torch`` fails, as in the plain (torch-free) install."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['torch'] = None\n" + code],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "luo_cnn"],
        ["evaluate", "default", "--data", "x.csv"],
        ["export", "default", "--out", "x.onnx"],
        ["explain", "default", "--method", "filters", "--out", "x"],
    ],
)
def test_commands_that_need_pytorch_name_the_extra(argv):
    done = _without_torch(f"from ferlab.cli.app import main; main({argv!r})")
    assert done.returncode == 2, done.stderr
    assert "pip install 'ferlab[train]'" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_the_torch_runtime_without_pytorch_names_the_extra():
    done = _without_torch(
        "import ferlab\n"
        "try:\n    ferlab.load_model('default', runtime='torch')\n"
        "except ferlab.FerlabError as e:\n    print(e)"
    )
    assert done.returncode == 0 and "pip install 'ferlab[train]'" in done.stdout
