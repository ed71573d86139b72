"""Fixtures of the explanation tests: small zoo models, random faces, a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ferlab
from ferlab.engine import recipe_from_dict, train
from tests.engine.engine_helpers import synthetic_data

#: Constructor arguments that shrink the big zoo models (same architecture, fewer channels) so
#: that every model can run every method within the suite's time.
SMALL = {
    "vgg19": {"width": 0.125},
    "face_vgg19": {"width": 0.125},
    "facial_attention_m1": {"width": 0.125},
    "facial_attention_m2": {"width": 0.125},
    "facial_attention_m3": {"width": 0.125},
    "vggface": {"widths": (8, 16, 32, 64), "hidden": 32},
    "vggface_stn": {"widths": (8, 16, 32, 64), "hidden": 32},
    "vggface_stn_msa": {"widths": (8, 16, 32, 64), "hidden": 32},
    "chahed_cnn": {"widths": (8, 16, 32), "hidden": 32},
    "chahed_cnn_se": {"widths": (8, 16, 32), "hidden": 32},
    "deep_cnn": {"widths": (8, 16, 32, 64), "hidden": 32},
}


def small_model(name: str, **kwargs) -> torch.nn.Module:
    """A freshly initialised zoo model, shrunk where :data:`SMALL` says, in eval mode."""
    torch.manual_seed(0)
    return ferlab.create_model(name, **{**SMALL.get(name, {}), **kwargs}).eval()


@pytest.fixture(scope="session")
def faces() -> np.ndarray:
    """Two random 48×48 uint8 faces."""
    return np.random.default_rng(0).integers(0, 256, (2, 48, 48), dtype=np.uint8)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint: Deep-Emotion (spatial transformer) on 44×44 centre crops, trained two
    epochs on learnable synthetic data."""
    recipe = recipe_from_dict(
        {
            "model": {"name": "deep_emotion"},
            "data": {"crop": 44},
            "optim": {"name": "adam", "lr": 0.01},
            "train": {"epochs": 2, "batch_size": 64},
            "eval": {"plots": False},
        }
    )
    out = tmp_path_factory.mktemp("explain-run")
    train(recipe, data=synthetic_data(420), out_dir=out)
    return out / "best.pt"


@pytest.fixture(scope="session")
def emotion_model(checkpoint: Path) -> ferlab.EmotionModel:
    return ferlab.load_model(checkpoint, device="cpu")
