"""Emotion names: ferlab's spelling everywhere, FER+'s spelling accepted wherever one is typed
or read from an older file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ferlab
from ferlab.data import FER2013_CLASSES, FERPLUS_CLASSES, FERPLUS_VOTE_COLUMNS
from ferlab.engine.checkpoint import FORMAT, atomic_save, read_checkpoint
from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.inference import metadata
from ferlab.labels import (
    ALIASES,
    EMOTIONS,
    canonical_label,
    canonical_labels,
    canonical_metrics,
    label_index,
    typed_label,
)
from ferlab.light import LightMapper, parse_color_overrides
from ferlab.recognize.draw import label_color

OLD_FERPLUS = FERPLUS_VOTE_COLUMNS  # what FER+ models wrote before the names were aligned


def test_ferplus_uses_the_default_models_names_plus_contempt():
    assert FERPLUS_CLASSES == (
        "neutral",
        "happy",
        "surprise",
        "sad",
        "angry",
        "disgust",
        "fear",
        "contempt",
    )
    assert set(FERPLUS_CLASSES) == {*FER2013_CLASSES, "contempt"} == set(EMOTIONS)
    assert canonical_labels(OLD_FERPLUS) == FERPLUS_CLASSES


def test_accepted_spellings_and_other_names():
    for alias, name in ALIASES.items():
        assert canonical_label(alias) == typed_label(f" {alias.upper()} ") == name
    # Names read from files change only when FER+ spelt them; typed names ignore case.
    assert canonical_label("Happy") == "Happy" and typed_label("Happy") == "happy"
    assert canonical_label("Cat") == "Cat" and typed_label(" Cat ") == "Cat"
    assert label_index("happiness", FER2013_CLASSES) == 3
    assert label_index("happy", OLD_FERPLUS) == 1
    with pytest.raises(UnknownNameError, match="joy.*angry, disgust"):
        label_index("joy", FER2013_CLASSES)
    with pytest.raises(DataError, match="m.json.*'angry' twice.*'angry'"):
        canonical_labels(["anger", "angry"], path="m.json")
    old = {"test": {"accuracy": 0.9, "per_class": {"happiness": 0.8}}, "epochs": [1]}
    assert canonical_metrics(old) == {
        "test": {"accuracy": 0.9, "per_class": {"happy": 0.8}},
        "epochs": [1],
    }
    assert old["test"]["per_class"] == {"happiness": 0.8}  # a copy: the input is unchanged


def _old_checkpoint(path: Path) -> Path:
    """A tiny 8-class checkpoint that names its classes and metrics as FER+ spells them."""
    kwargs = {"num_classes": 8, "input_size": 48, "stages": ((8,), (8,)), "se_stages": ()}
    network = ferlab.create_model("ferlab_net", **kwargs)
    atomic_save(
        {
            "format": FORMAT,
            "format_version": 1,
            "model": {"name": "ferlab_net", "kwargs": kwargs},
            "state_dict": network.state_dict(),
            "classes": list(OLD_FERPLUS),
            "label_mode": "ferplus-majority",
            "input_size": (1, 48, 48),
            "preprocess": {
                "image_size": 48,
                "crop": 48,
                "hist_eq": False,
                "mean": 0.5,
                "std": 0.25,
            },
            "metrics": {"test": {"per_class": {c: 0.5 for c in OLD_FERPLUS}}},
        },
        path,
    )
    return path


def test_old_checkpoints_and_exports_come_out_with_the_new_names(tmp_path):
    path = _old_checkpoint(tmp_path / "old.pt")
    ckpt = read_checkpoint(path)
    assert tuple(ckpt["classes"]) == FERPLUS_CLASSES
    assert tuple(ckpt["metrics"]["test"]["per_class"]) == FERPLUS_CLASSES
    model = ferlab.load_model(path, runtime="torch")
    assert model.labels == FERPLUS_CLASSES
    faces = np.zeros((2, 48, 48), np.uint8)
    assert model.score(faces, ["happiness", "happy"]) == model.score(faces, [1, 1])
    with pytest.raises(DataError, match="'joy', not one of the model's labels"):
        model.score(faces, ["joy", "happy"])

    props = metadata.encode(
        {
            "labels": list(OLD_FERPLUS),
            "input_size": [1, 48, 48],
            "preprocess": {},
            "model": "m",
            "tta": "none",
            "metrics": {"val": {"per_class": {"sadness": 0.5}}},
        }
    )
    meta = metadata.decode(props)
    assert tuple(meta["labels"]) == FERPLUS_CLASSES
    assert meta["metrics"] == {"val": {"per_class": {"sad": 0.5}}}
    with pytest.raises(DataError, match="'labels' is not a JSON list"):
        metadata.decode({**props, "labels": '"happy"'})


def test_the_shipped_ferplus_model_says_happy():
    """Its file was written with FER+'s spelling; the names are mapped when it loads."""
    model = ferlab.load_model("ferplus")
    assert model.labels == FERPLUS_CLASSES
    assert "happiness" not in model.meta["metrics"]["test"]["per_class"]


def test_light_colours_and_drawing_take_either_spelling():
    colors = parse_color_overrides(["happiness=#ff0000", "Sad=0,0,255"])
    assert colors == {"happy": (255, 0, 0), "sad": (0, 0, 255)}
    mapper = LightMapper(colors, tau=0)
    mapper.check_labels(OLD_FERPLUS)  # an older model's names still find their colours
    mapper.check_labels(FERPLUS_CLASSES)
    old = mapper.update([{"happiness": 1.0}])
    assert (old.r, old.g, old.b) == (255, 0, 0)
    assert mapper.update([{"happy": 1.0}]) == old
    with pytest.raises(FerlabError, match="'joy', which is not one of the model's emotions"):
        LightMapper({"joy": (1, 2, 3)}).check_labels(FER2013_CLASSES)
    for alias, name in ALIASES.items():
        assert label_color(alias) == label_color(name) == label_color(name.upper())


def test_explain_targets_take_either_spelling():
    from ferlab.explain.cam import class_activation_maps

    network = ferlab.create_model(
        "ferlab_net", num_classes=8, input_size=48, stages=((8,), (8,)), se_stages=()
    ).eval()
    faces = np.full((1, 48, 48), 128, np.uint8)
    a = class_activation_maps(network, faces, "gradcam", "happiness")
    b = class_activation_maps(network, faces, "gradcam", "happy")
    assert a.targets.tolist() == b.targets.tolist() == [FERPLUS_CLASSES.index("happy")]
    with pytest.raises(UnknownNameError, match="unknown class 'joy'"):
        class_activation_maps(network, faces, "gradcam", "joy")


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
