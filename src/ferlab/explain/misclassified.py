"""Misclassified faces per class, as in Jahromi & Fyshe's Fig. 8 ("samples of misclassified
images"): for every true class, the first faces of a split (in dataset order, so the figure is
reproducible) that the model gets wrong, with what it predicted.

The default split is ``val`` (FER2013's PublicTest), the split models are selected on, so looking
at it does not spend the one look at PrivateTest that the protocol allows; pass ``split="test"``
for the final report. Predictions use the model's own test-time augmentation, as
``predict_proba`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferlab.errors import DataError, FerlabError

__all__ = ["Misclassified", "misclassified", "plot_misclassified"]


@dataclass(frozen=True)
class Misclassified:
    """Every misclassified face of one split.

    Attributes:
        images: uint8 M×48×48, the misclassified faces in dataset order.
        true, predicted: int64 M class indices.
        index: int64 M, their positions within the split.
        classes: class names.
        total: faces in the split (so ``1 - M / total`` is the accuracy).
    """

    images: np.ndarray
    true: np.ndarray
    predicted: np.ndarray
    index: np.ndarray
    classes: tuple[str, ...]
    total: int

    def per_class(self, limit: int | None = None) -> dict[str, list[tuple[int, str]]]:
        """``{true class: [(index in split, predicted class), ...]}``, at most ``limit`` each."""
        out: dict[str, list[tuple[int, str]]] = {}
        for c, name in enumerate(self.classes):
            rows = np.flatnonzero(self.true == c)[:limit]
            out[name] = [(int(self.index[r]), self.classes[int(self.predicted[r])]) for r in rows]
        return out


def misclassified(
    model: Any, data: Any, split: str = "val", *, batch_size: int = 256
) -> Misclassified:
    """Predict every face of ``split`` of ``data`` and keep the wrong ones.

    Args:
        model: an :class:`~ferlab.inference.EmotionModel` (``ferlab.load_model``).
        data: a :class:`~ferlab.data.FERData` (``ferlab.load_dataset``) or a path to load.
        split: ``train``, ``val`` (PublicTest) or ``test`` (PrivateTest).
    """
    from ferlab.data import load_dataset
    from ferlab.data.dataset import SPLITS
    from ferlab.inference import EmotionModel

    if not isinstance(model, EmotionModel):
        raise FerlabError(
            "misclassified faces need a trained model with labels (ferlab.load_model), got "
            f"{type(model).__name__}"
        )
    if split not in SPLITS:
        raise FerlabError(f"split must be one of {', '.join(SPLITS)}, got '{split}'")
    if isinstance(data, str | Path):
        data = load_dataset(data)
    if tuple(data.classes) != tuple(model.labels):
        raise DataError(
            f"the data's classes {list(data.classes)} differ from the model's "
            f"{list(model.labels)}; load the data with the labels the model was trained on",
            path=getattr(data, "source", None),
        )
    part = data.subset(split)
    if len(part) == 0:
        raise DataError(f"the data has no '{split}' faces", path=getattr(data, "source", None))
    images = part.images.numpy()
    pred = np.concatenate(
        [
            model.predict_proba(images[lo : lo + batch_size]).argmax(1)
            for lo in range(0, len(images), batch_size)
        ]
    )
    true = part.labels.numpy().astype(np.int64)
    wrong = np.flatnonzero(pred != true)
    return Misclassified(
        images=images[wrong],
        true=true[wrong],
        predicted=pred[wrong].astype(np.int64),
        index=wrong.astype(np.int64),
        classes=tuple(model.labels),
        total=len(images),
    )


def plot_misclassified(result: Misclassified, path: str | Path, per_class: int = 8) -> Path:
    """One row per true class with its first ``per_class`` misclassified faces, each captioned
    with the predicted class (the engine's figure, also written by ``ferlab evaluate``)."""
    from ferlab.engine import plots

    path = Path(path)
    plots.misclassified(
        torch.from_numpy(result.images),
        torch.from_numpy(result.true),
        torch.from_numpy(result.predicted),
        result.classes,
        path,
        per_class=per_class,
    )
    return path
