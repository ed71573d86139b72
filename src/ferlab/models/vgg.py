"""VGG19 with batch normalisation for 44×44 face crops, and the face / non-face network.

Origin
    Simonyan & Zisserman's VGG19 ("Very Deep Convolutional Networks for Large-Scale Image
    Recognition", 2014), in the form used for FER2013 by Meen, Yoshioka & Inoue ("Facial Emotion
    Recognition using Facial Features as an Attention Mechanism"): "All models are based on
    VGG19 [...] and all models are trained from scratch". Their plain VGG19 is the 72.61% baseline
    of Table 1, trained on "randomly cropped [...] 44 x 44 sized images, then randomly horizontally
    flipped", SGD (momentum 0.9, weight decay 5e-4, learning rate 0.01 divided by 10 after 50%,
    75% and 90% of the epochs), cross-entropy loss.

Architecture
    The common VGG19 recipe for 44×44 FER crops: sixteen 3×3 convolutions (padding 1), each
    followed by batch norm and ReLU, in five stages of 64×2, 128×2, 256×4, 512×4 and 512×4
    channels, a 2×2 max-pool after every stage, global average pooling, dropout 0.5 and one
    linear layer. The spatial size goes 44 → 22 → 11 → 5 → 2 → 1, so the classifier sees 512
    features. The convolutions have no bias because the batch norm that follows has its own.

Where the paper's (512, 5, 5) facial features come from
    The paper describes the face network's output as "a (512, 5, 5) feature tensor where 512 is
    the depth (number of features), and 5, 5 are the width and height". Its face network "uses the
    same architecture as the emotion classification network" and receives the same 44×44 input.
    In that network the only 512-channel 5×5 map is the output of stage four (its fourth
    conv + BN + ReLU, before the fourth max-pool): three pools take 44 to 5. Putting a 5×5 map
    after all five pools instead would need at least 160×160 input, far beyond FER2013's 48×48
    images. So the face network here is this same VGG19 with two classes, and its facial features
    are the stage-four output, :data:`FACE_FEATURE_STAGE`; :meth:`VGG.stage_outputs` returns it.

Width
    ``width`` scales every stage's channel count (``width=0.25`` gives 16, 32, 64, 128, 128): a
    smaller backbone of the same shape for CPU training, where the full VGG19 costs about
    45 minutes per FER2013 epoch on two cores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferlab.errors import FerlabError
from ferlab.models._base import FERModel
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model

__all__ = ["FACE_FEATURE_STAGE", "VGG", "VGG19_STAGES", "face_vgg19", "vgg19"]

#: (channels, convolutions) of each VGG19 stage at ``width=1``.
VGG19_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 4), (512, 4), (512, 4))

#: 1-based stage whose output is the face network's (512, 5, 5) feature tensor on 44×44 input.
FACE_FEATURE_STAGE = 4

# Five 2×2 max-pools: below 32 pixels the fifth stage would get an empty map.
_MIN_SIZE = 32


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class VGG(FERModel):
    """VGG with batch norm: ``stages`` of 3×3 conv-BN-ReLU, each followed by a 2×2 max-pool.

    ``forward_features`` returns the map after the last pool (512×1×1 on 44×44 input);
    ``forward_head`` pools it globally, applies dropout and the linear classifier.
    ``stage_outputs`` gives the pre-pool output of each stage, used as attention features by
    :mod:`ferlab.models.facial_attention`.
    """

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        *,
        width: float = 1.0,
        drop_rate: float = 0.5,
        stages: tuple[tuple[int, int], ...] = VGG19_STAGES,
    ) -> None:
        super().__init__()
        if width <= 0:
            raise FerlabError(f"VGG: width must be positive, got {width}")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = resolve_input_size(in_chans, input_size, (44, 44), _MIN_SIZE, "VGG")
        self.width = width
        self.stage_channels = tuple(_scaled(channels, width) for channels, _ in stages)

        self.stages = nn.ModuleList()
        prev = in_chans
        for channels, (_, convs) in zip(self.stage_channels, stages, strict=True):
            layers: list[nn.Module] = []
            for _ in range(convs):
                layers += [
                    nn.Conv2d(prev, channels, 3, padding=1, bias=False),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                ]
                prev = channels
            self.stages.append(nn.Sequential(*layers))
        self.pool = nn.MaxPool2d(2, 2)
        self.num_features = prev
        self.head_drop = nn.Dropout(drop_rate)
        self.classifier = nn.Linear(prev, num_classes)
        _init_weights(self)

    def stage_outputs(self, x: torch.Tensor, last: int | None = None) -> list[torch.Tensor]:
        """Outputs of stages 1..``last`` (all by default), each before its max-pool."""
        outputs = []
        for i, stage in enumerate(self.stages[: len(self.stages) if last is None else last]):
            if i:
                x = self.pool(x)
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = self.pool(stage(x))
        return x

    def features_after_first_conv(self, x: torch.Tensor) -> torch.Tensor:
        """``forward_features`` from the first convolution's output on, for a caller that computes
        that convolution itself (:class:`ferlab.layers.feature_attention.FeatureMapAttention`)."""
        for layer in self.stages[0][1:]:
            x = layer(x)
        x = self.pool(x)
        for stage in self.stages[1:]:
            x = self.pool(stage(x))
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        # On 44×44 input the map is already 1×1; global pooling keeps other sizes working.
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.classifier(self.head_drop(x))


def _init_weights(model: nn.Module) -> None:
    """He initialisation for convolutions (as torchvision's VGG), unit BN, zero biases."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


@register_model(source="Simonyan & Zisserman 2014 (baseline of Meen et al.)")
def vgg19(
    num_classes: int = 7,
    in_chans: int = 1,
    input_size: int | tuple[int, ...] | None = None,
    *,
    width: float = 1.0,
    drop_rate: float = 0.5,
) -> VGG:
    """VGG19-BN for 44×44 crops, the emotion network of Meen et al. (``width`` scales channels)."""
    return VGG(num_classes, in_chans, input_size, width=width, drop_rate=drop_rate)


@register_model(source="Meen, Yoshioka & Inoue (face network)")
def face_vgg19(
    num_classes: int = 2,
    in_chans: int = 1,
    input_size: int | tuple[int, ...] | None = None,
    *,
    width: float = 1.0,
    drop_rate: float = 0.5,
) -> VGG:
    """The face / non-face classifier of Meen et al.: the same VGG19, two classes.

    Its stage-four output (:data:`FACE_FEATURE_STAGE`) is the (512, 5, 5) facial-feature tensor
    that Models 1–3 use as attention.
    """
    return VGG(num_classes, in_chans, input_size, width=width, drop_rate=drop_rate)
