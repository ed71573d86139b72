"""Caciolai's custom VGGFace with and without spatial transformer and Multiple Self-Attention."""

import pytest
import torch
from model_helpers import check_forward_backward
from torch import nn

from ferlab.layers.self_attention import MultipleSelfAttention
from ferlab.layers.spatial_transformer import SpatialTransformer
from ferlab.models import create_model

NAMES = ["vggface", "vggface_stn", "vggface_stn_msa"]


@pytest.mark.parametrize(
    ("name", "in_chans", "size", "num_classes"),
    [("vggface", 1, 48, 7), ("vggface_stn", 3, 44, 8), ("vggface_stn_msa", 1, 40, 8)],
)
def test_forward_backward(name: str, in_chans: int, size: int, num_classes: int) -> None:
    torch.manual_seed(0)
    # A narrower head than VGG16's 4096 keeps the test fast; the head is checked below.
    model = create_model(
        name, num_classes=num_classes, in_chans=in_chans, input_size=size, hidden=256
    )
    check_forward_backward(model, in_chans, size, num_classes, every_param=False)


def test_backbone_is_four_stacks_of_two_bn_relu_convolutions() -> None:
    model = create_model("vggface", hidden=64)
    widths = []
    for stage in model.stages:
        kinds = [type(m) for m in stage]
        assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] * 2 + [nn.MaxPool2d]
        widths.append(stage[0].out_channels)
    assert widths == [64, 128, 256, 512]
    assert model.forward_features(torch.zeros(2, 1, 48, 48)).shape == (2, 512, 3, 3)


def test_default_head_is_vgg16s() -> None:
    model = create_model("vggface")
    # The paper reports no parameter count; VGG16's head holds most of these 40 M.
    assert 40e6 < sum(p.numel() for p in model.parameters()) < 41e6
    linears = [m for m in model.head if isinstance(m, nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [
        (512 * 3 * 3, 4096),
        (4096, 4096),
        (4096, 7),
    ]


def test_variants_place_stn_on_the_input_and_msa_after_the_first_stack() -> None:
    assert create_model("vggface", hidden=64).stn is None
    assert create_model("vggface_stn", hidden=64).msa is None
    model = create_model("vggface_stn_msa", hidden=64)
    assert isinstance(model.stn, SpatialTransformer) and model.stn.fc_loc[0].in_features == 640
    assert isinstance(model.msa, MultipleSelfAttention)
    assert model.msa.spatial_size == (24, 24)


def test_attention_modules_are_the_identity_at_init() -> None:
    torch.manual_seed(0)
    full = create_model("vggface_stn_msa", input_size=40, hidden=64).eval()
    plain = create_model("vggface", input_size=40, hidden=64).eval()
    plain.load_state_dict(full.state_dict(), strict=False)
    x = torch.randn(2, 1, 40, 40)
    with torch.no_grad():
        torch.testing.assert_close(plain(x), full(x), atol=1e-4, rtol=1e-4)
