"""Filter images: every zoo model, that optimisation raises the activation, and bad arguments."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import ferlab
from ferlab.errors import FerlabError
from ferlab.explain import filter_images
from ferlab.explain._subject import Subject
from ferlab.explain.cam import capture, resolve_layer
from tests.explain.conftest import small_model


# DenseNet121 has no width option; at full size it would cost more than all the others together
# for no extra coverage: its default layer and the hooks are exercised by the heat-map tests.
@pytest.mark.parametrize("name", [n for n in ferlab.list_models() if n != "densenet121"])
def test_every_model(name):
    model = small_model(name)
    result = filter_images(model, count=2, steps=1)
    h, w = model.input_size[1:]
    assert result.images.shape == (2, h, w) and result.images.dtype == np.float32
    assert np.isfinite(result.images).all()
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert len(result.filters) == 2 and len(set(result.filters)) == 2
    assert (np.diff(result.activation) <= 0).all()  # strongest first


def _activation(model: torch.nn.Module, pixels: np.ndarray, filters: list[int]) -> np.ndarray:
    """Mean activation of filter ``filters[i]`` of the default layer on pixel image i."""
    subject = Subject(model)
    _, layer = resolve_layer(subject, None)
    x = torch.from_numpy(pixels).float()[:, None]
    with torch.no_grad(), capture(layer, grads=False) as store:
        model(x)
    act = store["act"]
    return np.array([act[i, f].mean().item() for i, f in enumerate(filters)])


def test_optimisation_excites_the_chosen_filters():
    model = small_model("deep_emotion")
    few = filter_images(model, [3, 7, 1], steps=1)
    many = filter_images(model, [3, 7, 1], steps=30)
    assert many.filters == [3, 7, 1]
    before = _activation(model, few.images, few.filters)
    after = _activation(model, many.images, many.filters)
    assert (after > before).all()
    np.testing.assert_allclose(after, many.activation, rtol=1e-4, atol=1e-6)


def test_same_seed_same_images():
    model = small_model("deep_emotion")
    a = filter_images(model, [1, 2], steps=5, seed=3)
    b = filter_images(model, [1, 2], steps=5, seed=3)
    np.testing.assert_array_equal(a.images, b.images)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"filters": [10]}, "filters 0-9"),
        ({"filters": [-1]}, "filters 0-9"),
        ({"steps": 0}, "steps >= 1"),
        ({"decay": 1.0}, "decay < 1"),
        ({"layer": "head.4"}, "feature map"),
    ],
)
def test_bad_arguments(kwargs, problem):
    with pytest.raises(FerlabError, match=problem):
        filter_images(small_model("deep_emotion"), **kwargs)
