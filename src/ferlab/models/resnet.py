"""ResNet18 for 48×48 grey faces.

Origin
    He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition" (2015). Meen, Yoshioka &
    Inoue report that "different CNN architectures such as VGG, ResNet and DenseNet have been
    experimented with" for their emotion and face networks; this is the ResNet they name.

Architecture
    The paper's 18-layer network: four stages of two basic blocks (two 3×3 conv-BN layers with an
    identity shortcut, or a 1×1 conv-BN projection where the shape changes) with 64, 128, 256 and
    512 channels, the last three starting with stride 2; global average pooling and a linear
    classifier.

Adaptation to small images
    The ImageNet stem (7×7 convolution with stride 2, then a 3×3 max-pool with stride 2) shrinks
    the input four times before the first block, which would leave a 48×48 face 12×12 at stage one
    and 2×2 at the end. As in the usual CIFAR adaptation, the stem here is one 3×3 convolution
    with stride 1 and no max-pool, so the stages see 48, 24, 12 and 6 pixels. Written here because
    torchvision is not a dependency.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferlab.models._base import FERModel
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model

__all__ = ["BasicBlock", "ResNet", "resnet18"]


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers plus a shortcut (projected when stride or width changes)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(FERModel):
    """ResNet of basic blocks with a small-image stem (3×3 conv, stride 1, no max-pool)."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        *,
        blocks: tuple[int, ...] = (2, 2, 2, 2),
        channels: tuple[int, ...] = (64, 128, 256, 512),
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        # Padded stride-2 convolutions round up, so any size leaves at least a 1×1 map.
        self.input_size = resolve_input_size(in_chans, input_size, (48, 48), 1, "ResNet")
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, channels[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        )
        layers: list[nn.Module] = []
        prev = channels[0]
        for i, (n, width) in enumerate(zip(blocks, channels, strict=True)):
            for j in range(n):
                layers.append(BasicBlock(prev, width, stride=2 if i > 0 and j == 0 else 1))
                prev = width
        self.layers = nn.Sequential(*layers)
        self.num_features = prev
        self.fc = nn.Linear(prev, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.stem(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


@register_model(source="He et al. 2015 (tried by Meen et al.)")
def resnet18(
    num_classes: int = 7, in_chans: int = 1, input_size: int | tuple[int, ...] | None = None
) -> ResNet:
    """ResNet18 (blocks 2-2-2-2) for 48×48 input with a 3×3 stride-1 stem and no max-pool."""
    return ResNet(num_classes, in_chans, input_size, blocks=(2, 2, 2, 2))
