"""Jahromi & Fyshe's shallow, medium and deep CNNs."""

import pytest
import torch
from model_helpers import check_forward_backward

from ferlab.errors import FerlabError
from ferlab.models import create_model, get_model_entry

# Table 1 of the paper.
PAPER_PARAMS = {"shallow_cnn": 4.7e6, "medium_cnn": 2.4e6, "deep_cnn": 9.4e6}


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_parameter_count_within_15_percent_of_the_paper(name: str) -> None:
    model = create_model(name)
    assert model.input_size == (1, 48, 48)
    assert abs(_params(model) - PAPER_PARAMS[name]) <= 0.15 * PAPER_PARAMS[name]
    assert "Jahromi" in get_model_entry(name).source


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
@pytest.mark.parametrize(("in_chans", "size", "num_classes"), [(1, 48, 7), (3, 44, 8), (1, 40, 5)])
def test_forward_backward(name: str, in_chans: int, size: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_chans=in_chans, input_size=size)
    assert model.input_size == (in_chans, size, size)
    x = check_forward_backward(model, in_chans, size, num_classes)
    model.eval()  # dropout off, so the two paths must agree
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)))


def test_medium_network_keeps_the_published_shapes() -> None:
    model = create_model("medium_cnn").eval()
    # 48 → 24 → 12 → 6 through the three padded 3×3/2 poolings, 64 channels.
    assert model.forward_features(torch.zeros(1, 1, 48, 48)).shape == (1, 64, 6, 6)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size) for c in convs] == [
        (32, (5, 5)),
        (32, (4, 4)),
        (64, (5, 5)),
    ]


def test_accepts_channel_height_width_input_size() -> None:
    assert create_model("deep_cnn", in_chans=3, input_size=(3, 40, 44)).input_size == (3, 40, 44)


def test_too_small_input_is_a_ferlab_error() -> None:
    with pytest.raises(FerlabError, match="too small"):
        create_model("deep_cnn", input_size=8)


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_keras_initialisation(name: str) -> None:
    torch.manual_seed(0)
    default, keras = create_model(name), create_model(name, keras_init=True)
    assert _params(keras) == _params(default)
    layers = [m for m in keras.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    for layer in layers:
        w = layer.weight
        fan_in, fan_out = w[0].numel(), w.shape[0] * w[0][0].numel()
        bound = (6 / (fan_in + fan_out)) ** 0.5  # Glorot-uniform's limit
        assert w.abs().max() <= bound and w.abs().max() > 0.5 * bound
        assert not layer.bias.any()
    norms = [m for m in keras.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.01 and m.eps == 1e-3 for m in norms)
    # PyTorch's defaults otherwise: non-zero biases, its own batch-norm constants
    assert any(m.bias.any() for m in default.modules() if isinstance(m, torch.nn.Linear))
    assert all(m.eps == 1e-5 for m in default.modules() if isinstance(m, torch.nn.BatchNorm2d))
