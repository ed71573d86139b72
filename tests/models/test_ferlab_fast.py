"""FerlabFast: the slim FerlabNet behind the shipped ``fast`` model."""

import pytest
import torch
from model_helpers import check_forward_backward

from ferlab.layers.squeeze_excite import SqueezeExcite
from ferlab.models import create_model, get_model_entry, list_models
from ferlab.models._info import model_info
from ferlab.models.ferlab_net import FerlabNet


@pytest.mark.parametrize(("in_chans", "size", "num_classes"), [(1, 44, 7), (1, 48, 8), (3, 32, 7)])
def test_forward_backward(in_chans: int, size: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model("ferlab_fast", num_classes=num_classes, in_chans=in_chans, input_size=size)
    check_forward_backward(model, in_chans, size, num_classes)


def test_registered_as_a_slim_ferlab_net() -> None:
    assert "ferlab_fast" in list_models()
    assert "distilled" in get_model_entry("ferlab_fast").source
    model = create_model("ferlab_fast")
    assert isinstance(model, FerlabNet) and model.input_size == (1, 44, 44)
    convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 32, 64, 64, 128, 128, 128]
    assert sum(isinstance(m, SqueezeExcite) for m in model.features) == 2
    # Keyword variants still reach FerlabNet, as for every zoo model.
    assert create_model("ferlab_fast", drop_rate=0.5).head[2].p == 0.5


def test_costs_a_sixth_of_ferlab_net() -> None:
    """The issue's "a fraction of ferlab_net's cost": counted, not timed."""
    fast, full = model_info("ferlab_fast"), model_info("ferlab_net")
    assert 10 <= fast.mflops <= 20
    assert fast.mflops < full.mflops / 5
    assert fast.params < full.params / 4
