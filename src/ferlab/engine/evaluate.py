"""Evaluation: batched prediction with test-time augmentation, and classification metrics.

Metrics follow the usual definitions on the confusion matrix ``C`` (rows: true class, columns:
predicted class): accuracy ``trace(C) / sum(C)``; per-class accuracy (recall) ``C[k,k] / sum
C[k,:]``; macro-F1 the unweighted mean over classes of ``2 P R / (P + R)`` with
``P = C[k,k] / sum C[:,k]`` (0 where a class is never predicted or never present).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferlab.inference.model import predict_batches
from ferlab.inference.preprocess import Preprocess
from ferlab.inference.torch_backend import TorchBackend

__all__ = [
    "confusion_matrix",
    "evaluate_checkpoint",
    "metrics_from_confusion",
    "predict_proba",
]


def predict_proba(
    model: nn.Module,
    images: torch.Tensor | np.ndarray,
    preprocess: Preprocess,
    *,
    tta: str = "none",
    batch_size: int = 512,
    device: str | torch.device = "cpu",
    equalized: bool = False,
    channels_last: bool = False,
    bf16: bool = False,
) -> torch.Tensor:
    """Class probabilities N×C of uint8 images N×H×W, averaging the softmax over TTA views.

    The images are prepared by ``preprocess`` (in numpy, as for every runtime) and run by the
    PyTorch backend of the inference core, so evaluation and ``ferlab.load_model`` agree bit for
    bit. ``equalized`` says the images are already histogram-equalised (the trainer equalises
    the dataset once); ``bf16`` runs the network under bf16 autocast (the softmax stays in
    float32).
    """
    faces = images.cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    backend = TorchBackend(
        model, device, precision="bf16" if bf16 else "fp32", channels_last=channels_last
    )
    probs = predict_batches(
        backend.probs,
        faces,
        preprocess,
        getattr(model, "num_classes", 0),
        tta=tta,
        batch_size=batch_size,
        equalized=equalized,
    )
    return torch.from_numpy(probs)


def confusion_matrix(y_true: torch.Tensor, y_pred: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts C[true, predicted] as an int64 num_classes×num_classes tensor."""
    idx = y_true.long() * num_classes + y_pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def metrics_from_confusion(cm: torch.Tensor, classes: tuple[str, ...] | list[str]) -> dict:
    """``accuracy``, ``per_class`` (recall by class name), ``macro_f1``, ``confusion``, ``n``."""
    cm = cm.double()
    n = cm.sum()
    tp = cm.diag()
    support = cm.sum(1)
    predicted = cm.sum(0)
    recall = torch.where(support > 0, tp / support.clamp(min=1), torch.zeros_like(tp))
    precision = torch.where(predicted > 0, tp / predicted.clamp(min=1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp(min=1e-12), 0 * denom)
    return {
        "accuracy": float(tp.sum() / n) if n > 0 else 0.0,
        "per_class": {c: float(r) for c, r in zip(classes, recall, strict=True)},
        "macro_f1": float(f1.mean()),
        "confusion": cm.long().tolist(),
        "n": int(n),
    }


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: Any,
    *,
    split: str = "test",
    tta: str = "none",
    batch_size: int = 512,
    device: str = "cpu",
    out_dir: str | Path | None = None,
) -> dict:
    """Evaluate a checkpoint on one split of a :class:`~ferlab.data.FERData`.

    Returns the metrics dictionary (plus ``split`` and ``tta``); with ``out_dir`` also writes
    ``confusion_<split>.png`` and ``misclassified_<split>.png``.
    """
    from ferlab.engine.checkpoint import load_checkpoint
    from ferlab.errors import DataError

    model, meta = load_checkpoint(checkpoint, device=device)
    classes = tuple(meta["classes"])
    if tuple(data.classes) != classes:
        raise DataError(
            f"the data's classes {list(data.classes)} differ from the checkpoint's "
            f"{list(classes)}; pass the same --labels/--ferplus the model was trained with",
            path=checkpoint,
        )
    part = data.subset(split)
    if len(part) == 0:
        raise DataError(f"the data has no '{split}' images", path=getattr(data, "source", None))
    probs = predict_proba(
        model, part.images, meta["preprocess"], tta=tta, batch_size=batch_size, device=device
    )
    pred = probs.argmax(1)
    result = metrics_from_confusion(confusion_matrix(part.labels, pred, len(classes)), classes)
    result.update(split=split, tta=tta, checkpoint=str(checkpoint))
    if out_dir is not None:
        from ferlab.engine import plots

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        plots.confusion(result["confusion"], classes, out / f"confusion_{split}.png", split)
        plots.misclassified(
            part.images, part.labels, pred, classes, out / f"misclassified_{split}.png"
        )
    return result
