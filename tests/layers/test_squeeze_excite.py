"""Squeeze-and-excitation: shape, gate range, channel scaling and the recorded weights."""

import pytest
import torch

from ferlab.errors import FerlabError
from ferlab.layers.squeeze_excite import SqueezeExcite


def test_output_is_input_scaled_per_channel_by_gates_in_0_1() -> None:
    torch.manual_seed(0)
    se = SqueezeExcite(32, reduction=8)
    x = torch.randn(3, 32, 5, 7)
    y = se(x)
    assert y.shape == x.shape
    weights = se.channel_weights(x)
    assert weights.shape == (3, 32)
    assert bool(((weights > 0) & (weights < 1)).all())
    torch.testing.assert_close(y, x * weights[:, :, None, None])
    # A gate below 1 can only shrink a value.
    assert bool((y.abs() <= x.abs()).all())


def test_bottleneck_width_and_its_floor() -> None:
    assert SqueezeExcite(64).hidden == 4
    assert SqueezeExcite(4, reduction=16).hidden == 1  # narrower than r: floor of 1
    assert SqueezeExcite(4, reduction=16, min_hidden=2).hidden == 2


def test_weights_are_recorded_only_when_asked() -> None:
    se = SqueezeExcite(8, reduction=2)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    se(x)
    assert se.last_weights is None
    se.record = True
    se(x)
    assert se.last_weights is not None
    assert se.last_weights.shape == (2, 8)
    assert not se.last_weights.requires_grad
    torch.testing.assert_close(se.last_weights, se.channel_weights(x).detach())


def test_gradients_reach_both_layers() -> None:
    se = SqueezeExcite(8, reduction=2)
    se(torch.randn(2, 8, 4, 4)).sum().backward()
    assert se.fc1.weight.grad is not None and se.fc2.weight.grad is not None
    assert torch.isfinite(se.fc1.weight.grad).all()


def test_invalid_reduction_is_a_ferlab_error() -> None:
    with pytest.raises(FerlabError, match="reduction"):
        SqueezeExcite(8, reduction=0)
