"""``ferlab.load_model``: a checkpoint as a predictor with validated inputs."""

from __future__ import annotations

import socket

import numpy as np
import pytest

import ferlab
from ferlab.engine.checkpoint import release_checkpoint
from ferlab.errors import DataError, FerlabError, UnknownNameError
from tests.engine.engine_helpers import synthetic_data, trained_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A real checkpoint: Deep-Emotion without STN, trained a few epochs on learnable data."""
    out = tmp_path_factory.mktemp("run")
    return trained_checkpoint(out, "deep_emotion_nostn", epochs=3, n=600)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_predict_proba_shape_order_and_sum(checkpoint, no_network):
    model = ferlab.load_model(checkpoint, device="cpu")
    assert model.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    faces = synthetic_data(50, seed=1).images.numpy()
    probs = model.predict_proba(faces)
    assert probs.shape == (50, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert model.predict(faces) == [model.labels[i] for i in probs.argmax(1)]


def test_learned_something(checkpoint):
    data = synthetic_data(300, seed=2)
    model = ferlab.load_model(checkpoint, device="cpu")
    acc = (
        np.array(model.predict(data.images.numpy())) == np.array(data.classes)[data.labels]
    ).mean()
    assert acc > 0.5  # chance is 1/7 on this learnable synthetic task


def test_other_sizes_single_face_and_colour(checkpoint):
    model = ferlab.load_model(checkpoint, device="cpu")
    rng = np.random.default_rng(0)
    assert model.predict_proba(rng.integers(0, 256, (3, 96, 80), dtype=np.uint8)).shape == (3, 7)
    assert model.predict_proba(rng.integers(0, 256, (48, 48), dtype=np.uint8)).shape == (1, 7)
    bgr = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    assert model.predict_proba(bgr).shape == (2, 7)
    assert model.predict_proba(np.zeros((0, 48, 48), np.uint8)).shape == (0, 7)
    # Integer-valued float input is accepted as pixel values.
    same = model.predict_proba(bgr[..., 0].astype(np.float64))
    np.testing.assert_allclose(same, model.predict_proba(bgr[..., 0]), atol=1e-6)


def test_tta_views_agree_on_labels_mostly(checkpoint):
    data = synthetic_data(200, seed=3).images.numpy()
    plain = ferlab.load_model(checkpoint, device="cpu").predict(data)
    ten = ferlab.load_model(checkpoint, device="cpu", tta="ten_crop").predict(data)
    assert np.mean(np.array(plain) == np.array(ten)) > 0.8


@pytest.mark.parametrize(
    "faces, message",
    [
        (np.zeros((2, 3, 48, 48), np.uint8), "shape"),
        (np.full((1, 48, 48), 300.0), "0-255"),
        (np.full((1, 48, 48), -1), "0-255"),
        (np.array([["a"]]), "0-255"),
        (np.zeros((1, 0, 48), np.uint8), "empty"),
    ],
)
def test_bad_faces_are_clear_errors(checkpoint, faces, message):
    with pytest.raises(DataError, match=message):
        ferlab.load_model(checkpoint, device="cpu").predict_proba(faces)


def test_unknown_names_and_paths(tmp_path, checkpoint):
    with pytest.raises(UnknownNameError, match="default"):
        ferlab.load_model("no-such-model")
    with pytest.raises(UnknownNameError, match="test-time augmentation"):
        ferlab.load_model(checkpoint, tta="rotate")
    with pytest.raises(UnknownNameError, match="device"):
        ferlab.load_model(checkpoint, device="tpu")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(FerlabError, match="junk.pt"):
        ferlab.load_model(junk)


def test_released_checkpoint_drops_training_state_and_keeps_predictions(checkpoint, tmp_path):
    released = tmp_path / "model.pt"
    meta = release_checkpoint(checkpoint, released, tta="flip", card="docs/models.md")
    assert "train_state" not in meta and meta["card"] == "docs/models.md"
    model = ferlab.load_model(released, device="cpu")
    assert model.tta == "flip"  # recorded default, used without asking
    faces = synthetic_data(40, seed=4).images.numpy()
    same = ferlab.load_model(checkpoint, device="cpu", tta="flip").predict_proba(faces)
    np.testing.assert_allclose(model.predict_proba(faces), same, atol=1e-6)


def test_bf16_precision_agrees_with_fp32(checkpoint):
    faces = synthetic_data(200, seed=5).images.numpy()
    fp32 = ferlab.load_model(checkpoint, device="cpu").predict_proba(faces)
    bf16_model = ferlab.load_model(checkpoint, device="cpu", precision="bf16")
    assert bf16_model.precision == "bf16"
    bf16 = bf16_model.predict_proba(faces)
    np.testing.assert_allclose(bf16.sum(1), 1.0, atol=1e-5)
    assert np.abs(bf16 - fp32).max() < 0.05  # bf16 keeps 8 bits of mantissa
    assert (bf16.argmax(1) == fp32.argmax(1)).mean() >= 0.95
    with pytest.raises(UnknownNameError, match="unknown precision 'fp16'"):
        ferlab.load_model(checkpoint, precision="fp16")
    with pytest.raises(FerlabError, match="bf16 is for the torch runtime"):
        ferlab.load_model(checkpoint, runtime="onnx", precision="bf16")
