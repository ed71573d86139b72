"""Recipe schema: validation messages, overrides, durations and the shipped recipe files."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferlab.engine.recipe import (
    Recipe,
    apply_overrides,
    default_recipe,
    load_recipe,
    parse_duration,
    recipe_from_dict,
    save_recipe,
)
from ferlab.errors import DataError
from ferlab.models import list_models

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*.yaml"))


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_unknown_key_names_file_key_and_suggestion(tmp_path):
    path = _write(tmp_path, "model: {name: medium_cnn}\noptim: {learnig_rate: 0.1}\n")
    with pytest.raises(DataError) as err:
        load_recipe(path)
    msg = str(err.value)
    assert str(path) in msg and "'optim.learnig_rate'" in msg and "did you mean 'lr'" in msg
    with pytest.raises(DataError, match="unknown key 'trian'; did you mean 'train'"):
        recipe_from_dict({"trian": {}})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {name: x}\ntrain: {epochs: many}", "'train.epochs' must be an integer"),
        ("model: {name: x}\ntrain: {epochs: 0}", "'train.epochs' must be positive"),
        ("model: {name: x}\noptim: {name: rmsprop}", "'optim.name' must be one of sgd, adam"),
        ("model: {name: x}\naugment: {flip: 1}", "'augment.flip' must be true or false"),
        ("model: {name: x}\ntrain: {time_budget: soon}", "cannot read duration 'soon'"),
        ("model: {name: x}\ndata: [1, 2]", "section 'data' must be a mapping"),
        ("model: {name: x}\noptim: {lr: 0.1", "not valid YAML"),
        ("- just\n- a list", "a recipe must be a YAML mapping"),
        ("train: {epochs: 3}", "names no model"),
    ],
)
def test_invalid_recipes(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        load_recipe(_write(tmp_path, text))


def test_missing_recipe_file(tmp_path):
    with pytest.raises(DataError, match="recipe file not found"):
        load_recipe(tmp_path / "missing.yaml")


def test_paths_resolve_against_the_recipe_and_round_trip(tmp_path):
    text = "model: {name: medium_cnn}\ndata: {path: data/fer.csv}\noptim: {weight_decay: 5e-4}\n"
    recipe = load_recipe(_write(tmp_path, text))
    assert recipe.name == "r"
    assert Path(recipe.data.path) == (tmp_path / "data" / "fer.csv").resolve()
    assert recipe.optim.weight_decay == 5e-4  # YAML reads 5e-4 as a string; accepted as number
    save_recipe(recipe, tmp_path / "copy.yaml")
    again = load_recipe(tmp_path / "copy.yaml")
    assert again.to_dict() | {"name": "r"} == recipe.to_dict()


def test_overrides_are_validated_and_skip_none():
    base = default_recipe("medium_cnn")
    out = apply_overrides(base, {"train.epochs": 3, "optim.lr": None, "train.time_budget": "2h"})
    assert out.train.epochs == 3 and out.optim.lr == base.optim.lr
    assert out.train.time_budget == "2h" and out.name == "medium_cnn"
    with pytest.raises(DataError, match="'train.batch_size' must be an integer"):
        apply_overrides(base, {"train.batch_size": "big"})
    with pytest.raises(DataError, match="unknown key 'train.speed'"):
        apply_overrides(base, {"train.speed": 2})


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("1.5h", 5400)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "abc", "1h30", "-5m", "0s", "2 weeks"])
def test_parse_duration_rejects(text):
    with pytest.raises(DataError):
        parse_duration(text)


def test_every_shipped_recipe_loads_and_names_a_registered_model():
    assert len(RECIPES) >= 20
    models = set(list_models())
    for path in RECIPES:
        recipe = load_recipe(path)
        assert isinstance(recipe, Recipe)
        assert recipe.model.name in models, path.name
        assert recipe.paper.source, path.name
        # Paper configurations carry the paper's number (the face network and ferlab's own
        # recipes have none).
        if recipe.model.name != "face_vgg19" and not recipe.paper.source.startswith("ferlab"):
            assert recipe.paper.reported_accuracy is not None, path.name
        if recipe.model.face_checkpoint:
            assert recipe.model.face_checkpoint.endswith(
                ("meen_face_vgg19/best.pt", "meen_small_face/best.pt")
            ), path.name
