"""DenseNet121 for 48×48 grey faces.

Origin
    Huang, Liu & Weinberger, "Densely Connected Convolutional Networks" (2016), DenseNet-BC with
    121 layers. Meen, Yoshioka & Inoue name DenseNet among the architectures they "experimented
    with" before basing all reported models on VGG19.

Architecture
    The paper's DenseNet-121: growth rate 32, four dense blocks of 6, 12, 24 and 16 layers, each
    layer a bottleneck BN-ReLU-1×1 conv (4 × growth channels) then BN-ReLU-3×3 conv (growth
    channels) whose output is concatenated to its input; between blocks a transition
    BN-ReLU-1×1 conv halving the channels (compression 0.5) and a 2×2 average pool; a final
    BN-ReLU, global average pooling and a linear classifier (1024 features).

Adaptation to small images
    The ImageNet stem (7×7 convolution with stride 2 and a 3×3 max-pool with stride 2) would reduce
    a 48×48 face to 12×12 before the first block and to 1×1 at the last. Here the stem is one 3×3
    convolution with stride 1 to 64 channels and no max-pool (as in the CIFAR variants), so the
    blocks see 48, 24, 12 and 6 pixels. Written here because torchvision is not a dependency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferlab.models._base import FERModel
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model

__all__ = ["DenseNet", "densenet121"]


class _DenseLayer(nn.Module):
    """BN-ReLU-1×1 conv bottleneck, BN-ReLU-3×3 conv; returns only the new ``growth`` maps."""

    def __init__(self, in_channels: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(out)))


class _DenseBlock(nn.Module):
    def __init__(self, layers: int, in_channels: int, growth: int, bn_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            _DenseLayer(in_channels + i * growth, growth, bn_size) for i in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(torch.cat(features, dim=1)))
        return torch.cat(features, dim=1)


class _Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(in_channels, out_channels, 1, bias=False),
            nn.AvgPool2d(2, 2),
        )


class DenseNet(FERModel):
    """DenseNet-BC with a small-image stem (3×3 conv, stride 1, no max-pool)."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        *,
        growth: int = 32,
        blocks: tuple[int, ...] = (6, 12, 24, 16),
        init_features: int = 64,
        bn_size: int = 4,
        compression: float = 0.5,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        # Three 2×2 average pools: below 8 pixels the last block would get an empty map.
        self.input_size = resolve_input_size(in_chans, input_size, (48, 48), 8, "DenseNet")
        layers: list[nn.Module] = [nn.Conv2d(in_chans, init_features, 3, 1, 1, bias=False)]
        channels = init_features
        for i, n in enumerate(blocks):
            layers.append(_DenseBlock(n, channels, growth, bn_size))
            channels += n * growth
            if i < len(blocks) - 1:
                out = int(channels * compression)
                layers.append(_Transition(channels, out))
                channels = out
        layers += [nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.num_features = channels
        self.classifier = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model(source="Huang et al. 2016 (tried by Meen et al.)")
def densenet121(
    num_classes: int = 7, in_chans: int = 1, input_size: int | tuple[int, ...] | None = None
) -> DenseNet:
    """DenseNet-121 (growth 32, blocks 6-12-24-16) for 48×48 input, 3×3 stride-1 stem."""
    return DenseNet(num_classes, in_chans, input_size, blocks=(6, 12, 24, 16))
