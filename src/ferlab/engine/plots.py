"""Figures of a run: confusion matrices, training curves, misclassified examples.

Drawn with matplotlib's non-interactive Agg backend (no display needed) and written as PNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from ferlab.plots import pyplot

__all__ = ["confusion", "curves", "misclassified", "pyplot"]


def confusion(
    cm: Sequence[Sequence[int]], classes: Sequence[str], path: str | Path, title: str = ""
) -> None:
    """Counts (left) and row-normalised rates (right) of a confusion matrix."""
    plt = pyplot()
    counts = torch.tensor(cm, dtype=torch.float64)
    rates = counts / counts.sum(1, keepdim=True).clamp(min=1)
    k = len(classes)
    fig, axes = plt.subplots(1, 2, figsize=(2 * (2.2 + 0.55 * k), 1.6 + 0.55 * k))
    for ax, mat, fmt, label in (
        (axes[0], counts, "{:.0f}", "counts"),
        (axes[1], rates, "{:.2f}", "row-normalised"),
    ):
        ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
        for i in range(k):
            for j in range(k):
                colour = "white" if rates[i, j] > 0.5 else "black"
                ax.text(
                    j,
                    i,
                    fmt.format(float(mat[i, j])),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                )
        ax.set_xticks(range(k), classes, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} ({label})" if title else label, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves(history: Sequence[dict], path: str | Path) -> None:
    """Loss and accuracy per epoch, training against validation."""
    plt = pyplot()
    epochs = [float(r["epoch"]) for r in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.4))
    ax_loss.plot(epochs, [r["train_loss"] for r in history], label="train")
    ax_loss.plot(epochs, [r["val_loss"] for r in history], label="val")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_acc.plot(epochs, [r["train_acc"] for r in history], label="train")
    ax_acc.plot(epochs, [r["val_acc"] for r in history], label="val")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def misclassified(
    images: torch.Tensor,
    labels: torch.Tensor,
    pred: torch.Tensor,
    classes: Sequence[str],
    path: str | Path,
    per_class: int = 8,
) -> None:
    """One row per true class with up to ``per_class`` misclassified images, each captioned
    with the predicted class (the first ones in dataset order, so the figure is reproducible).

    The grid is assembled as one mosaic image and drawn with a single ``imshow``: one axes per
    thumbnail would make this the slowest step of a short run.
    """
    plt = pyplot()
    k = len(classes)
    h, w = images.shape[-2:]
    gap = 2
    mosaic = torch.full((k * (h + gap), per_class * (w + gap)), 255, dtype=torch.uint8)
    captions = []
    for c in range(k):
        wrong = torch.nonzero((labels == c) & (pred != c)).flatten()[:per_class]
        for j, i in enumerate(wrong.tolist()):
            y, x = c * (h + gap), j * (w + gap)
            mosaic[y : y + h, x : x + w] = images[i]
            captions.append((x + w / 2, y + h - 1, classes[int(pred[i])]))
    fig, ax = plt.subplots(figsize=(1.0 * per_class + 1.4, 1.0 * k + 0.5))
    ax.imshow(mosaic.numpy(), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    for x, y, text in captions:
        ax.text(
            x,
            y,
            text,
            ha="center",
            va="bottom",
            fontsize=6,
            color="yellow",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 0.5, "linewidth": 0},
        )
    ax.set_xticks([])
    ax.set_yticks([c * (h + gap) + h / 2 for c in range(k)], list(classes), fontsize=8)
    ax.set_title("misclassified examples (row: true class, caption: prediction)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
