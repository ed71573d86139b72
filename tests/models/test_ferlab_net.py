"""ferlab_net's squeeze-and-excitation switch: off for the ablation, the default unchanged."""

from __future__ import annotations

import torch

import ferlab
from ferlab.engine.finetune import load_initial_weights, read_source


def _se_keys(keys) -> set[str]:
    return {k for k in keys if ".fc1." in k or ".fc2." in k}


def test_the_default_architecture_still_takes_the_shipped_weights_exactly():
    path, source = read_source("default")
    network = ferlab.create_model("ferlab_net", **source["model"]["kwargs"])
    network.load_state_dict(source["state_dict"], strict=True)
    own = network.state_dict()
    assert set(own) == set(source["state_dict"]) and len(_se_keys(own)) == 8  # 2 SE blocks
    assert all(torch.equal(own[k], v) for k, v in source["state_dict"].items())


def test_without_se_every_other_shipped_tensor_loads_under_its_own_name():
    path, source = read_source("default")
    kwargs = {**source["model"]["kwargs"], "se": False}
    network = ferlab.create_model("ferlab_net", **kwargs)
    theirs = source["state_dict"]
    assert set(network.state_dict()) == set(theirs) - _se_keys(theirs)
    provenance = load_initial_weights(network, "ferlab_net", kwargs, path, source)
    assert provenance["fresh"] == [] and set(provenance["unused"]) == _se_keys(theirs)
    own = network.state_dict()
    assert all(torch.equal(own[k], theirs[k]) for k in own)
    with torch.no_grad():
        assert network.eval()(torch.zeros(2, 1, 44, 44)).shape == (2, 7)
