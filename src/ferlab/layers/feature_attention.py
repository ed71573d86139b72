"""Feature maps of another network used as attention on an image or a feature map.

Origin: Meen, Yoshioka & Inoue, "Facial Emotion Recognition using Facial Features as an
Attention Mechanism" (Models 1–3), whose weighting follows the attention branch network of
Fukui et al. and the spatial softmax of Jetley et al.'s "Learn to pay attention".

One :class:`FeatureMapAttention` takes a target ``x`` (an image or an internal feature map) and
an attention tensor ``feats`` with ``channels`` channels, in three steps:

1. **Reduce** ``feats`` to ``k`` maps (``features``): ``"all"`` keeps every channel ("using all
   the 512 features"), ``"average"`` averages them into one map ("averaging all the features into
   a (1, 5, 5) tensor"), ``"conv"`` learns a 1×1 convolution to one map ("sending the features
   through a convolutional layer with a (1, 5, 5) tensor as the output"; the kernel size is not
   given, and 1×1 keeps the 5×5 grid).
2. **Weigh** (``softmax=True``, Model 2: "the facial features being sent through a softmax layer
   and weighted"): a softmax over the spatial locations of each map, the normalisation Jetley et
   al. use for attention maps, multiplied by the number of locations so that a uniform map equals
   1 rather than 1/(h·w) and the image keeps its scale; then each map is multiplied by its own
   learned weight (initialised to 1), "so that the more important features get to contribute
   more to the attention map".
3. **Interpolate** the maps to the size of ``x`` (bilinear; the paper says only "interpolated to
   the same dimensions as the input image") and **combine** them with ``x`` (``combine``):
   ``"concat"`` stacks them as extra channels, ``"multiply"`` is the paper's Eq. 1,
   ``inp = ffeats · img``, and ``"weighted"`` its Eq. 2, ``inp = (1 + ffeats) · img``, which keeps
   every pixel of the image non-zero. With ``k`` maps and a ``C``-channel target, the products
   give ``k·C`` channels (each map times each target channel: for a grey image, one per map).

``out_channels(C)`` tells the caller how many channels the result has. Called with the
convolution that takes the result (``conv=``), the layer returns that convolution's output
instead; with ``k > 1`` maps concatenated it computes it without building the ``k``-channel input
at full size (see :meth:`FeatureMapAttention.forward`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ferlab.errors import UnknownNameError
from ferlab.layers import register_attention

__all__ = ["COMBINE_MODES", "FEATURE_MODES", "FeatureMapAttention"]

FEATURE_MODES = ("all", "average", "conv")
COMBINE_MODES = ("concat", "multiply", "weighted")


@register_attention("feature_map")
class FeatureMapAttention(nn.Module):
    """Combine ``x`` with attention maps derived from another network's features ``feats``."""

    def __init__(
        self,
        channels: int,
        *,
        features: str = "average",
        combine: str = "weighted",
        softmax: bool = False,
    ) -> None:
        super().__init__()
        if features not in FEATURE_MODES:
            raise UnknownNameError("feature mode", features, list(FEATURE_MODES))
        if combine not in COMBINE_MODES:
            raise UnknownNameError("combine mode", combine, list(COMBINE_MODES))
        self.channels = channels
        self.features = features
        self.combine = combine
        self.maps = channels if features == "all" else 1
        self.reduce = nn.Conv2d(channels, 1, 1) if features == "conv" else None
        self.map_weights = nn.Parameter(torch.ones(self.maps)) if softmax else None

    def out_channels(self, in_channels: int) -> int:
        """Channels of ``forward(x, feats)`` for an ``x`` with ``in_channels`` channels."""
        if self.combine == "concat":
            return in_channels + self.maps
        return in_channels * self.maps

    def attention_maps(self, feats: torch.Tensor) -> torch.Tensor:
        """The reduced and (with ``softmax``) weighted maps, B×k×h×w at the size of ``feats``."""
        return self._weighted(self._normalised(feats))

    def _normalised(self, feats: torch.Tensor) -> torch.Tensor:
        """The reduced maps, spatially softmaxed with ``softmax``: all but the learned weights."""
        if self.reduce is not None:
            maps = self.reduce(feats)
        elif self.features == "average":
            maps = feats.mean(dim=1, keepdim=True)
        else:
            maps = feats
        if self.map_weights is not None:
            b, k, h, w = maps.shape
            maps = torch.softmax(maps.reshape(b, k, h * w), dim=-1).reshape(b, k, h, w) * (h * w)
        return maps

    def _weighted(self, maps: torch.Tensor) -> torch.Tensor:
        if self.map_weights is None:
            return maps
        return maps * self.map_weights.view(1, -1, 1, 1)

    def forward(
        self, x: torch.Tensor, feats: torch.Tensor, conv: nn.Conv2d | None = None
    ) -> torch.Tensor:
        """``x`` combined with the maps; with ``conv``, ``conv`` applied to that combination.

        Concatenating ``k > 1`` maps (``features="all"``: 64 to 512 of them) built a
        ``k``-channel input at full size, and convolving it was most of a training step.
        Interpolation and convolution are both linear, so :meth:`_folded_conv` computes the same
        output with the convolution's channel mixing applied first, on the small maps: the same
        function of the same parameters, only rounding differs (``conv`` itself is not called,
        so hooks on it do not run). Products with the image (Eq. 1 and 2) gain nothing from it:
        the image multiplies at full size, so they take the plain order.
        """
        if conv is not None:
            if self.combine == "concat" and self.maps > 1 and _foldable(conv):
                return self._folded_conv(x, self.attention_maps(feats), conv)
            return conv(self(x, feats))
        maps = self._normalised(feats)
        if maps.shape[-2:] != x.shape[-2:]:
            # In the layout of the network's features (channels-last in training), so that the
            # large interpolated maps are never converted; the learned weights are applied after
            # the interpolation (linear: the same result), so that unless the maps themselves
            # learn (features="conv") no gradient flows back through it. Both matter for
            # features="all": most of a training step went to them.
            layout = (
                torch.channels_last
                if feats.is_contiguous(memory_format=torch.channels_last)
                and not feats.is_contiguous()
                else torch.contiguous_format
            )
            maps = F.interpolate(
                maps.contiguous(memory_format=layout),
                size=x.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )
        return self.combine_maps(x, self._weighted(maps))

    def combine_maps(self, x: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """``x`` with ``maps`` (already at its size and weighted) as ``combine`` says."""
        if self.combine == "concat":
            return torch.cat([x, maps], dim=1)
        if self.combine == "weighted":
            maps = 1 + maps
        if self.maps == 1:
            return x * maps
        # Each of the k maps times each of the C target channels: B×(k·C)×H×W.
        return (maps.unsqueeze(2) * x.unsqueeze(1)).flatten(1, 2)

    def _folded_conv(self, x: torch.Tensor, maps: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
        """``conv(cat(x, interpolate(maps)))`` for a stride-1 convolution that keeps the size.

        The image's channels are convolved as they are. For the maps' channels,
        ``G_t = Σ_i W[:, c + i, t] · maps_i`` is formed per kernel tap ``t`` at the maps' size;
        then ``Σ_t S_t U(G_t)``, with ``U`` the bilinear interpolation and ``S_t`` the tap's shift,
        is two small matrix products per map (``U`` is separable: rows, then columns).
        """
        c, height, width = x.shape[1:]
        kh, kw = conv.kernel_size
        out = F.conv2d(x, conv.weight[:, :c], conv.bias, padding=conv.padding)
        g = torch.einsum("oktu,bkij->botuij", conv.weight[:, c:], maps)
        rows = _shifted_interpolation(maps.shape[-2], height, kh, conv.padding[0], g)
        cols = _shifted_interpolation(maps.shape[-1], width, kw, conv.padding[1], g)
        return out + torch.einsum("tpi,botuij,uqj->bopq", rows, g, cols)


def _foldable(conv: nn.Module) -> bool:
    """A plain 2-D convolution of stride 1 whose zero padding keeps the input's size."""
    if type(conv) is not nn.Conv2d or conv.groups != 1 or conv.padding_mode != "zeros":
        return False
    if isinstance(conv.padding, str):
        return False
    kh, kw = conv.kernel_size
    return (
        conv.stride == (1, 1)
        and conv.dilation == (1, 1)
        and kh == 2 * conv.padding[0] + 1
        and kw == 2 * conv.padding[1] + 1
    )


def _shifted_interpolation(
    size: int, out_size: int, kernel: int, pad: int, like: torch.Tensor
) -> torch.Tensor:
    """``A[t, p, i]``: the weight of input row ``i`` at output row ``p + t - pad`` of a bilinear
    interpolation from ``size`` to ``out_size`` (zero outside), kernel × out_size × size."""
    eye = torch.eye(size, dtype=like.dtype, device=like.device).view(size, 1, size, 1)
    # Interpolating each unit vector gives one column of the interpolation matrix; the other
    # axis stays 1 → 1, so its weights are exactly 1.
    matrix = F.interpolate(eye, size=(out_size, 1), mode="bilinear", align_corners=False)
    matrix = F.pad(matrix.view(size, out_size).T, (0, 0, pad, kernel - 1 - pad))
    return torch.stack([matrix[t : t + out_size] for t in range(kernel)])
