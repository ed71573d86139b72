"""Jahromi & Fyshe's shallow, medium and deep CNNs.

Paper: M. Honari Jahromi and A. Fyshe, "Facial Emotion Recognition with Convolutional Neural
Networks" (University of Victoria). Three Keras networks of increasing depth, trained from scratch
on FER2013 (48×48 grayscale, 7 classes) with Adam (lr 0.01, halved when validation accuracy stalls
for 25 epochs), per-pixel standardisation and on-the-fly augmentation (horizontal flips, shifts of
10 %). Reported test accuracy (their Table 1): shallow 48.06 %; medium 56.42 % (63.13 % with
augmentation); deep 58.98 % (68.23 % with augmentation).

* **shallow** (2 convolutions, 4.7 M parameters): "each convolutional layer uses kernels of size
  3×3 with stride 1 and [is] followed by a max-pooling layer", batch norm after each convolution,
  dropout after the first of the two fully connected layers, ReLU.
* **medium** (3 convolutions, 2.4 M): "32C5×5 → MP3×3 → BN → 32C4×4 → MP3×3 → BN → 64C5×5 →
  MP3×3 → BN → 1024FC → D → 7FC", after Kim et al.
* **deep** (11 layers, 9.4 M): "similar to VGG-B where [the] last CC-MP block was deleted", with
  "drop out and batch normalization after each CC-MP block" and "drop out and L2-regularization"
  on the fully connected layers.

Details the paper leaves open are taken from the authors' public Keras code (the ``shallow``,
``kim`` and ``vggnet`` functions of github.com/mahon94/empathy), and with them the parameter
counts land on the paper's (4.74 M, 2.44 M and 9.41 M at 1×48×48, 7 classes):

* all convolutions use "same" padding, so only the poolings shrink the map; pooling is 2×2 in the
  shallow and deep networks and 3×3 with stride 2 (padded, i.e. ⌈n/2⌉) in the medium one;
* the order inside a block is convolution → ReLU → max-pool → batch norm (→ dropout 0.25 in the
  deep network), which is also the order the paper writes for the medium network;
* the hidden fully connected layer has 512 units (shallow) or 1024 (medium, deep). The deep
  network has a single hidden FC layer: that is what gives 9.4 M parameters — the paper's depth of
  11 counts VGG-B's layers after dropping one block, a second FC-1024 would add 1 M;
* dropout before the output layer is 0.5 (the code's value for the shallow and medium networks;
  the paper names dropout for the deep one without a rate).

``keras_init=True`` starts the network as Keras would have: Glorot-uniform weights and zero
biases in every convolution and fully connected layer, and Keras' batch-norm constants (moving
averages with momentum 0.99, i.e. PyTorch's 0.01, and epsilon 1e-3). By default the layers keep
PyTorch's initialisation.

Differences from that code, on purpose: ReLU after the hidden FC layer (the paper states ReLU; the
code used ELU and an extra batch norm there), and no built-in L2 term: the paper's
"L2-regularization [on] the fully connected layers" is the recipe's weight decay restricted to
them (``optim.weight_decay_on: [head.]`` in ``recipes/jahromi_deep*.yaml``; the code penalised
the FC activations instead).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ferlab.models._base import FERModel, mlp_head
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model

__all__ = ["DeepCNN", "MediumCNN", "ShallowCNN", "deep_cnn", "medium_cnn", "shallow_cnn"]

_SOURCE = "Jahromi & Fyshe, Facial Emotion Recognition with Convolutional Neural Networks"


def _same_conv(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    """A stride-1 convolution with Keras' "same" padding.

    For the even 4×4 kernel that is one more pixel after than before; padding explicitly avoids
    the copy (and warning) of ``padding="same"`` with even kernels.
    """
    before, after = (k - 1) // 2, k // 2
    if before == after:
        return [nn.Conv2d(c_in, c_out, k, padding=before)]
    return [nn.ZeroPad2d((before, after, before, after)), nn.Conv2d(c_in, c_out, k)]


class _JahromiCNN(FERModel):
    """Shared head: flatten → FC(hidden) → ReLU → dropout → FC(num_classes)."""

    def __init__(
        self,
        features: nn.Module,
        channels: int,
        feature_hw: tuple[int, int],
        hidden: int,
        drop_rate: float,
        num_classes: int,
        in_chans: int,
        input_chw: tuple[int, int, int],
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans, self.input_size = num_classes, in_chans, input_chw
        self.features = features
        self.num_features = channels  # channels of the feature map, as across the zoo
        self.head = mlp_head(
            channels * feature_hw[0] * feature_hw[1], hidden, num_classes, drop_rate
        )

    def _init_as_keras(self) -> None:
        """Keras' defaults: Glorot-uniform kernels, zero biases, batch norm momentum 0.99 and
        epsilon 1e-3 (the authors trained in Keras; PyTorch's defaults differ in all three)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.momentum, m.eps = 0.01, 1e-3

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)


