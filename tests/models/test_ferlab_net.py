"""ferlab_net's squeeze-and-excitation switch: off for the ablation, the default unchanged."""

from __future__ import annotations

import pytest
import torch

import ferlab
from ferlab.engine.finetune import load_initial_weights, read_source
from ferlab.errors import FerlabError
from ferlab.layers.squeeze_excite import SqueezeExcite
from ferlab.models.ferlab_net import fold_se


def _se_keys(keys) -> set[str]:
    return {k for k in keys if ".fc1." in k or ".fc2." in k}


def test_the_shipped_default_is_ferlab_net_without_se_and_loads_exactly():
    """Its SE gates were folded into the next convolutions at release (scripts/fold_se.py)."""
    path, source = read_source("default")
    assert source["model"]["kwargs"]["se"] is False
    network = ferlab.create_model("ferlab_net", **source["model"]["kwargs"])
    network.load_state_dict(source["state_dict"], strict=True)
    own = network.state_dict()
    assert set(own) == set(source["state_dict"]) and not _se_keys(own)
    assert all(torch.equal(own[k], v) for k, v in source["state_dict"].items())


def test_without_se_every_other_tensor_loads_under_its_own_name(tmp_path):
    kwargs = {"num_classes": 7, "in_chans": 1, "input_size": 44}
    with_se = ferlab.create_model("ferlab_net", **kwargs)
    theirs = with_se.state_dict()
    assert len(_se_keys(theirs)) == 8  # 2 SE blocks
    path = tmp_path / "source.pt"
    source = {
        "model": {"name": "ferlab_net", "kwargs": kwargs},
        "state_dict": theirs,
        "classes": list("abcdefg"),
    }
    torch.save(source, path)
    network = ferlab.create_model("ferlab_net", **kwargs, se=False)
    assert set(network.state_dict()) == set(theirs) - _se_keys(theirs)
    provenance = load_initial_weights(network, "ferlab_net", {**kwargs, "se": False}, path, source)
    assert provenance["fresh"] == [] and set(provenance["unused"]) == _se_keys(theirs)
    own = network.state_dict()
    assert all(torch.equal(own[k], theirs[k]) for k in own)
    with torch.no_grad():
        assert network.eval()(torch.zeros(2, 1, 44, 44)).shape == (2, 7)


def test_constant_gates_fold_exactly_into_the_next_layer():
    torch.manual_seed(0)
    kwargs = {
        "input_size": 24,
        "stages": ((8,), (16,), (32,)),
        "se_stages": (1, 2),
        "se_reduction": 4,
    }
    network = ferlab.create_model("ferlab_net", **kwargs).eval()
    gates = [torch.rand(16) * 0.8 + 0.1, torch.rand(32) * 0.8 + 0.1]
    folded = fold_se(network, gates)
    assert not any(isinstance(m, SqueezeExcite) for m in folded.modules())
    plain = ferlab.create_model("ferlab_net", **kwargs, se=False)
    plain.load_state_dict(folded.state_dict())  # the se=False network's layout exactly
    blocks = [m for m in network.features if isinstance(m, SqueezeExcite)]
    for block, gate in zip(blocks, gates, strict=True):
        block.channel_weights = lambda x, g=gate: g.expand(x.shape[0], -1)
    x = torch.randn(3, 1, 24, 24)
    with torch.no_grad():
        assert torch.allclose(folded(x), network(x), atol=1e-5)
    with pytest.raises(FerlabError, match="has 2 SE blocks, got 1"):
        fold_se(network, gates[:1])
