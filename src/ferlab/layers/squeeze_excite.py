"""Squeeze-and-excitation (Hu, Shen & Sun, "Squeeze-and-Excitation Networks", CVPR 2018).

A channel-attention gate: the feature map is *squeezed* to one number per channel by global
average pooling, a two-layer bottleneck MLP (C → C/r → C, ReLU between) turns those numbers into
per-channel weights in (0, 1) through a sigmoid, and the map is *excited* by multiplying every
channel by its weight. Luo's three-block CNN places one after the convolutions of each block; the
project's own FerlabNet uses it in its deep stages.

Choices: the bottleneck width is ``channels // reduction`` with a floor of ``min_hidden`` (1 by
default) so that narrow layers (fewer channels than ``reduction``) still get a gate; the default
``reduction=16`` is the ratio Hu et al. recommend. Both linear layers keep their biases as in the
original block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferlab.errors import FerlabError
from ferlab.layers import register_attention

__all__ = ["SqueezeExcite"]


@register_attention("se")
class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation block: ``y = x · σ(W₂ ReLU(W₁ avgpool(x)))`` per channel.

    Args:
        channels: channels of the feature map it gates.
        reduction: bottleneck ratio r (hidden width ``channels // r``).
        min_hidden: smallest allowed hidden width.

    For explanation, set ``record = True``: every forward then keeps the gate values of the last
    batch, detached, in ``last_weights`` (shape ``(B, C)``). :meth:`channel_weights` computes them
    for any input without changing the layer.
    """

    def __init__(self, channels: int, reduction: int = 16, min_hidden: int = 1) -> None:
        super().__init__()
        if channels < 1 or reduction < 1 or min_hidden < 1:
            raise FerlabError(
                f"squeeze-and-excitation needs channels, reduction and min_hidden >= 1; got "
                f"channels={channels}, reduction={reduction}, min_hidden={min_hidden}"
            )
        hidden = max(min_hidden, channels // reduction)
        self.channels, self.hidden = channels, hidden
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)
        self.record = False
        self.last_weights: torch.Tensor | None = None

    def channel_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Per-channel gate values in (0, 1), shape ``(B, C)``."""
        squeezed = x.mean(dim=(2, 3))
        return torch.sigmoid(self.fc2(F.relu(self.fc1(squeezed))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.channel_weights(x)
        if self.record:
            self.last_weights = weights.detach()
        return x * weights[:, :, None, None]

    def extra_repr(self) -> str:
        return f"channels={self.channels}, hidden={self.hidden}"
