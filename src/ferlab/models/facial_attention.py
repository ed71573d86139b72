"""Facial features as an attention mechanism: Models 1, 2 and 3 of Meen, Yoshioka & Inoue.

Origin
    H. K. Meen, M. Yoshioka, K. Inoue, "Facial Emotion Recognition using Facial Features as an
    Attention Mechanism". Two independent networks: a face / non-face classifier trained on its own
    data set (:func:`ferlab.models.vgg.face_vgg19`) and an emotion network
    (:func:`ferlab.models.vgg.vgg19`), both VGG19 trained from scratch. "The input image is first
    sent through the face classification network in order to get the features", which then act as
    attention for the emotion network. Here the face network is **frozen**: its parameters do not
    require gradients, its features are computed without autograd, and it stays in eval mode (batch
    norm running statistics fixed) even when the whole model is put in train mode. A fresh face
    network of the same width is built when none is given; train one with ``face_vgg19`` on the
    face / non-face data and pass it as ``face_net`` (or name its checkpoint in a recipe's
    ``model.face_checkpoint``, :mod:`ferlab.engine.face_network`). The face network was
    trained on its own data's normalisation: ``set_face_input_normalization`` maps the model's
    input onto it (two buffers saved with the weights). :func:`ferlab.explain.facial_attention_maps`
    draws the maps a model applies, like the paper's Figs. 3 and 4 (``docs/facial_attention.md``).

Model 1 (:func:`facial_attention_m1`)
    "The facial features are represented by a (512, 5, 5) feature tensor" (the face network's
    stage-four output on 44×44 input, see :mod:`ferlab.models.vgg`). Variations: ``features="all"``
    (all 512), ``"average"`` (averaged into (1, 5, 5)) or ``"conv"`` (a learned 1×1 convolution to
    (1, 5, 5)). "The resulting tensor is then interpolated to the same dimensions as the input
    image, and then either concatenated with the input image or the dot-product is taken":
    ``combine="concat"``, ``"multiply"`` (Eq. 1, ``ffeats · img``) or ``"weighted"`` (Eq. 2,
    ``(1 + ffeats) · img``). The result is classified by the emotion VGG19, whose first
    convolution takes as many channels as the combination gives (e.g. 513 for all features
    concatenated to a grey image). The layer doing this is
    :class:`ferlab.layers.feature_attention.FeatureMapAttention`.

Model 2 (:func:`facial_attention_m2`)
    "The same as Model 1 with the addition of the facial features being sent through a softmax
    layer and weighted". The paper does not say over which axis the softmax runs; it runs over the
    spatial locations of each map (as in Jetley et al.'s "Learn to pay attention", which the paper
    cites for its weighting), scaled by the number of locations so a uniform map is 1, and each map
    then gets its own learned weight ("some features might have a higher importance than the
    others").

Model 3 (:func:`facial_attention_m3`)
    "The facial features in this model are extracted from three different layers in the face
    classification network": the paper does not name them. The late one is the stage-four output
    that Models 1 and 2 use; early and mid are the outputs of stages two and three, so the maps are
    22×22, 11×11 and 5×5 on 44×44 input (stage five's 2×2 map is too coarse to locate anything).
    Each map source is reduced to one map by a learned 1×1 convolution and weighted as in Model 2
    ("As in Model 2, all the features are weighted"); an attention map from stage *s* is applied to
    the emotion network's own stage-*s* output, after its last convolution and before its
    max-pool (Fig. 2: "weighted features applied to the last layer output"), with ``combine``
    ``"multiply"`` (Eq. 1, the best for Model 3 in the paper) or ``"weighted"`` (Eq. 2).
    ``mode`` picks the variation:

    - ``"facial"``: "using only the facial features": maps from the face network's stages.
    - ``"emotion"``: only the emotion network's own stage features, i.e. self-attention; this
      variation uses no face network at all.
    - ``"combination"``: "concatenating or taking the dot-product between the facial features and
      the features from the emotion recognition network": ``fuse="concat"`` stacks the two along
      channels before the 1×1 convolution, ``fuse="product"`` multiplies them elementwise (same
      width needed). The paper does not say which one Table 1's row used; ``"concat"`` is the
      default because its convolution can learn any mix of the two, the product included up to
      a sign.
    - ``"separately"``: "applying the facial features to the input image as attention similar to
      Model 1, before extracting and applying the emotion features to create the final attention
      map": each of the three facial maps is interpolated to the input and combined with the image
      (the three results stacked as channels), then the emotion network attends to its own stage
      features as in ``"emotion"``.

Table 1 (FER2013 test accuracy)
    Every row is constructible by keyword; :data:`TABLE1_VARIANTS` maps the row to the registry
    name and keyword arguments, following the paper's note on which variation each row reports
    ("For Model 1, this is the variation with weighted dot-product (Eq. 2). For Model 2 using
    concatenation with all features, and using weighted dot-product with averaging [...]. For
    Model 3, using simple dot-product (Eq. 1) gave the best results."):

    ============================  ===================================================  ========
    row                           ``create_model(...)``                                accuracy
    ============================  ===================================================  ========
    VGG19                         ``"vgg19"``                                          72.61%
    Model 1 (all features)        ``"facial_attention_m1", features="all",             72.9%
                                  combine="weighted"``
    Model 1 (averaging)           ``"facial_attention_m1", features="average",         73.1%
                                  combine="weighted"``
    Model 2 (all features)        ``"facial_attention_m2", features="all",             73.08%
                                  combine="concat"``
    Model 2 (averaging)           ``"facial_attention_m2", features="average",         72.69%
                                  combine="weighted"``
    Model 3 (facial features)     ``"facial_attention_m3", mode="facial"``             73.35%
    Model 3 (emotion features)    ``"facial_attention_m3", mode="emotion"``            73.08%
    Model 3 (combination)         ``"facial_attention_m3", mode="combination",         72.97%
                                  fuse="concat"``
    Model 3 (separately)          ``"facial_attention_m3", mode="separately"``         73.59%
    ============================  ===================================================  ========

    (Model 3 rows use ``combine="multiply"``, the default.) Training in the paper: 44×44 random
    crops with horizontal flips, batch 128 for Models 1–2 and 16 for Model 3, 150–300 epochs, SGD
    with momentum 0.9, weight decay 5e-4, learning rate 0.01 divided by 10 after 50%, 75% and 90%
    of the epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ferlab.errors import FerlabError, UnknownNameError
from ferlab.layers.feature_attention import FeatureMapAttention
from ferlab.models._base import FERModel
from ferlab.models._info import resolve_input_size
from ferlab.models._registry import register_model
from ferlab.models.vgg import FACE_FEATURE_STAGE, VGG, face_vgg19

__all__ = [
    "ATTENTION_STAGES",
    "M3_MODES",
    "TABLE1_VARIANTS",
    "FacialAttentionNet",
    "MultiStageAttentionNet",
    "Table1Variant",
    "facial_attention_m1",
    "facial_attention_m2",
    "facial_attention_m3",
]

_SOURCE = "Meen, Yoshioka & Inoue"

#: 1-based VGG stages (early, mid, late) whose outputs Model 3 uses as attention.
ATTENTION_STAGES: tuple[int, ...] = (2, 3, FACE_FEATURE_STAGE)
M3_MODES = ("facial", "emotion", "combination", "separately")
_M3_COMBINE = ("multiply", "weighted")
_FUSE_MODES = ("concat", "product")


@dataclass(frozen=True)
class Table1Variant:
    """One row of the paper's Table 1: the registered model, its keywords, reported accuracy."""

    model: str
    kwargs: dict[str, Any]
    accuracy: float
    """FER2013 test accuracy reported by the paper, in percent."""


