"""FerlabNet: the CPU-efficient network behind ferlab's shipped ``default`` and ``ferplus`` models.

Not from one of the five reports; it combines what they found with what a 2-core CPU can train in
a few hours:

* **VGG-style 3×3 conv + batch norm + ReLU stacks** (Jahromi & Fyshe's deep network, Caciolai's
  custom VGGFace and Meen et al.'s VGG19 all show plain VGG stacks are the strongest family on
  48×48 faces) — and 3×3 convolutions are what the CPU's oneDNN kernels run fastest.
* **Cheap high-resolution stages, deep low-resolution stages.** A training step's cost is
  dominated by the first stages at 44×44 and 22×22, so the first stage has one convolution of 32
  channels and the extra depth goes to the 11×11 and 5×5 stages (three convolutions each), where
  it adds capacity at a quarter and a sixteenth of the cost per layer.
* **Channel widths that are multiples of 32.** Measured here (AVX2, fp32, channels-last), a
  40/80/160/320 network trained 1.8× slower than a 32/64/128/256 one while having only 1.6× the
  parameters: the kernels are tuned for those widths.
* **Squeeze-and-excitation after the two deep stages** (Luo: +1 point on FER2013 for a similar
  three-block CNN) at negligible cost.
* **Global average pooling + dropout + one linear layer** instead of large fully connected layers
  (most of the parameters of the papers' networks sit in their FC layers and overfit FER2013).

Input: 1×44×44 crops of the 48×48 faces (random crops in training, ten-crop or centre crop at
test time); any size from 32 upwards works because of the global pooling.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from ferlab.errors import FerlabError
from ferlab.layers import create_attention
from ferlab.layers.squeeze_excite import SqueezeExcite
from ferlab.models._base import FERModel
from ferlab.models._registry import register_model

__all__ = ["FerlabNet", "ferlab_net", "fold_se"]


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class FerlabNet(FERModel):
    """VGG-style stages with optional squeeze-and-excitation and a global-pool head.

    Args:
        stages: convolution widths per stage; a 2×2 max-pool follows every stage but the last.
        se_stages: indices of the stages followed by a squeeze-and-excitation block.
        se_reduction: SE bottleneck reduction ratio.
        se: ``False`` puts an identity where each SE block would be (the SE ablation): the
            other layers keep their names, so an SE network's weights load into this one
            (``model.init_from``), all but the SE blocks' own.
        drop_rate: dropout before the classifier.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, int] = 44,
        stages: tuple[tuple[int, ...], ...] = ((32,), (64, 64), (128, 128, 128), (256, 256, 256)),
        se_stages: tuple[int, ...] = (2, 3),
        se_reduction: int = 16,
        se: bool = True,
        drop_rate: float = 0.3,
    ) -> None:
        super().__init__()
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        self.num_classes, self.in_chans, self.input_size = num_classes, in_chans, (in_chans, h, w)
        layers: list[nn.Module] = []
        channels = in_chans
        for i, widths in enumerate(stages):
            for width in widths:
                layers += _conv_bn_relu(channels, width)
                channels = width
            if i in se_stages:
                gate = create_attention("se", channels, reduction=se_reduction)
                layers.append(gate if se else nn.Identity())
            if i < len(stages) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(drop_rate),
            nn.Linear(channels, num_classes),
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


@register_model(source="ferlab (this project): CPU-efficient VGG-style network with SE blocks")
def ferlab_net(**kwargs) -> FerlabNet:
    """ferlab's default architecture (about 1.9 M parameters at 1×44×44)."""
    return FerlabNet(**kwargs)


def fold_se(network: FerlabNet, gates: Sequence[torch.Tensor]) -> FerlabNet:
    """A copy of ``network`` without squeeze-and-excitation (as built with ``se=False``), each SE
    block's gate replaced by a constant: ``gates[k]`` (C values in (0, 1), e.g. the block's mean
    gate over training faces) scales the input channels of the next layer that mixes channels,
    the convolution after the max-pool or the classifier after the global pooling. For constant
    gates this is exact (max-pooling and average pooling commute with a positive per-channel
    scale); the SE ablation starts from it instead of from gates simply removed.
    """
    out = copy.deepcopy(network)
    blocks = [i for i, m in enumerate(out.features) if isinstance(m, SqueezeExcite)]
    if len(blocks) != len(gates):
        raise FerlabError(f"the network has {len(blocks)} SE blocks, got {len(gates)} gates")
    linear = out.head[-1]
    for i, gate in zip(blocks, gates, strict=True):
        if gate.shape != (out.features[i].channels,) or not bool((gate > 0).all()):
            raise FerlabError(f"SE block {i} needs {out.features[i].channels} gates in (0, 1)")
        after = out.features[i + 1 :]
        conv = next((m for m in after if isinstance(m, nn.Conv2d)), None)
        between = after[: list(after).index(conv)] if conv is not None else after
        if not all(isinstance(m, nn.MaxPool2d) for m in between):
            raise FerlabError(f"cannot fold SE block {i}: a layer other than max-pooling follows")
        target = conv if conv is not None else linear
        with torch.no_grad():
            shape = (1, -1, 1, 1) if target is conv else (1, -1)
            target.weight.mul_(gate.to(target.weight.dtype).reshape(shape))
        out.features[i] = nn.Identity()
    return out
