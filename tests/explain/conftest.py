"""Fixtures of the explanation tests: small zoo models, random faces, a trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import ferlab
from tests.engine.engine_helpers import trained_checkpoint

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
    out = tmp_path_factory.mktemp("explain-run")
    return trained_checkpoint(out, "deep_emotion", epochs=2, n=420, crop=44)


@pytest.fixture(scope="session")
def emotion_model(checkpoint: Path) -> ferlab.EmotionModel:
    return ferlab.load_model(checkpoint, device="cpu")


@pytest.fixture(scope="session")
def region_model() -> torch.nn.Module:
    """A small FerlabNet (global-pooling head) trained on the one-region task."""
    from tests.explain.explain_helpers import train_on_region_task

    return train_on_region_task("ferlab_net", stages=((8,), (16,), (32,)), se_stages=())
