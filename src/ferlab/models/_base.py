"""The interface every ferlab model shares."""

from __future__ import annotations

import torch
from torch import nn


class FERModel(nn.Module):
    """Base class: ``forward(x) == forward_head(forward_features(x))``.

    Subclasses set ``num_classes``, ``in_chans`` and ``input_size`` (C, H, W) and implement
    :meth:`forward_features` (image → feature tensor) and :meth:`forward_head`
    (features → logits).
    """

    num_classes: int
    in_chans: int
    input_size: tuple[int, int, int]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def mlp_head(
    in_features: int, hidden: int, num_classes: int, drop_rate: float, depth: int = 1
) -> nn.Sequential:
    """Flatten, then ``depth`` × (Linear → ReLU → Dropout) of width ``hidden``, then the classifier.

    The fully connected head of the plain CNNs of the zoo (Jahromi's, Chahed's with one hidden
    layer, VGG-Face's with two), built in one place so the layer indices, and with them the
    checkpoints' parameter names, stay the same across models.
    """
    layers: list[nn.Module] = [nn.Flatten()]
    width = in_features
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Dropout(drop_rate)]
        width = hidden
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)
