"""Deep-Emotion: a small CNN with a spatial transformer as its attention, and Caciolai's variants.

Paper: S. Minaee, M. Minaei and A. Abdolrashidi, "Deep-Emotion: Facial Expression Recognition
Using Attentional Convolutional Network", Sensors 21(9), 2021 — reported 70.02 % on FER2013 (and
99.3 % on FERG). We build it from the two reports in ``shared/papers`` that describe and reproduce
it:

* Huo & Jiang, "Facial Expression Recognition Using Attentional Convolutional Network": "four
  convolutional layers, each two followed by max-pooling layer and ReLU activation function. They
  are then followed by a dropout layer and two fully-connected layers. The spatial transformer (the
  localization network) consists of two convolution layers (each followed by max-pooling and
  ReLU), and two fully-connected layers"; trained with cross-entropy and Adam with L2
  regularisation. Their reproduction reached 61.385 % training and 44.920 % validation accuracy.
* Caciolai, "Facial Emotion Recognition" (seminar report): his *baseline* is this CNN without the
  transformer (60.61 % test accuracy), the reproduced Deep-Emotion scored 66.05 % and adding his
  Multiple Self-Attention (MSA) module 67.86 % — trained on the FER+ relabelling of FER2013 with
  SGD (Nesterov 0.9, lr 0.01, L2 1e-4, batch 128, reduce-on-plateau) and weighted sampling.

Architecture (1×48×48 input): spatial transformer on the input image → conv 10@3×3 → conv 10@3×3 →
max-pool 2 → ReLU → conv 10@3×3 → conv 10@3×3 → max-pool 2 → ReLU → dropout → FC 810 → 50 →
FC 50 → 7. The localisation network is conv 8@7×7 → max-pool 2 → ReLU → conv 10@5×5 → max-pool 2
→ ReLU → FC 640 → 32 → ReLU → FC 32 → 6, initialised to the identity warp
(:class:`~ferlab.layers.spatial_transformer.SpatialTransformer`). About 67 k parameters
(44 k without the transformer, 70 k with MSA).

Choices:

* Convolutions are unpadded — that is what makes the published 810 = 10·9·9 and 640 = 10·8·8;
  the flattened sizes are computed from ``input_size``, so 40- and 44-pixel crops work too.
* We follow the published description literally: no activation between the two convolutions of a
  pair and no batch normalisation. (The public PyTorch re-implementation that Caciolai's notebook
  cites, omarsayed7/Deep-Emotion, adds a ReLU after the first convolution of each pair and a batch
  norm after the fourth.) A ReLU sits between the two FC layers; dropout rate 0.5 (not stated;
  PyTorch's default, as in that re-implementation).
* ``deep_emotion_msa`` puts MSA (8 heads, see :mod:`ferlab.layers.self_attention`) on the last
  feature map, 10×9×9 at 48×48, just before the dropout and FC layers. The report does not say
  where; the author's notebook put it inside the localisation network after its first
  convolution (8×42×42). Cost decided it: every head builds an N×N attention map over the N
  locations, and on this project's 2-core CPU eight heads after the first block (22×22, N = 484)
  took about 7 s per batch of 64 (forward + backward), fourteen times the rest of the network,
  against 0.25 s on the 9×9 map (N = 81). Caciolai's VGGFace variant, a GPU-scale network anyway,
  keeps the notebook's placement after the first stack (:mod:`ferlab.models.vggface`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferlab.layers import create_attention
from ferlab.models._base import FERModel
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model

__all__ = ["DeepEmotion", "deep_emotion", "deep_emotion_msa", "deep_emotion_nostn"]

_MINAEE = "Minaee et al., Deep-Emotion (2021), as described by Huo & Jiang and Caciolai"
_CACIOLAI = "Caciolai, Facial Emotion Recognition (seminar report)"


def _conv_pair(c_in: int, width: int) -> nn.Sequential:
    # Two unpadded 3×3 convolutions, then max-pool and ReLU, as published.
    return nn.Sequential(
        nn.Conv2d(c_in, width, 3),
        nn.Conv2d(width, width, 3),
        nn.MaxPool2d(2, 2),
        nn.ReLU(inplace=True),
    )


class DeepEmotion(FERModel):
    """Deep-Emotion's CNN with optional spatial transformer (``stn``) and MSA (``msa``).

    Args:
        stn: warp the input with a spatial transformer first (attribute ``stn``, else ``None``).
        msa: apply Multiple Self-Attention to the last feature map (attribute ``msa``, else
            ``None``).
        msa_heads: number of self-attention heads in MSA.
        width: filters of each convolution.
        hidden: units of the hidden fully connected layer.
        drop_rate: dropout before the fully connected layers.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        stn: bool = True,
        msa: bool = False,
        msa_heads: int = 8,
        width: int = 10,
        hidden: int = 50,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        # Smallest inputs: 16 for the two blocks, 18 for the localisation network, 20 for MSA's
        # 2×2 pooling.
        min_hw = 20 if msa else 18 if stn else 16
        self.input_size = resolve_input_size(in_chans, input_size, (48, 48), min_hw, "deep_emotion")
        self.num_classes, self.in_chans = num_classes, in_chans
        _, h, w = self.input_size
        h1, w1 = (h - 4) // 2, (w - 4) // 2
        h2, w2 = (h1 - 4) // 2, (w1 - 4) // 2
        self.stn = create_attention("stn", in_chans, input_size=(h, w)) if stn else None
        self.block1 = _conv_pair(in_chans, width)
        self.block2 = _conv_pair(width, width)
        self.msa = (
            create_attention("msa", width, spatial_size=(h2, w2), heads=msa_heads) if msa else None
        )
        self.num_features = width  # channels of the feature map, as across the zoo
        self.head = nn.Sequential(
            nn.Dropout(drop_rate),
            nn.Flatten(),
            nn.Linear(width * h2 * w2, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.stn is not None:
            x = self.stn(x)
        x = self.block2(self.block1(x))
        if self.msa is not None:
            x = self.msa(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


@register_model(source=_MINAEE)
def deep_emotion(**kwargs: Any) -> DeepEmotion:
    """Deep-Emotion: spatial transformer + four 3×3 convolutions + two FC layers."""
    return DeepEmotion(stn=True, msa=False, **kwargs)


@register_model(source=f"{_CACIOLAI}: baseline, Deep-Emotion without its spatial transformer")
def deep_emotion_nostn(**kwargs: Any) -> DeepEmotion:
    """Caciolai's baseline: Deep-Emotion's CNN alone."""
    return DeepEmotion(stn=False, msa=False, **kwargs)


@register_model(source=f"{_CACIOLAI}: Deep-Emotion with Multiple Self-Attention")
def deep_emotion_msa(**kwargs: Any) -> DeepEmotion:
    """Deep-Emotion with Caciolai's Multiple Self-Attention on its last feature map."""
    return DeepEmotion(stn=True, msa=True, **kwargs)
