"""The models' own attention read out: transformer warps, self-attention, SE gates, facial
features, and which models support which read-out."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ferlab
from ferlab.errors import FerlabError
from ferlab.explain import (
    facial_attention_maps,
    se_channel_weights,
    self_attention_maps,
    stn_warp,
    supported_methods,
)
from ferlab.inference import EmotionModel
from ferlab.inference.preprocess import Preprocess
from ferlab.inference.torch_backend import TorchBackend
from tests.explain.conftest import small_model

STN_MODELS = ("deep_emotion", "deep_emotion_msa", "vggface_stn", "vggface_stn_msa")
MSA_MODELS = ("deep_emotion_msa", "vggface_stn_msa")
SE_MODELS = ("chahed_cnn_se", "ferlab_fast", "ferlab_net")
FACIAL_MODELS = ("facial_attention_m1", "facial_attention_m2", "facial_attention_m3")


@pytest.mark.parametrize("name", ferlab.list_models())
def test_supported_methods_follow_the_layers(name):
    methods = supported_methods(small_model(name))
    assert methods[:4] == ["gradcam", "gradcam++", "layercam", "scorecam"]
    assert methods[-2:] == ["filters", "misclassified"]
    assert ("stn" in methods) == (name in STN_MODELS)
    assert ("attention" in methods) == (name in MSA_MODELS)
    assert ("se" in methods) == (name in SE_MODELS)
    assert ("facial" in methods) == (name in FACIAL_MODELS)


def test_unsupported_read_out_lists_what_is_supported(faces):
    with pytest.raises(FerlabError, match="no SpatialTransformer.*supports: gradcam.*se, filters"):
        stn_warp(small_model("ferlab_net"), faces)
    with pytest.raises(FerlabError, match="no MultipleSelfAttention"):
        self_attention_maps(small_model("deep_emotion"), faces)
    with pytest.raises(FerlabError, match="no SqueezeExcite"):
        se_channel_weights(small_model("vgg19"), faces)
    with pytest.raises(FerlabError, match="no FeatureMapAttention"):
        facial_attention_maps(small_model("resnet18"), faces)


# --------------------------------------------------------------------- spatial transformer


@pytest.mark.parametrize("name", STN_MODELS)
def test_stn_warp_at_initialisation_is_the_input(name, faces):
    warp = stn_warp(small_model(name), faces)
    np.testing.assert_allclose(warp.theta, np.tile([[1, 0, 0], [0, 1, 0]], (2, 1, 1)), atol=1e-6)
    assert warp.warped.shape == faces.shape and np.isfinite(warp.warped).all()
    np.testing.assert_allclose(warp.warped, faces.astype(np.float32), atol=1e-3)


def _shifting(model: torch.nn.Module, tx: float, ty: float) -> torch.nn.Module:
    """Make the transformer output a fixed translation θ = [[1, 0, tx], [0, 1, ty]]."""
    with torch.no_grad():
        model.stn.fc_loc[2].bias.copy_(torch.tensor([1.0, 0.0, tx, 0.0, 1.0, ty]))
    return model


def test_stn_warp_moves_the_face_as_the_network_input_moves(faces):
    # A translation of 0.25 in normalised units is 6 pixels of a 48-pixel input.
    warp = stn_warp(_shifting(small_model("deep_emotion"), 0.25, 0.0), faces)
    np.testing.assert_allclose(warp.warped[:, :, :-7], faces[:, :, 6:-1], atol=1e-3)


def test_stn_warp_of_a_crop_model_matches_the_network_input(faces):
    """On a crop-trained model θ acts on the 44×44 crop; the face-sized warp agrees with what
    the network itself computes inside the crop."""
    network = _shifting(small_model("deep_emotion", input_size=44), 0.2, -0.1)
    meta = {
        "classes": ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
        "input_size": (1, 44, 44),
        "preprocess": Preprocess(image_size=48, crop=44),
        "model": {"name": "deep_emotion"},
    }
    model = EmotionModel(TorchBackend(network), meta)
    warp = stn_warp(model, faces)
    np.testing.assert_allclose(warp.theta[0], [[1, 0, 0.2 * 44 / 48], [0, 1, -0.1 * 44 / 48]])
    crop = torch.from_numpy(faces[:, None, 2:46, 2:46]).float()
    with torch.no_grad():
        inside, _ = network.stn.transform(crop)
    # Away from the crop's border (where the network samples zero padding and the face-sized
    # warp samples real pixels) the two agree.
    np.testing.assert_allclose(warp.warped[:, 8:40, 8:40], inside[:, 0, 6:38, 6:38], atol=1e-3)


# --------------------------------------------------------------------- self-attention


@pytest.mark.parametrize("name", MSA_MODELS)
def test_self_attention_maps(name, faces):
    model = small_model(name)
    (maps,) = self_attention_maps(model, faces)
    assert maps.layer == "msa" and maps.query == (23.5, 23.5)
    heads = len(model.msa.heads)
    assert maps.heads.shape == (2, heads, 48, 48) and maps.combined.shape == (2, 48, 48)
    assert np.isfinite(maps.heads).all() and (maps.heads > 0).all()
    # Units of uniform attention: each head's map averages about 1 over the face.
    np.testing.assert_allclose(maps.heads.mean(axis=(2, 3)), 1.0, rtol=0.15)
    np.testing.assert_allclose(maps.weights.sum(1), 1.0, atol=1e-5)
    assert not model.msa.record  # the switch is put back
    corner = self_attention_maps(model, faces, query=(2, 2))[0]
    assert corner.query == (2.0, 2.0) and not np.allclose(corner.heads, maps.heads)


def test_self_attention_query_must_lie_on_the_face(faces):
    with pytest.raises(FerlabError, match="outside"):
        self_attention_maps(small_model("deep_emotion_msa"), faces, query=(48, 10))


# --------------------------------------------------------------------- squeeze-and-excitation


@pytest.mark.parametrize("name", SE_MODELS)
def test_se_channel_weights(name, faces):
    model = small_model(name)
    gates = se_channel_weights(model, np.stack([faces[0], faces[0] // 4]))  # bright, dark
    layers = [n for n, m in model.named_modules() if type(m).__name__ == "SqueezeExcite"]
    assert list(gates) == layers
    for name_, weights in gates.items():
        module = dict(model.named_modules())[name_]
        assert weights.shape == (2, module.channels)
        assert ((weights > 0) & (weights < 1)).all()
        assert not np.allclose(weights[0], weights[1])  # they depend on the face
        assert not module.record


# --------------------------------------------------------------------- facial features


@pytest.mark.parametrize(
    ("name", "kwargs", "layers"),
    [
        ("facial_attention_m1", {"features": "all"}, ["attention"]),
        ("facial_attention_m1", {"features": "average", "combine": "multiply"}, ["attention"]),
        ("facial_attention_m2", {}, ["attention"]),
        ("facial_attention_m2", {"features": "conv", "combine": "weighted"}, ["attention"]),
        (
            "facial_attention_m3",
            {},
            [f"{kind}_attention.{i}" for kind in ("input", "stage") for i in range(3)],
        ),
        ("facial_attention_m3", {"mode": "emotion"}, [f"stage_attention.{i}" for i in range(3)]),
        (
            "facial_attention_m3",
            {"mode": "combination"},
            [f"stage_attention.{i}" for i in range(3)],
        ),
    ],
)
def test_facial_attention_maps(name, kwargs, layers, faces):
    maps = facial_attention_maps(small_model(name, **kwargs), faces)
    assert [m.layer for m in maps] == layers
    for m in maps:
        for image in (m.maps, m.eq1, m.eq2):
            assert image.shape == faces.shape and np.isfinite(image).all()
        assert m.eq1.min() >= 0 and m.eq1.max() <= 1 and m.eq2.max() <= 1
        on_stage = m.layer.startswith("stage_attention")
        assert m.applied_to.startswith("stage ") if on_stage else m.applied_to == "input"
    if name == "facial_attention_m3":
        assert [m.grid for m in maps[-3:]] == [(22, 22), (11, 11), (5, 5)]
        assert [m.applied_to for m in maps[-3:]] == ["stage 2", "stage 3", "stage 4"]


def test_facial_map_is_the_one_the_model_multiplies_the_image_with():
    """Model 1 with Eq. 1: the emotion network's input is exactly ``map · img``."""
    model = small_model("facial_attention_m1", combine="multiply")
    faces = np.random.default_rng(3).integers(0, 256, (2, 44, 44), dtype=np.uint8)
    seen = {}

    def keep(_module, inp, _out) -> None:
        seen["x"] = inp[0]

    hook = model.emotion_net.stages[0][0].register_forward_hook(keep)
    (fmap,) = facial_attention_maps(model, faces)
    hook.remove()
    expected = fmap.maps * faces.astype(np.float32) / 255
    np.testing.assert_allclose(seen["x"][:, 0].numpy(), expected, rtol=1e-4, atol=1e-6)
    img = faces.astype(np.float32) / 255
    for shown, product in ((fmap.eq1, fmap.maps * img), (fmap.eq2, (1 + fmap.maps) * img)):
        np.testing.assert_allclose(shown, product / product.max(axis=(1, 2), keepdims=True))
