"""Weight decay on some layers only (``optim.weight_decay_on``): Jahromi & Fyshe's L2 term on
their fully connected layers."""

from __future__ import annotations

import dataclasses

import pytest
from engine_helpers import synthetic_data

from ferlab.engine import read_checkpoint, train
from ferlab.engine.recipe import (
    DataSection,
    EvalSection,
    ModelSection,
    OptimSection,
    Recipe,
    ScheduleSection,
    TrainSection,
)
from ferlab.errors import FerlabError


def _recipe(model: str, on: list[str] | None) -> Recipe:
    return Recipe(
        name="tiny",
        model=ModelSection(name=model),
        data=DataSection(normalize="global"),
        optim=OptimSection(name="adam", lr=0.01, weight_decay=0.02, weight_decay_on=on),
        schedule=ScheduleSection(kind="constant"),
        train=TrainSection(epochs=1, batch_size=64, num_threads=1),
        eval=EvalSection(plots=False),
    )


def test_weight_decay_applies_to_the_named_layers_only(tiny_model, tmp_path):
    train(_recipe(tiny_model, ["head."]), data=synthetic_data(n=140), out_dir=tmp_path / "run")
    groups = read_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["optimizer"]
    decays = [g["weight_decay"] for g in groups["param_groups"]]
    sizes = [len(g["params"]) for g in groups["param_groups"]]
    assert decays == [0.02, 0.0]
    assert sizes[0] == 2 and sizes[1] > 0  # the tiny net's head is one Linear: weight, bias


def test_a_prefix_that_names_no_parameter_is_refused(tiny_model, tmp_path):
    recipe = _recipe(tiny_model, ["classifier."])
    with pytest.raises(FerlabError, match=r"weight_decay_on \['classifier.'\]: no parameter"):
        train(recipe, data=synthetic_data(n=140), out_dir=tmp_path / "run")
    everywhere = dataclasses.replace(recipe, optim=OptimSection(name="adam", weight_decay=0.02))
    train(everywhere, data=synthetic_data(n=140), out_dir=tmp_path / "all")
    groups = read_checkpoint(tmp_path / "all" / "last.pt")["train_state"]["optimizer"]
    assert [g["weight_decay"] for g in groups["param_groups"]] == [0.02]
