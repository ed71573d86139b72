"""Shared pieces of the export tests: registered models with random weights that do something."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch

from ferlab.inference import EmotionModel
from ferlab.inference.preprocess import Preprocess
from ferlab.inference.torch_backend import TorchBackend
from ferlab.models import create_model


def random_model(
    name: str, faces: np.ndarray, seed: int = 0, **preprocess: Any
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A registered model with random weights under which its output depends on the face, and
    checkpoint-style metadata (48×48 faces, ``preprocess`` settings).

    Fresh weights do not suffice for a parity check: a spatial transformer starts at the
    identity warp (its last layer is zero), attention gates start closed, and deep networks
    without batch norm, or with batch norm's default running statistics, pass almost no signal,
    so every face gets the same probabilities. So convolutions and linear layers get
    variance-preserving (He) weights, other parameters noise, zero-started layers small noise,
    batch-norm statistics are measured on ``faces``, and the classifier is scaled to logits of a
    trained model's spread (standard deviation 2), neither uniform nor saturated probabilities.
    """
    model = create_model(name)
    pre = Preprocess(**{"crop": model.input_size[-1], **preprocess})
    meta = {
        "model": {"name": name, "kwargs": {}},
        "classes": [f"class_{i}" for i in range(model.num_classes)],
        "input_size": tuple(model.input_size),
        "preprocess": pre,
        "weights": "untrained",
    }
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            weight = getattr(module, "weight", None)
            if isinstance(module, torch.nn.Conv2d | torch.nn.Linear) and weight.any():
                fan_in = weight[0].numel()
                weight.copy_(torch.randn(weight.shape, generator=g) * (2 / fan_in) ** 0.5)
        for p in model.parameters():
            spread = float(p.std()) if p.numel() > 1 else 0.0
            p.add_(torch.randn(p.shape, generator=g) * (0.1 * spread if spread > 0 else 0.05))
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.reset_running_stats()
                module.momentum = None  # cumulative average over the batches seen
        x = torch.from_numpy(pre(faces)[0])
        model.train()
        model(x)
        model.eval()
        classifier = [
            m
            for m in model.modules()
            if isinstance(m, torch.nn.Linear) and m.out_features == model.num_classes
        ][-1]
        scale = 2 / float(model(x).std())
        classifier.weight.mul_(scale)
        classifier.bias.mul_(scale)
    return model, meta


def torch_predictor(model: torch.nn.Module, meta: dict[str, Any], tta: str) -> EmotionModel:
    """The PyTorch predictor ``load_model`` would build for this model and metadata."""
    return EmotionModel(TorchBackend(model, "cpu"), meta, tta=tta)


def float64_probs(model: torch.nn.Module, meta: dict[str, Any], faces: np.ndarray) -> np.ndarray:
    """The model's probabilities (centre view) computed in float64: the exact result that both
    float32 implementations approximate."""
    exact = copy.deepcopy(model).double()
    x = torch.from_numpy(meta["preprocess"](faces)[0]).double()
    with torch.no_grad():
        return torch.softmax(exact(x), 1).numpy()
