"""VGG19 for 44×44 crops and the face network: layout, the (512, 5, 5) features, width."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferlab.errors import FerlabError
from ferlab.models import create_model
from ferlab.models._info import count_macs, count_params
from ferlab.models.vgg import FACE_FEATURE_STAGE, VGG, VGG19_STAGES


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def test_vgg19_has_sixteen_bn_convolutions_in_five_stages() -> None:
    model = create_model("vgg19")
    assert isinstance(model, VGG)
    convs = _convs(model)
    assert len(convs) == 16
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 16
    assert [c.out_channels for c in convs] == [64] * 2 + [128] * 2 + [256] * 4 + [512] * 8
    assert len(model.stages) == 5 and model.stage_channels == (64, 128, 256, 512, 512)
    assert model.classifier.in_features == 512 and model.classifier.out_features == 7


def test_stage_four_gives_the_papers_512x5x5_facial_features() -> None:
    model = create_model("face_vgg19").eval()
    assert model.num_classes == 2
    x = torch.randn(1, 1, 44, 44)
    with torch.no_grad():
        outputs = model.stage_outputs(x)
        early = model.stage_outputs(x, last=2)
    shapes = [tuple(o.shape[1:]) for o in outputs]
    assert shapes == [(64, 44, 44), (128, 22, 22), (256, 11, 11), (512, 5, 5), (512, 2, 2)]
    assert shapes[FACE_FEATURE_STAGE - 1] == (512, 5, 5)
    assert len(early) == 2 and torch.equal(early[1], outputs[1])
    # forward_features continues from the last stage through its max-pool: 2×2 → 1×1.
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), model.pool(outputs[-1]))


def test_parameter_and_mac_counts_follow_from_the_layer_table() -> None:
    with torch.device("meta"):  # shapes only: no weights to initialise, no arithmetic
        model = create_model("vgg19")
    params, macs, side, prev = 0, 0, 44, 1
    for channels, convs in VGG19_STAGES:
        for _ in range(convs):
            params += 9 * prev * channels + 2 * channels  # conv (no bias) + BN affine
            macs += side * side * 9 * prev * channels
            prev = channels
        side //= 2
    params += 512 * 7 + 7
    macs += 512 * 7
    assert count_params(model) == params
    assert count_macs(model, model.input_size) == macs


def test_width_scales_every_stage() -> None:
    small = create_model("vgg19", width=0.25)
    assert small.stage_channels == (16, 32, 64, 128, 128)
    assert count_params(small) < count_params(create_model("vgg19")) / 10
    face = create_model("face_vgg19", width=0.25)
    x = torch.randn(2, 1, 44, 44)
    assert small(x).shape == (2, 7) and face(x).shape == (2, 2)


def test_other_input_sizes_and_channels() -> None:
    model = create_model("vgg19", in_chans=3, num_classes=8, input_size=48, width=0.25).eval()
    assert model.input_size == (3, 48, 48)
    with torch.no_grad():
        assert model(torch.randn(2, 3, 48, 48)).shape == (2, 8)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_size": (1, 28, 28)}, "at least 32"),
        ({"input_size": (3, 44, 44)}, "in_chans"),
        ({"width": 0}, "width"),
    ],
)
def test_bad_configurations_raise_ferlab_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(FerlabError, match=match):
        create_model("vgg19", **kwargs)