class ShallowCNN(_JahromiCNN):
    """Two 3×3 conv → ReLU → max-pool 2 → BN blocks (32, 64 filters), FC 512, dropout, FC."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        hidden: int = 512,
        drop_rate: float = 0.5,
        keras_init: bool = False,
    ) -> None:
        chw = resolve_input_size(in_chans, input_size, (48, 48), 4, "shallow_cnn")
        features = nn.Sequential(
            nn.Conv2d(in_chans, 32, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(32),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.BatchNorm2d(64),
        )
        fh, fw = chw[1] // 4, chw[2] // 4
        super().__init__(features, 64, (fh, fw), hidden, drop_rate, num_classes, in_chans, chw)
        if keras_init:
            self._init_as_keras()


class MediumCNN(_JahromiCNN):
    """Kim et al.'s network: 32C5 → MP3 → BN → 32C4 → MP3 → BN → 64C5 → MP3 → BN → FC 1024 → FC."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        hidden: int = 1024,
        drop_rate: float = 0.5,
        keras_init: bool = False,
    ) -> None:
        chw = resolve_input_size(in_chans, input_size, (48, 48), 1, "medium_cnn")
        layers: list[nn.Module] = []
        c_in = in_chans
        for c_out, k in ((32, 5), (32, 4), (64, 5)):
            layers += [
                *_same_conv(c_in, c_out, k),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
                nn.BatchNorm2d(c_out),
            ]
            c_in = c_out
        fh, fw = chw[1:]
        for _ in range(3):  # each padded 3×3/2 pooling gives ⌈n/2⌉
            fh, fw = (fh + 1) // 2, (fw + 1) // 2
        super().__init__(
            nn.Sequential(*layers), 64, (fh, fw), hidden, drop_rate, num_classes, in_chans, chw
        )
        if keras_init:
            self._init_as_keras()


class DeepCNN(_JahromiCNN):
    """VGG-B without its last block: 4 × (two 3×3 convs → MP2 → BN → dropout), FC 1024, FC."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        hidden: int = 1024,
        block_drop_rate: float = 0.25,
        drop_rate: float = 0.5,
        keras_init: bool = False,
    ) -> None:
        chw = resolve_input_size(in_chans, input_size, (48, 48), 2 ** len(widths), "deep_cnn")
        layers: list[nn.Module] = []
        c_in = in_chans
        for c_out in widths:
            layers += [
                nn.Conv2d(c_in, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(c_out, c_out, 3, padding=1),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
                nn.BatchNorm2d(c_out),
                nn.Dropout(block_drop_rate),
            ]
            c_in = c_out
        fh, fw = chw[1] // 2 ** len(widths), chw[2] // 2 ** len(widths)
        super().__init__(
            nn.Sequential(*layers), c_in, (fh, fw), hidden, drop_rate, num_classes, in_chans, chw
        )
        if keras_init:
            self._init_as_keras()


@register_model(source=f"{_SOURCE} (shallow network)")
def shallow_cnn(**kwargs: Any) -> ShallowCNN:
    """Jahromi & Fyshe's shallow network: 2 conv + 2 FC layers, 4.7 M parameters."""
    return ShallowCNN(**kwargs)


@register_model(source=f"{_SOURCE} (medium network, after Kim et al.)")
def medium_cnn(**kwargs: Any) -> MediumCNN:
    """Jahromi & Fyshe's medium network: 3 conv + 2 FC layers, 2.4 M parameters."""
    return MediumCNN(**kwargs)


@register_model(source=f"{_SOURCE} (deep network, VGG-B minus its last block)")
def deep_cnn(**kwargs: Any) -> DeepCNN:
    """Jahromi & Fyshe's deep network: 8 conv + 2 FC layers, 9.4 M parameters."""
    return DeepCNN(**kwargs)
