"""Shared pieces of the model tests: one forward and backward pass through a fresh model."""

from __future__ import annotations

import torch
from torch import nn


def check_forward_backward(
    model: nn.Module, in_chans: int, size: int, num_classes: int, *, every_param: bool = True
) -> torch.Tensor:
    """Check the logits' shape, that they and the gradients are finite; returns the input batch.

    With ``every_param`` each parameter must receive a gradient; without it, only those that do
    are checked (at least one must), for models whose variants leave some parameters unused.
    """
    x = torch.randn(2, in_chans, size, size)
    logits = model(x)
    assert logits.shape == (2, num_classes) and torch.isfinite(logits).all()
    logits.sum().backward()
    if every_param:
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    else:
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    return x
