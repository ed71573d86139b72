"""Heat maps: every zoo model, every method, the layer choice, targets, and that Grad-CAM
points at the evidence of a model trained to use one region."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ferlab
from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.explain import (
    CAM_METHODS,
    class_activation_maps,
    face_heatmap,
    overlay_heatmap,
    target_layer,
)
from tests.explain.conftest import small_model
from tests.explain.explain_helpers import heat_in_region, region_task

GRADIENT_METHODS = ("gradcam", "gradcam++", "layercam")


def _check_maps(maps: np.ndarray, shape: tuple[int, ...]) -> None:
    assert maps.shape == shape and maps.dtype == np.float32
    assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("name", [n for n in ferlab.list_models() if n != "densenet121"])
def test_gradient_methods_on_every_model(name, faces):
    model = small_model(name)
    for method in GRADIENT_METHODS:
        _check_maps(face_heatmap(model, faces, method), faces.shape)


@pytest.mark.slow
def test_densenet121_gradcam(faces):
    # Full size (the constructor has no width option): one method, one face.
    _check_maps(face_heatmap(small_model("densenet121"), faces[:1]), (1, 48, 48))


@pytest.mark.parametrize("name", ["deep_emotion", "medium_cnn", "ferlab_net", "vgg19"])
def test_scorecam(name, faces):
    _check_maps(face_heatmap(small_model(name), faces, "scorecam"), faces.shape)


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("ferlab_net", "features"),  # after the last SE gate, before global pooling
        ("resnet18", "layers"),  # the last residual block's output
        ("deep_emotion", "block2.1"),  # the last convolution, before its max-pool
        ("deep_emotion_msa", "msa"),  # MSA's own 1×1 convolutions come last
        ("vggface", "stages.3.5"),  # the in-place ReLU after the last convolution
        ("facial_attention_m1", "emotion_net.stages.4"),  # not the frozen face network
    ],
)
def test_default_layer_is_the_last_convolutional_block(name, layer):
    assert target_layer(small_model(name)) == layer


def test_layer_by_name_and_unknown_layer(faces):
    model = small_model("ferlab_net")
    early = class_activation_maps(model, faces, layer="features.6")
    assert early.layer == "features.6"
    _check_maps(early.maps, faces.shape)
    assert not np.allclose(early.maps, face_heatmap(model, faces))
    with pytest.raises(FerlabError, match="no layer 'nope'.*features"):
        face_heatmap(model, faces, layer="nope")


def test_frozen_face_network_layer_is_refused(faces):
    with pytest.raises(FerlabError, match="no gradient"):
        face_heatmap(small_model("facial_attention_m1"), faces, layer="face_net.stages.3")


def test_targets_by_index_name_and_per_face(faces):
    model = small_model("ferlab_net")
    predicted = class_activation_maps(model, faces)
    assert (predicted.targets == predicted.probs.argmax(1)).all()
    np.testing.assert_allclose(predicted.probs.sum(1), 1, atol=1e-5)
    happy = class_activation_maps(model, faces, target="happy")
    assert (happy.targets == 3).all()
    np.testing.assert_array_equal(face_heatmap(model, faces, target=3), happy.maps)
    mixed = class_activation_maps(model, faces, target=["sad", 0])
    assert mixed.targets.tolist() == [4, 0]
    with pytest.raises(UnknownNameError, match="unknown class 'joy'"):
        face_heatmap(model, faces, target="joy")
    with pytest.raises(FerlabError, match="out of range"):
        face_heatmap(model, faces, target=7)
    with pytest.raises(FerlabError, match="3 targets for 2 faces"):
        face_heatmap(model, faces, target=[0, 1, 2])


def test_unknown_method(faces):
    with pytest.raises(UnknownNameError, match="gradcam\\+\\+"):
        face_heatmap(small_model("ferlab_net"), faces, method="cam")


def test_checkpoint_maps_come_back_at_the_faces_size(emotion_model):
    """A crop-trained checkpoint: maps cover the whole face, whatever its size."""
    rng = np.random.default_rng(1)
    faces = rng.integers(0, 256, (3, 48, 48), dtype=np.uint8)
    for method in CAM_METHODS:
        _check_maps(face_heatmap(emotion_model, faces, method), faces.shape)
    larger = rng.integers(0, 256, (2, 96, 80), dtype=np.uint8)
    _check_maps(face_heatmap(emotion_model, larger), larger.shape)
    one = face_heatmap(emotion_model, rng.integers(0, 256, (48, 48), dtype=np.uint8))
    assert one.shape == (1, 48, 48)
    bgr = rng.integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    assert face_heatmap(emotion_model, bgr).shape == (2, 48, 48)


def test_model_state_is_left_as_it_was(faces):
    model = small_model("ferlab_net").train()
    face_heatmap(model, faces)
    assert model.training
    assert all(p.grad is None for p in model.parameters())  # no gradients left behind


@pytest.mark.parametrize(
    ("bad", "problem"),
    [
        (np.zeros((2, 3, 48, 48), np.uint8), "N×H×W"),
        (np.full((1, 48, 48), 300.0), "0-255"),
        (np.zeros((0, 48, 48), np.uint8), "at least one"),
        (np.array([["a"]]), "0-255"),
    ],
)
def test_bad_faces(bad, problem):
    with pytest.raises(DataError, match=problem):
        face_heatmap(small_model("deep_emotion"), bad)


def test_not_a_model():
    with pytest.raises(FerlabError, match="EmotionModel"):
        face_heatmap("default.pt", np.zeros((48, 48), np.uint8))


# --------------------------------------------------------------------- overlay


def test_overlay_gray_and_bgr():
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (96, 80), dtype=np.uint8)
    heat = rng.random((48, 48)).astype(np.float32)
    out = overlay_heatmap(gray, heat)
    assert out.shape == (96, 80, 3) and out.dtype == np.uint8
    bgr = np.stack([gray] * 3, axis=-1)
    np.testing.assert_array_equal(overlay_heatmap(bgr, heat), out)
    # alpha 0 is the image alone, alpha 1 the colours alone: hot and cold differ in hue.
    np.testing.assert_array_equal(overlay_heatmap(gray, heat, alpha=0.0), bgr)
    hot = overlay_heatmap(gray, np.ones((4, 4)), alpha=1.0)[0, 0]
    cold = overlay_heatmap(gray, np.zeros((4, 4)), alpha=1.0)[0, 0]
    assert hot[2] > hot[0] and cold[0] > cold[2]  # BGR: red for 1, blue for 0


@pytest.mark.parametrize(
    ("image", "heat", "problem"),
    [
        (np.zeros((8, 8), np.float32), np.zeros((4, 4)), "uint8"),
        (np.zeros((8, 8, 2), np.uint8), np.zeros((4, 4)), "gray H×W or BGR"),
        (np.zeros((8, 8), np.uint8), np.zeros(4), "2-D"),
        (np.zeros((8, 8), np.uint8), np.full((4, 4), np.nan), "NaN"),
    ],
)
def test_overlay_bad_inputs(image, heat, problem):
    with pytest.raises(DataError, match=problem):
        overlay_heatmap(image, heat)
    with pytest.raises(FerlabError, match="alpha"):
        overlay_heatmap(np.zeros((8, 8), np.uint8), np.zeros((4, 4)), alpha=2)


# --------------------------------------------------------------------- localisation


@pytest.mark.slow
def test_gradcam_highlights_the_region_that_decides_the_class(region_model):
    faces, labels = region_task(64, seed=1)
    result = class_activation_maps(region_model, faces)
    assert (result.targets == labels).mean() > 0.95  # it learned the task
    inside, near = heat_in_region(result.maps)
    # The region is 11 % of the image; it holds most of the heat of every face.
    assert np.median(inside) > 0.45 and inside.min() > 0.25
    assert near.mean() > 0.9


def test_works_inside_inference_mode(faces):
    """A caller serving predictions under torch.inference_mode() can still ask for gradients."""
    from ferlab.explain import filter_images

    model = small_model("deep_emotion")
    with torch.inference_mode():
        _check_maps(face_heatmap(model, faces), faces.shape)
        assert filter_images(model, [0], steps=2).images.shape == (1, 48, 48)
