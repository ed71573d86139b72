"""ResNet18 and DenseNet121 for 48×48 faces: block structure and the small-image stem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferlab.errors import FerlabError
from ferlab.models import create_model
from ferlab.models.resnet import BasicBlock


def _build_meta(name: str, **kwargs: object) -> nn.Module:
    # Structure and shapes only: the meta device skips weight initialisation and arithmetic.
    with torch.device("meta"):
        return create_model(name, **kwargs)


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_small_image_stem_is_a_stride_one_3x3_conv_without_max_pool(name: str) -> None:
    model = _build_meta(name)
    assert model.input_size == (1, 48, 48)
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    assert first.kernel_size == (3, 3) and first.stride == (1, 1) and first.in_channels == 1
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())


def test_resnet18_has_eight_basic_blocks_over_four_stages() -> None:
    model = _build_meta("resnet18")
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert len(blocks) == 8
    assert [b.conv2.out_channels for b in blocks] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [b.conv1.stride[0] for b in blocks] == [1, 1, 2, 1, 2, 1, 2, 1]
    # 1 stem + 16 block convolutions + 1 classifier = 18 weighted layers (projections aside).
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(convs) + 1 == 18
    with torch.device("meta"):
        features = model.forward_features(torch.zeros(2, 1, 48, 48))
    assert features.shape == (2, 512, 6, 6)


def test_densenet121_has_121_weighted_layers_and_1024_features() -> None:
    model = _build_meta("densenet121")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    # stem + 58 dense layers × 2 + 3 transitions = 120 convolutions, + the classifier.
    assert len(convs) + len(linears) == 121
    assert sum(m.out_channels == 32 and m.kernel_size == (3, 3) for m in convs) == 58
    assert model.classifier.in_features == 1024
    with torch.device("meta"):
        features = model.forward_features(torch.zeros(2, 1, 48, 48))
    assert features.shape == (2, 1024, 6, 6)


@pytest.mark.parametrize("name", ["resnet18", "densenet121"])
def test_colour_input_and_eight_classes(name: str) -> None:
    model = _build_meta(name, in_chans=3, num_classes=8, input_size=40)
    assert model.input_size == (3, 40, 40)
    with torch.device("meta"):
        assert model(torch.zeros(2, 3, 40, 40)).shape == (2, 8)


def test_resnet_block_shortcut_projects_only_when_the_shape_changes() -> None:
    assert isinstance(BasicBlock(64, 64).shortcut, nn.Identity)
    block = BasicBlock(64, 128, stride=2)
    assert isinstance(block.shortcut, nn.Sequential)
    assert block(torch.randn(1, 64, 8, 8)).shape == (1, 128, 4, 4)


def test_densenet_refuses_inputs_its_pools_cannot_take() -> None:
    with pytest.raises(FerlabError, match="at least 8"):
        create_model("densenet121", input_size=6)