TABLE1_VARIANTS: dict[str, Table1Variant] = {
    "VGG19": Table1Variant("vgg19", {}, 72.61),
    "Model 1 (all features)": Table1Variant(
        "facial_attention_m1", {"features": "all", "combine": "weighted"}, 72.9
    ),
    "Model 1 (averaging)": Table1Variant(
        "facial_attention_m1", {"features": "average", "combine": "weighted"}, 73.1
    ),
    "Model 2 (all features)": Table1Variant(
        "facial_attention_m2", {"features": "all", "combine": "concat"}, 73.08
    ),
    "Model 2 (averaging)": Table1Variant(
        "facial_attention_m2", {"features": "average", "combine": "weighted"}, 72.69
    ),
    "Model 3 (facial features)": Table1Variant(
        "facial_attention_m3", {"mode": "facial", "combine": "multiply"}, 73.35
    ),
    "Model 3 (emotion features)": Table1Variant(
        "facial_attention_m3", {"mode": "emotion", "combine": "multiply"}, 73.08
    ),
    "Model 3 (combination)": Table1Variant(
        "facial_attention_m3",
        {"mode": "combination", "combine": "multiply", "fuse": "concat"},
        72.97,
    ),
    "Model 3 (separately)": Table1Variant(
        "facial_attention_m3", {"mode": "separately", "combine": "multiply"}, 73.59
    ),
}


