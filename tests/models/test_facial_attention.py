"""Meen et al.'s Models 1–3 and the feature-map attention layer they share."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ferlab.errors import FerlabError, UnknownNameError
from ferlab.layers import create_attention, list_attention
from ferlab.layers.feature_attention import FeatureMapAttention
from ferlab.models import create_model
from ferlab.models.facial_attention import TABLE1_VARIANTS, MultiStageAttentionNet

# A quarter-width VGG19 keeps the shape of every variant at a sixteenth of the cost.
SMALL = {"width": 0.25}


# --------------------------------------------------------------------------- the attention layer
def test_feature_map_attention_is_registered() -> None:
    assert "feature_map" in list_attention()
    layer = create_attention("feature_map", 512, features="all", combine="concat")
    assert isinstance(layer, FeatureMapAttention)
    assert layer.out_channels(1) == 513


def test_eq1_multiplies_and_eq2_adds_one_before_multiplying() -> None:
    img = torch.rand(2, 1, 44, 44)
    feats = torch.full((2, 8, 5, 5), 0.5)  # averaged to a constant 0.5 map
    eq1 = FeatureMapAttention(8, features="average", combine="multiply")(img, feats)
    eq2 = FeatureMapAttention(8, features="average", combine="weighted")(img, feats)
    torch.testing.assert_close(eq1, 0.5 * img)
    torch.testing.assert_close(eq2, 1.5 * img)


def test_all_features_give_one_product_per_map_and_image_channel() -> None:
    img = torch.rand(1, 3, 10, 10)
    feats = torch.rand(1, 4, 10, 10)
    layer = FeatureMapAttention(4, features="all", combine="multiply")
    out = layer(img, feats)
    assert out.shape == (1, layer.out_channels(3), 10, 10) == (1, 12, 10, 10)
    torch.testing.assert_close(out[:, 2 * 3 + 1], feats[:, 2] * img[:, 1])


def test_concat_interpolates_the_maps_to_the_image() -> None:
    img = torch.rand(2, 1, 44, 44)
    feats = torch.rand(2, 512, 5, 5)
    out = FeatureMapAttention(512, features="conv", combine="concat")(img, feats)
    assert out.shape == (2, 2, 44, 44)
    torch.testing.assert_close(out[:, :1], img)


def test_softmax_weighting_normalises_over_space_and_learns_a_weight_per_map() -> None:
    layer = FeatureMapAttention(3, features="all", combine="multiply", softmax=True)
    maps = layer.attention_maps(torch.randn(2, 3, 5, 5))
    # Each map sums to its number of locations times its weight (1 at initialisation).
    torch.testing.assert_close(maps.sum(dim=(2, 3)), torch.full((2, 3), 25.0))
    assert (maps > 0).all()
    assert layer.map_weights is not None and layer.map_weights.requires_grad
    uniform = layer(torch.ones(1, 1, 5, 5), torch.zeros(1, 3, 5, 5))
    torch.testing.assert_close(uniform, torch.ones(1, 3, 5, 5))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_learned_weights_and_interpolation_follow_the_maps_in_either_memory_layout(layout):
    """The layer weighs after interpolating (the cheap order, linear so the same result): it must
    equal interpolating the weighted maps of ``attention_maps``, and the weights must learn."""
    torch.manual_seed(0)
    layer = FeatureMapAttention(4, features="all", combine="concat", softmax=True)
    with torch.no_grad():
        layer.map_weights.copy_(torch.tensor([0.5, 2.0, -1.0, 3.0]))
    img = torch.rand(2, 1, 12, 12).contiguous(memory_format=layout)
    feats = torch.randn(2, 4, 5, 5).contiguous(memory_format=layout)
    out = layer(img, feats)
    expected = F.interpolate(layer.attention_maps(feats), size=(12, 12), mode="bilinear")
    torch.testing.assert_close(out[:, 1:], expected)
    out[:, 1:].sum().backward()
    assert layer.map_weights.grad is not None and (layer.map_weights.grad != 0).all()


@pytest.mark.parametrize("softmax", [False, True])
@pytest.mark.parametrize(
    ("maps_hw", "image_hw", "kernel", "padding"),
    [((5, 5), (44, 44), 3, 1), ((3, 4), (12, 9), 5, 2), ((5, 5), (5, 5), 1, 0)],
)
def test_concatenated_maps_fold_into_the_convolution_that_takes_them(
    softmax: bool, maps_hw: tuple, image_hw: tuple, kernel: int, padding: int
) -> None:
    """``layer(x, feats, conv=conv)`` skips building the concatenated input; it must be the same
    function as ``conv(layer(x, feats))``, gradients included. In float64 the two orders agree
    to rounding (about 1e-15 here); 1e-10 leaves room without hiding a wrong term."""
    torch.manual_seed(0)
    layer = FeatureMapAttention(6, features="all", combine="concat", softmax=softmax).double()
    if softmax:
        with torch.no_grad():
            layer.map_weights.copy_(torch.randn(6))
    conv = torch.nn.Conv2d(layer.out_channels(2), 4, kernel, padding=padding).double()
    x = torch.randn(2, 2, *image_hw, dtype=torch.float64, requires_grad=True)
    feats = torch.randn(2, 6, *maps_hw, dtype=torch.float64)
    inputs = [x, conv.weight, conv.bias, *layer.parameters()]
    plain, folded = conv(layer(x, feats)), layer(x, feats, conv=conv)
    torch.testing.assert_close(folded, plain, rtol=0, atol=1e-10)
    for a, b in zip(
        torch.autograd.grad(plain.square().sum(), inputs),
        torch.autograd.grad(folded.square().sum(), inputs),
        strict=True,
    ):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-9)


@pytest.mark.parametrize(
    ("combine", "conv"),
    [
        ("multiply", torch.nn.Conv2d(8, 3, 3, padding=1)),  # products keep the plain order
        ("concat", torch.nn.Conv2d(10, 3, 3, stride=2, padding=1)),  # changes the size
    ],
)
def test_the_plain_order_serves_what_does_not_fold(combine: str, conv: torch.nn.Conv2d) -> None:
    layer = FeatureMapAttention(8, features="all", combine=combine)
    x, feats = torch.rand(2, 2 if combine == "concat" else 1, 12, 12), torch.rand(2, 8, 5, 5)
    torch.testing.assert_close(layer(x, feats, conv=conv), conv(layer(x, feats)))


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [({"features": "max"}, "feature mode"), ({"combine": "add"}, "combine mode")],
)
def test_unknown_layer_options_name_the_choices(kwargs: dict, kind: str) -> None:
    with pytest.raises(UnknownNameError, match=kind):
        FeatureMapAttention(8, **kwargs)


# ----------------------------------------------------------------------------------- the models
@pytest.mark.parametrize("row", list(TABLE1_VARIANTS))
def test_every_table1_row_builds_and_classifies(row: str) -> None:
    variant = TABLE1_VARIANTS[row]
    model = create_model(variant.model, **variant.kwargs, **SMALL)
    x = torch.randn(2, *model.input_size)
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()


def test_table1_keywords_select_the_described_configurations() -> None:
    def build(row: str):  # noqa: ANN202
        v = TABLE1_VARIANTS[row]
        return create_model(v.model, **v.kwargs, **SMALL)

    # All 128 quarter-width facial features times the grey image; averaged: one channel.
    assert build("Model 1 (all features)").emotion_net.in_chans == 128
    assert build("Model 1 (averaging)").emotion_net.in_chans == 1
    # Concatenated: image + 128 maps.
    assert build("Model 2 (all features)").emotion_net.in_chans == 129
    assert build("Model 2 (all features)").attention.map_weights.numel() == 128
    assert build("Model 1 (averaging)").attention.map_weights is None
    assert build("Model 3 (emotion features)").face_net is None
    assert build("Model 3 (separately)").emotion_net.in_chans == 3
    assert max(TABLE1_VARIANTS.values(), key=lambda v: v.accuracy).model == "facial_attention_m3"


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("facial_attention_m1", {"features": "all", "combine": "multiply"}),
        ("facial_attention_m2", {"features": "conv", "combine": "concat"}),
        ("facial_attention_m3", {"mode": "separately"}),
        ("facial_attention_m3", {"mode": "combination", "fuse": "product"}),
    ],
)
def test_a_training_step_leaves_the_face_network_untouched(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, **kwargs, **SMALL)
    face_before = copy.deepcopy(model.face_net.state_dict())  # weights and BN running stats
    emotion_before = copy.deepcopy(model.emotion_net.state_dict())
    optimiser = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    model.train()
    assert not model.face_net.training, "the frozen face network must stay in eval mode"
    x, y = torch.randn(4, *model.input_size), torch.tensor([0, 1, 2, 3])
    for _ in range(2):
        optimiser.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimiser.step()
    assert all(p.grad is None for p in model.face_net.parameters())
    for key, value in model.face_net.state_dict().items():
        assert torch.equal(value, face_before[key]), f"face_net.{key} changed"
    changed = [
        k
        for k, v in model.emotion_net.state_dict().items()
        if not torch.equal(v, emotion_before[k])
    ]
    assert changed, "the emotion network did not train"


def test_eval_and_train_keep_the_face_network_frozen() -> None:
    model = create_model("facial_attention_m1", **SMALL)
    assert all(not p.requires_grad for p in model.face_net.parameters())
    assert any(p.requires_grad for p in model.emotion_net.parameters())
    model.eval().train()
    assert model.training and model.emotion_net.training and not model.face_net.training


def test_a_given_face_network_is_used_as_attention() -> None:
    torch.manual_seed(0)
    face = create_model("face_vgg19", **SMALL)
    model = create_model("facial_attention_m1", combine="multiply", face_net=face, **SMALL).eval()
    assert model.face_net is face
    x = torch.randn(2, 1, 44, 44)
    with torch.no_grad():
        before = model(x)
        for p in face.parameters():
            p.mul_(1.5)
        after = model(x)
    assert not torch.allclose(before, after), "the output ignores the face network"


def test_model3_attends_inside_the_emotion_network() -> None:
    torch.manual_seed(0)
    model = create_model("facial_attention_m3", mode="facial", **SMALL).eval()
    assert isinstance(model, MultiStageAttentionNet)
    x = torch.randn(2, 1, 44, 44)
    with torch.no_grad():
        attended = model.forward_features(x)
        plain = model.emotion_net.forward_features(x)
    assert attended.shape == plain.shape
    assert not torch.allclose(attended, plain)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("facial_attention_m3", {"mode": "both"}, "Model 3 mode"),
        ("facial_attention_m3", {"combine": "concat"}, "Model 3 combine mode"),
        ("facial_attention_m3", {"fuse": "sum"}, "fuse mode"),
        ("facial_attention_m1", {"features": "max"}, "feature mode"),
    ],
)
def test_unknown_model_options_name_the_choices(name: str, kwargs: dict, match: str) -> None:
    with pytest.raises(UnknownNameError, match=match):
        create_model(name, **kwargs, **SMALL)


def test_mismatched_face_networks_are_refused() -> None:
    face = create_model("face_vgg19", width=0.125)
    with pytest.raises(FerlabError, match="same width"):
        create_model(
            "facial_attention_m3", mode="combination", fuse="product", face_net=face, **SMALL
        )
    with pytest.raises(FerlabError, match="uses no face network"):
        create_model("facial_attention_m3", mode="emotion", face_net=face, **SMALL)
    with pytest.raises(FerlabError, match="input channel"):
        create_model("facial_attention_m1", in_chans=3, face_net=face, **SMALL)
    with pytest.raises(FerlabError, match="face_vgg19"):
        create_model("facial_attention_m1", face_net=torch.nn.Linear(2, 2), **SMALL)


@pytest.mark.parametrize("features", ["all", "average"])
def test_model2_gives_the_same_output_whether_or_not_the_first_convolution_is_watched(
    features: str,
) -> None:
    """A hook on the emotion network's first convolution (an explanation) makes the model build
    the combined input and call the convolution; otherwise the attention layer applies it (folded
    for all features). Both must be the same model: float64 agrees to rounding (1e-10, as
    above)."""
    torch.manual_seed(0)
    model = create_model("facial_attention_m2", features=features, combine="concat", **SMALL)
    model = model.double().eval()
    x = torch.randn(2, *model.input_size, dtype=torch.float64)
    unwatched = model(x)
    seen = []
    handle = model.emotion_net.stages[0][0].register_forward_hook(lambda *a: seen.append(a[2]))
    try:
        watched = model(x)
    finally:
        handle.remove()
    assert len(seen) == 1
    torch.testing.assert_close(unwatched, watched, rtol=0, atol=1e-10)


def test_eq2_with_zero_facial_features_is_the_plain_image_path() -> None:
    """Eq. 2, (1 + ffeats) · img, leaves the image as it is where the face network is silent."""
    torch.manual_seed(0)
    model = create_model("facial_attention_m1", features="average", combine="weighted", **SMALL)
    last_bn = model.face_net.stages[3][-2]  # stage four's last batch norm, before its ReLU
    assert isinstance(last_bn, torch.nn.BatchNorm2d)
    with torch.no_grad():
        last_bn.weight.zero_()
        last_bn.bias.zero_()
    model.eval()
    x = torch.randn(3, *model.input_size)
    with torch.no_grad():
        assert not model.face_net.stage_outputs(x, 4)[-1].any()
        assert torch.equal(model(x), model.emotion_net(x))


def test_the_face_network_gets_its_own_normalisation() -> None:
    """Images normalised for the emotion data are mapped onto the face data's statistics."""
    torch.manual_seed(0)
    model = create_model("facial_attention_m1", **SMALL).eval()
    pixels = torch.rand(2, 1, 44, 44)
    model.set_face_input_normalization(mean=0.5, std=0.25, face_mean=0.4, face_std=0.2)
    seen = model._face_features((pixels - 0.5) / 0.25, 4)
    with torch.no_grad():
        expected = model.face_net.stage_outputs((pixels - 0.4) / 0.2, 4)
    for got, want in zip(seen, expected, strict=True):
        torch.testing.assert_close(got, want)
    assert {"face_input_scale", "face_input_shift"} <= set(model.state_dict())
    emotion_only = create_model("facial_attention_m3", mode="emotion", **SMALL)
    with pytest.raises(FerlabError, match="no face network"):
        emotion_only.set_face_input_normalization(0.5, 0.25, 0.4, 0.2)
