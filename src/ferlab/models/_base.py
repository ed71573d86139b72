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