def _frozen_face_net(face_net: nn.Module | None, in_chans: int, width: float) -> VGG:
    if face_net is None:
        face_net = face_vgg19(in_chans=in_chans, width=width)
    elif not isinstance(face_net, VGG):
        raise FerlabError(
            "face_net must be a ferlab VGG face network (face_vgg19), "
            f"got {type(face_net).__name__}"
        )
    if face_net.in_chans != in_chans:
        raise FerlabError(
            f"face_net takes {face_net.in_chans} input channel(s) but the model takes {in_chans}"
        )
    face_net.requires_grad_(False)
    face_net.eval()
    return face_net


class _FaceAttentionModel(FERModel):
    """Shared parts: the frozen face network and the emotion network's head."""

    face_net: VGG | None
    emotion_net: VGG
    face_input_scale: torch.Tensor
    face_input_shift: torch.Tensor

    def _set_face_net(self, face_net: VGG | None) -> None:
        self.face_net = face_net
        if face_net is not None:
            # The face network was trained on its own data set, normalised with that set's
            # statistics; these buffers map this model's input onto them (identity until
            # set_face_input_normalization) and travel with the weights in every checkpoint.
            self.register_buffer("face_input_scale", torch.tensor(1.0))
            self.register_buffer("face_input_shift", torch.tensor(0.0))

    def set_face_input_normalization(
        self, mean: float, std: float, face_mean: float, face_std: float
    ) -> None:
        """Feed the face network what it was trained on.

        The model's input is normalised with the emotion data's ``mean`` and ``std``; the face
        network expects ``(image - face_mean) / face_std``, i.e. ``x · std / face_std +
        (mean - face_mean) / face_std`` (all on the [0, 1] pixel scale).
        """
        if self.face_net is None:
            raise FerlabError(f"{type(self).__name__} has no face network to normalise for")
        self.face_input_scale.fill_(std / face_std)
        self.face_input_shift.fill_((mean - face_mean) / face_std)

    def train(self, mode: bool = True) -> _FaceAttentionModel:
        super().train(mode)
        if self.face_net is not None:
            # Frozen: batch norm must keep the face network's running statistics.
            self.face_net.eval()
        return self

    def _face_features(self, x: torch.Tensor, last: int) -> list[torch.Tensor]:
        assert self.face_net is not None
        with torch.no_grad():
            x = x * self.face_input_scale + self.face_input_shift
            return self.face_net.stage_outputs(x, last)

    def _emotion_vgg(self, emotion_in: int, *, width: float, drop_rate: float) -> VGG:
        """The emotion VGG19 at the model's input size, its first convolution taking
        ``emotion_in`` channels (the image as the attention combined it)."""
        return VGG(
            self.num_classes,
            emotion_in,
            (emotion_in, *self.input_size[1:]),
            width=width,
            drop_rate=drop_rate,
        )

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.emotion_net.forward_head(x)


