"""Caciolai's custom VGGFace, with a spatial transformer and Multiple Self-Attention.

Paper: A. Caciolai, "Facial Emotion Recognition" (seminar report, Sapienza University of Rome).
After adding his Multiple Self-Attention (MSA) module to Deep-Emotion, Caciolai keeps "the
STN+MSA module" and swaps the small CNN for a deeper backbone "inspired to the successful VGGFace
(that shares its architecture with the VGG16 model)", made shallower because 48×48 inputs "cannot
have as many Pool layers": 4 stacks of two 3×3 convolutions (stride 1, padding that preserves the
size), "the first Conv layer in each stack increases the width by a factor of 2 (starting from 64
in the first stack and reaching 512 in the last stack)", batch norm and ReLU after every
convolution, 2×2 max-pool with stride 2 after each stack. Trained on FER+ labels (SGD with Nesterov
momentum 0.9, lr 0.01, L2 1e-4, batch 128, reduce-on-plateau, weighted sampling), it reported
81.61 % test accuracy with the STN and 82.54 % with STN + MSA (the plain backbone, ``vggface``, is
our ablation; the report has no number for it).

Choices, where the report is silent:

* **Classifier head.** VGG16's, as in the author's public notebook: FC 4096 → ReLU → dropout 0.5 →
  FC 4096 → ReLU → dropout 0.5 → FC ``num_classes``, on the flattened 512×3×3 map (at 48×48).
  Most of the 40 M parameters sit in these layers.
* **Where the STN goes.** On the input image, with Deep-Emotion's localisation network — the
  report says the STN+MSA module is *kept* from Deep-Emotion. (The notebook instead warps the
  64-channel map after the first stack with a 9 M-parameter localisation network.) On the image
  the warp can be shown directly.
* **Where MSA goes.** After the first stack, on the 64×24×24 map (48×48 input), where the
  author's notebook has it; 8 heads as there. Each head's attention map has 576² entries per
  image: on a 2-core CPU a training step of 64 images took about three times as long as
  without MSA. The small Deep-Emotion variant puts MSA on its last map instead
  (:mod:`ferlab.models.deep_emotion`).
* Convolutions have no bias (batch norm follows and would cancel it).
* ``num_classes`` defaults to 7 like every ferlab model; pass 8 for the full FER+ label set.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferlab.layers import create_attention
from ferlab.models._base import FERModel, mlp_head
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model

__all__ = ["VGGFace", "vggface", "vggface_stn", "vggface_stn_msa"]

_SOURCE = "Caciolai, Facial Emotion Recognition (seminar report): custom VGGFace"


def _stack(c_in: int, c_out: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c in (c_in, c_out):
        layers += [nn.Conv2d(c, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out)]
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers, nn.MaxPool2d(2, 2))


class VGGFace(FERModel):
    """Four VGG stacks (64, 128, 256, 512) with optional STN on the input and MSA after stack 1.

    Args:
        stn: warp the input with a spatial transformer first (attribute ``stn``, else ``None``).
        msa: apply Multiple Self-Attention after the first stack (attribute ``msa``, else
            ``None``).
        msa_heads: number of self-attention heads in MSA.
        widths: widths of the stacks.
        hidden: units of the two hidden fully connected layers.
        drop_rate: dropout after each hidden fully connected layer.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        stn: bool = False,
        msa: bool = False,
        msa_heads: int = 8,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        hidden: int = 4096,
        drop_rate: float = 0.5,
    ) -> None:
        super().__init__()
        # The localisation network needs 18 pixels, the four poolings 16.
        min_hw = max(2 ** len(widths), 18 if stn else 0)
        self.input_size = resolve_input_size(in_chans, input_size, (48, 48), min_hw, "vggface")
        self.num_classes, self.in_chans = num_classes, in_chans
        _, h, w = self.input_size
        fh, fw = h // 2 ** len(widths), w // 2 ** len(widths)
        self.stn = create_attention("stn", in_chans, input_size=(h, w)) if stn else None
        self.stages = nn.ModuleList()
        c_in = in_chans
        for c_out in widths:
            self.stages.append(_stack(c_in, c_out))
            c_in = c_out
        self.msa = (
            create_attention("msa", widths[0], spatial_size=(h // 2, w // 2), heads=msa_heads)
            if msa
            else None
        )
        self.num_features = c_in  # channels of the feature map, as across the zoo
        self.head = mlp_head(c_in * fh * fw, hidden, num_classes, drop_rate, depth=2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.stn is not None:
            x = self.stn(x)
        x = self.stages[0](x)
        if self.msa is not None:
            x = self.msa(x)
        for stage in self.stages[1:]:
            x = stage(x)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


@register_model(source=_SOURCE)
def vggface(**kwargs: Any) -> VGGFace:
    """Caciolai's custom VGGFace backbone and VGG16 head, without attention."""
    return VGGFace(stn=False, msa=False, **kwargs)


@register_model(source=f"{_SOURCE} + spatial transformer")
def vggface_stn(**kwargs: Any) -> VGGFace:
    """Custom VGGFace with Deep-Emotion's spatial transformer on the input."""
    return VGGFace(stn=True, msa=False, **kwargs)


@register_model(source=f"{_SOURCE} + spatial transformer + Multiple Self-Attention")
def vggface_stn_msa(**kwargs: Any) -> VGGFace:
    """Custom VGGFace with spatial transformer and Multiple Self-Attention after stack 1."""
    return VGGFace(stn=True, msa=True, **kwargs)
