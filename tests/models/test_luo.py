"""Luo's three-block CNN (Chahed's) with and without squeeze-and-excitation."""

import pytest
import torch
from model_helpers import check_forward_backward
from torch import nn

from ferlab.layers.squeeze_excite import SqueezeExcite
from ferlab.models import create_model


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", ["chahed_cnn", "chahed_cnn_se"])
@pytest.mark.parametrize(("in_chans", "size", "num_classes"), [(1, 48, 7), (3, 44, 8), (1, 40, 7)])
def test_forward_backward(name: str, in_chans: int, size: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_chans=in_chans, input_size=size)
    check_forward_backward(model, in_chans, size, num_classes)


def test_se_block_sits_after_each_blocks_convolutions_before_its_pool() -> None:
    model = create_model("chahed_cnn_se")
    assert len(model.features) == 3
    for block in model.features:
        kinds = [type(m) for m in block]
        assert kinds[-2:] == [SqueezeExcite, nn.MaxPool2d]
        assert kinds.count(nn.Conv2d) == 2


def test_se_variant_differs_only_by_its_se_blocks() -> None:
    plain, with_se = create_model("chahed_cnn"), create_model("chahed_cnn_se")
    se_params = sum(_params(m) for m in with_se.modules() if isinstance(m, SqueezeExcite))
    assert se_params > 0
    assert _params(with_se) == _params(plain) + se_params
    assert not any(isinstance(m, SqueezeExcite) for m in plain.modules())


def test_returns_logits_not_probabilities() -> None:
    model = create_model("chahed_cnn").eval()
    with torch.no_grad():
        logits = model(torch.randn(4, 1, 48, 48))
    # A softmax output would sum to 1 on every row; the loss applies the softmax instead.
    assert not torch.allclose(logits.sum(1), torch.ones(4))