class FacialAttentionNet(_FaceAttentionModel):
    """Models 1 and 2: the face network's (512, 5, 5) features as attention on the input image."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        *,
        features: str = "average",
        combine: str = "weighted",
        softmax: bool = False,
        width: float = 1.0,
        drop_rate: float = 0.5,
        face_net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = resolve_input_size(
            in_chans, input_size, (44, 44), 32, "facial attention model"
        )
        self._set_face_net(_frozen_face_net(face_net, in_chans, width))
        assert self.face_net is not None
        self.attention = FeatureMapAttention(
            self.face_net.stage_channels[FACE_FEATURE_STAGE - 1],
            features=features,
            combine=combine,
            softmax=softmax,
        )
        self.emotion_net = self._emotion_vgg(
            self.attention.out_channels(in_chans), width=width, drop_rate=drop_rate
        )

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        facial = self._face_features(x, FACE_FEATURE_STAGE)[-1]
        stage = self.emotion_net.stages[0]
        if any(m._forward_hooks or m._forward_pre_hooks for m in (stage, stage[0])):
            # An explanation watches the first convolution: it must run as a module.
            return self.emotion_net.forward_features(self.attention(x, facial))
        # The attention layer applies the first convolution itself: with all features
        # concatenated that skips building the many-channel input (the same function, a third
        # of the training step's cost).
        first = self.attention(x, facial, conv=stage[0])
        return self.emotion_net.features_after_first_conv(first)


class MultiStageAttentionNet(_FaceAttentionModel):
    """Model 3: weighted attention maps from three stages, applied inside the emotion network."""

    def __init__(
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int | tuple[int, ...] | None = None,
        *,
        mode: str = "separately",
        combine: str = "multiply",
        fuse: str = "concat",
        width: float = 1.0,
        drop_rate: float = 0.5,
        face_net: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if mode not in M3_MODES:
            raise UnknownNameError("Model 3 mode", mode, list(M3_MODES))
        if combine not in _M3_COMBINE:
            raise UnknownNameError("Model 3 combine mode", combine, list(_M3_COMBINE))
        if fuse not in _FUSE_MODES:
            raise UnknownNameError("fuse mode", fuse, list(_FUSE_MODES))
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.input_size = resolve_input_size(in_chans, input_size, (44, 44), 32, "Model 3")
        self.mode, self.fuse = mode, fuse

        if mode == "emotion":
            if face_net is not None:
                raise FerlabError("Model 3 mode 'emotion' uses no face network; drop face_net")
            self._set_face_net(None)
        else:
            self._set_face_net(_frozen_face_net(face_net, in_chans, width))

        # "separately" stacks the image as attended by each of the three facial maps.
        emotion_in = in_chans * len(ATTENTION_STAGES) if mode == "separately" else in_chans
        self.emotion_net = self._emotion_vgg(emotion_in, width=width, drop_rate=drop_rate)
        if mode == "separately":
            assert self.face_net is not None
            self.input_attention: nn.ModuleList | None = nn.ModuleList(
                FeatureMapAttention(
                    self.face_net.stage_channels[s - 1],
                    features="conv",
                    combine=combine,
                    softmax=True,
                )
                for s in ATTENTION_STAGES
            )
        else:
            self.input_attention = None
        self.stage_attention = nn.ModuleList(
            FeatureMapAttention(
                self._source_channels(s), features="conv", combine=combine, softmax=True
            )
            for s in ATTENTION_STAGES
        )

    def _source_channels(self, stage: int) -> int:
        emotion = self.emotion_net.stage_channels[stage - 1]
        if self.mode in ("emotion", "separately"):
            return emotion
        assert self.face_net is not None
        facial = self.face_net.stage_channels[stage - 1]
        if self.mode == "facial":
            return facial
        if self.fuse == "concat":
            return facial + emotion
        if facial != emotion:
            raise FerlabError(
                f"Model 3 fuse='product' needs face and emotion networks of the same width; "
                f"stage {stage} has {facial} facial and {emotion} emotion channels"
            )
        return emotion

    def _attention_source(self, emotion: torch.Tensor, facial: torch.Tensor | None) -> torch.Tensor:
        if self.mode in ("emotion", "separately"):
            return emotion
        assert facial is not None
        if self.mode == "facial":
            return facial
        if self.fuse == "concat":
            return torch.cat([facial, emotion], dim=1)
        return facial * emotion

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        facial = None
        if self.face_net is not None:
            facial = self._face_features(x, max(ATTENTION_STAGES))
        if self.input_attention is not None:
            assert facial is not None
            x = torch.cat(
                [
                    att(x, facial[s - 1])
                    for att, s in zip(self.input_attention, ATTENTION_STAGES, strict=True)
                ],
                dim=1,
            )
        attend = dict(zip(ATTENTION_STAGES, self.stage_attention, strict=True))
        for stage_no, stage in enumerate(self.emotion_net.stages, start=1):
            x = stage(x)
            if stage_no in attend:
                source = self._attention_source(x, None if facial is None else facial[stage_no - 1])
                x = attend[stage_no](x, source)
            x = self.emotion_net.pool(x)
        return x


@register_model(source=_SOURCE)
def facial_attention_m1(
    num_classes: int = 7,
    in_chans: int = 1,
    input_size: int | tuple[int, ...] | None = None,
    *,
    features: str = "average",
    combine: str = "weighted",
    width: float = 1.0,
    drop_rate: float = 0.5,
    face_net: nn.Module | None = None,
) -> FacialAttentionNet:
    """Model 1: facial features (``features`` all / average / conv) combined with the image
    (``combine`` concat / multiply = Eq. 1 / weighted = Eq. 2). Defaults: Table 1's best Model 1.
    """
    return FacialAttentionNet(
        num_classes,
        in_chans,
        input_size,
        features=features,
        combine=combine,
        softmax=False,
        width=width,
        drop_rate=drop_rate,
        face_net=face_net,
    )


@register_model(source=_SOURCE)
def facial_attention_m2(
    num_classes: int = 7,
    in_chans: int = 1,
    input_size: int | tuple[int, ...] | None = None,
    *,
    features: str = "all",
    combine: str = "concat",
    width: float = 1.0,
    drop_rate: float = 0.5,
    face_net: nn.Module | None = None,
) -> FacialAttentionNet:
    """Model 2: Model 1 with spatially softmaxed, learned-weight facial features.

    Defaults: Table 1's best Model 2 (all features, concatenated).
    """
    return FacialAttentionNet(
        num_classes,
        in_chans,
        input_size,
        features=features,
        combine=combine,
        softmax=True,
        width=width,
        drop_rate=drop_rate,
        face_net=face_net,
    )


@register_model(source=_SOURCE)
def facial_attention_m3(
    num_classes: int = 7,
    in_chans: int = 1,
    input_size: int | tuple[int, ...] | None = None,
    *,
    mode: str = "separately",
    combine: str = "multiply",
    fuse: str = "concat",
    width: float = 1.0,
    drop_rate: float = 0.5,
    face_net: nn.Module | None = None,
) -> MultiStageAttentionNet:
    """Model 3: weighted attention from three stages (``mode`` facial / emotion / combination /
    separately). Defaults: Table 1's best Model 3 ("separately", Eq. 1).
    """
    return MultiStageAttentionNet(
        num_classes,
        in_chans,
        input_size,
        mode=mode,
        combine=combine,
        fuse=fuse,
        width=width,
        drop_rate=drop_rate,
        face_net=face_net,
    )
