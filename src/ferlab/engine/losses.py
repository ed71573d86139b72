"""Training targets and losses, including the four FER+ label schemes.

Barsoum et al. ("Training deep networks for facial expression recognition with crowd-sourced
label distribution", 2016) train on the ten crowd votes per image in four ways; the reference
code (microsoft/FERPlus) names them by its ``--training_mode``:

* ``majority``: cross-entropy against the majority label (an ordinary hard label);
* ``probability`` — *probabilistic label drawing*: each time an image is drawn, one label is
  sampled from its vote distribution and used as a hard target;
* ``crossentropy`` — *cross-entropy loss*: cross-entropy against the whole vote distribution;
* ``multi_target`` — *multi-label learning*: every label with enough votes is acceptable and the
  loss is ``-log max_{k acceptable} p_k``, i.e. the network is credited for its most probable
  acceptable label.

The data layer tells which one applies through ``FERData.label_mode`` (``ferplus-<mode>``, with
``multi`` for ``multi_target``) and provides ``FERData.targets`` (the vote distribution, or the
acceptable labels for ``multi_target``: every label with a positive target counts as acceptable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["SOFT_MODES", "batch_targets", "class_balance_weights", "loss_fn", "target_mode"]

#: Target schemes that use ``FERData.targets``.
SOFT_MODES = ("probability", "crossentropy", "multi_target")


# FERData.label_mode suffixes (``ferplus-<suffix>``) → target scheme; ``multi`` is the data
# layer's short name for the reference's ``multi_target``.
_SUFFIXES = {
    "probability": "probability",
    "crossentropy": "crossentropy",
    "multi": "multi_target",
    "multi_target": "multi_target",
}


def target_mode(label_mode: str, has_targets: bool) -> str:
    """The target scheme for a dataset's ``label_mode``: ``hard`` or one of :data:`SOFT_MODES`."""
    if label_mode == "fer2013-ferplus" and has_targets:
        return "crossentropy"  # FER2013 labels blended with FER+ votes: a distribution
    if not (label_mode.startswith("ferplus-") and has_targets):
        return "hard"
    return _SUFFIXES.get(label_mode.removeprefix("ferplus-"), "hard")


def batch_targets(
    mode: str,
    labels: torch.Tensor,
    soft: torch.Tensor | None,
    num_classes: int,
    gen: torch.Generator,
) -> torch.Tensor:
    """The per-step target tensor N×C (a probability distribution or, for multi_target, a mask).

    ``probability`` draws one label per image from its vote distribution with ``gen``.
    """
    if mode == "hard" or soft is None:
        return F.one_hot(labels, num_classes).float()
    if mode == "probability":
        drawn = torch.multinomial(soft.clamp(min=0) + 1e-12, 1, generator=gen).squeeze(1)
        return F.one_hot(drawn, num_classes).float()
    if mode == "crossentropy":
        return soft / soft.sum(1, keepdim=True).clamp(min=1e-12)
    if mode == "multi_target":
        return (soft > 0).float()
    raise ValueError(f"unknown target mode {mode!r}")


def loss_fn(
    logits: torch.Tensor,
    target: torch.Tensor,
    mode: str,
    label_smoothing: float = 0.0,
    class_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean loss of a batch; ``target`` comes from :func:`batch_targets` (possibly mixed).

    ``class_weights`` (C values) scale each class's term of the cross-entropy, so a soft or mixed
    target is weighted by how much of it lies on each class (class-balanced loss).
    """
    logits = logits.float()
    if mode == "multi_target":
        logp = F.log_softmax(logits, 1).masked_fill(target <= 0, float("-inf"))
        return -logp.max(1).values.mean()
    if label_smoothing:
        n = target.shape[1]
        target = target * (1 - label_smoothing) + label_smoothing / n
    if class_weights is not None:
        target = target * class_weights.to(target.device)
    return torch.sum(-target * F.log_softmax(logits, 1), 1).mean()


def class_balance_weights(labels: torch.Tensor, num_classes: int, power: float) -> torch.Tensor:
    """Per-class loss weights ``count ** -power``, scaled so their mean over ``labels`` is 1."""
    counts = torch.bincount(labels, minlength=num_classes).double().clamp(min=1)
    w = counts.pow(-power)
    w = w / (w[labels].mean())
    return w.float()
