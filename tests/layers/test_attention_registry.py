"""The attention layers are built by name through ``ferlab.layers.create_attention``."""

import pytest

from ferlab.errors import UnknownNameError
from ferlab.layers import create_attention, list_attention
from ferlab.layers.self_attention import MultipleSelfAttention, SelfAttention
from ferlab.layers.spatial_transformer import SpatialTransformer
from ferlab.layers.squeeze_excite import SqueezeExcite


@pytest.mark.parametrize(
    ("name", "kwargs", "cls"),
    [
        ("se", {"reduction": 4}, SqueezeExcite),
        ("stn", {"input_size": 48}, SpatialTransformer),
        ("self_attention", {}, SelfAttention),
        ("msa", {"spatial_size": 8, "heads": 2}, MultipleSelfAttention),
    ],
)
def test_create_attention_by_name(name: str, kwargs: dict, cls: type) -> None:
    assert name in list_attention()
    layer = create_attention(name, 16, **kwargs)
    assert type(layer) is cls


def test_unknown_attention_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_attention("no_such_attention", 16)
    message = str(info.value)
    assert "no_such_attention" in message
    for name in ("se", "stn", "self_attention", "msa"):
        assert name in message
