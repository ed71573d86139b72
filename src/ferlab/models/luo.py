"""Chahed's three-block CNN, with and without squeeze-and-excitation (Luo).

Paper: X. Luo, "Convolutional neural network combined with the attention mechanism for facial
emotion recognition" (Durham University). The base network "follows one of the most accurate
models in Kaggle presented by Mohamed Chahed": three convolution blocks, each of two convolutional
layers with ReLU followed by a max-pooling layer, then flatten, a fully connected layer and a
softmax layer over the 7 FER2013 emotions. The attention variant inserts a squeeze-and-excitation
block (Hu et al.) in every block, after its convolutions and before its max-pool. Trained in
TensorFlow with Adam (lr 0.002), batch 64, 100 epochs with early stopping (patience 16) and
reduce-on-plateau, inputs rescaled to [0, 1] and randomly shifted. Reported FER2013 test accuracy
(Table 1): 68.01 % without and 69.04 % with SE blocks (the abstract gives 68.04 % and 69.07 %).

The paper gives neither filter counts nor a parameter count, and Chahed's notebook is not part of
it, so these are our choices:

* 3×3 convolutions with "same" padding and VGG-style widths doubling per block, 64 → 128 → 256,
  each block ending in a 2×2 max-pool (48 → 24 → 12 → 6);
* "a fully-connected layer and a softmax layer follow the flatten layer" is read as a hidden FC
  layer of 512 units with ReLU, then the output layer; the network returns logits (the softmax
  belongs to the loss);
* no dropout by default (``drop_rate=0``): the paper mentions none and lists a method against its
  train/test gap (86 % vs 68 %) as future work; ``drop_rate`` adds dropout before the output
  layer;
* SE reduction ratio 16, Hu et al.'s default.

About 5.9 M parameters at 1×48×48 (the SE blocks add 11 k).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferlab.layers import create_attention
from ferlab.models._base import FERModel, mlp_head
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model

__all__ = ["ChahedCNN", "chahed_cnn", "chahed_cnn_se"]

_SOURCE = "Luo, CNN combined with the attention mechanism for FER (Chahed's Kaggle CNN)"


class ChahedCNN(FERModel):
    """Three blocks of (3×3 conv → ReLU) × 2 [→ SE] → max-pool 2, then FC → ReLU → FC.

    Args:
        widths: filters of the three blocks.
        hidden: units of the hidden fully connected layer.
        se: insert a squeeze-and-excitation block before each max-pool.
        se_reduction: its bottleneck ratio.
        drop_rate: dropout before the output layer.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        widths: tuple[int, ...] = (64, 128, 256),
        hidden: int = 512,
        se: bool = False,
        se_reduction: int = 16,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_size = resolve_input_size(
            in_chans, input_size, (48, 48), 2 ** len(widths), "chahed_cnn"
        )
        self.num_classes, self.in_chans = num_classes, in_chans
        blocks: list[nn.Module] = []
        c_in = in_chans
        for c_out in widths:
            block: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
            ]
            if se:
                block.append(create_attention("se", c_out, reduction=se_reduction))
            block.append(nn.MaxPool2d(2))
            blocks.append(nn.Sequential(*block))
            c_in = c_out
        fh, fw = (n // 2 ** len(widths) for n in self.input_size[1:])
        self.features = nn.Sequential(*blocks)
        self.num_features = c_in  # channels of the feature map, as across the zoo
        self.head = mlp_head(c_in * fh * fw, hidden, num_classes, drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


@register_model(source=_SOURCE)
def chahed_cnn(**kwargs: Any) -> ChahedCNN:
    """Luo's baseline: Chahed's three-block CNN."""
    return ChahedCNN(**kwargs)


@register_model(source=f"{_SOURCE}, with squeeze-and-excitation blocks")
def chahed_cnn_se(**kwargs: Any) -> ChahedCNN:
    """Luo's attention model: the three-block CNN with an SE block before each max-pool."""
    return ChahedCNN(se=True, **kwargs)
