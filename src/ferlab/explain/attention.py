"""The models' own attention, read out of their layers: transformer warps, self-attention, SE
gates and facial-feature maps.

Every function here runs the network once on the faces, in eval mode, with the attention layers'
``record`` switch on (or a forward hook where the layer keeps nothing), and returns what those
layers computed, brought back to the faces' own size where it is a map:

* :func:`stn_warp` — Deep-Emotion's spatial transformer (``deep_emotion``, ``deep_emotion_msa``,
  ``vggface_stn``, ``vggface_stn_msa``): θ and the face as the network sees it after the warp.
* :func:`self_attention_maps` — Multiple Self-Attention (``deep_emotion_msa``,
  ``vggface_stn_msa``): where a chosen query location attends, per head, the heads' learned
  weights, and their weighted mean.
* :func:`se_channel_weights` — squeeze-and-excitation gates (``chahed_cnn_se``, ``ferlab_net``).
* :func:`facial_attention_maps` — Meen et al.'s facial-feature attention
  (``facial_attention_m1``/``m2``/``m3``): each attention map alone and applied to the input by
  Eq. 1 (``map · img``) and Eq. 2 (``(1 + map) · img``).

:func:`supported_methods` says which of these (and of the other explanations) a model supports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ferlab.errors import FerlabError
from ferlab.explain._subject import Subject, as_faces, evaluating, recording
from ferlab.layers.feature_attention import FeatureMapAttention
from ferlab.layers.self_attention import MultipleSelfAttention
from ferlab.layers.spatial_transformer import SpatialTransformer
from ferlab.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "ATTENTION_METHODS",
    "FacialMap",
    "SelfAttentionMaps",
    "StnWarp",
    "facial_attention_maps",
    "se_channel_weights",
    "self_attention_maps",
    "stn_warp",
    "supported_methods",
]

#: The model-specific explanations and the layer each needs.
ATTENTION_METHODS: dict[str, type[nn.Module]] = {
    "stn": SpatialTransformer,
    "attention": MultipleSelfAttention,
    "se": SqueezeExcite,
    "facial": FeatureMapAttention,
}


def _layers(network: nn.Module, kind: type[nn.Module]) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in network.named_modules() if isinstance(m, kind)]


def supported_methods(model: Any) -> list[str]:
    """Explanation methods ``model`` supports: the heat maps, filter images and misclassified
    grids for every model, plus the attention read-outs of the layers it has."""
    from ferlab.explain.cam import CAM_METHODS

    network = Subject(model).network
    own = [name for name, kind in ATTENTION_METHODS.items() if _layers(network, kind)]
    return [*CAM_METHODS, *own, "filters", "misclassified"]


def _require(subject: Subject, method: str) -> list[tuple[str, nn.Module]]:
    found = _layers(subject.network, ATTENTION_METHODS[method])
    if not found:
        raise FerlabError(
            f"{type(subject.network).__name__} has no {ATTENTION_METHODS[method].__name__} layer "
            f"for '{method}'; it supports: {', '.join(supported_methods(subject.network))}"
        )
    return found


# --------------------------------------------------------------------- spatial transformer


@dataclass(frozen=True)
class StnWarp:
    """The spatial transformer's view of each face.

    Attributes:
        faces: uint8 N×H×W, the faces as given.
        warped: float32 N×H×W, the faces (pixel values 0–255) sampled on the transformer's grid,
            at the faces' size: what the rest of the network receives.
        theta: float32 N×2×3 affine parameters in the network input's normalised coordinates
            (identity ``[[1, 0, 0], [0, 1, 0]]`` = no warp).
    """

    faces: np.ndarray
    warped: np.ndarray
    theta: np.ndarray


def stn_warp(model: Any, faces: Any) -> StnWarp:
    """Run the spatial transformer on ``faces`` and warp them as it warps the network input.

    θ is regressed from the network input (the centre crop for crop-trained checkpoints) and,
    since it is expressed in normalised coordinates, applied to the whole face at its own size,
    with its translation rescaled from the crop to the face; inside the crop this is exactly the
    network's warp.
    """
    subject = Subject(model)
    name, stn = _require(subject, "stn")[0]
    arr = as_faces(faces)
    x = subject.to_input(arr)
    if stn.localization[0].in_channels != x.shape[1]:
        raise FerlabError(f"the spatial transformer '{name}' warps a feature map, not the image")
    with evaluating(subject.network), recording([stn]), torch.no_grad():
        subject.network(x)
    theta = stn.last_theta.float().cpu().clone()
    theta[:, :, 2] *= subject.span
    img = torch.from_numpy(arr).float()[:, None]
    warped = SpatialTransformer.warp(img, theta)[:, 0]
    return StnWarp(arr, warped.numpy().astype(np.float32), theta.numpy().astype(np.float32))


# --------------------------------------------------------------------- self-attention


@dataclass(frozen=True)
class SelfAttentionMaps:
    """Where one query location attends, in one Multiple Self-Attention module.

    Attributes:
        layer: the module's name.
        query: the query location ``(x, y)`` in face pixels.
        heads: float32 N×K×H×W, each head's attention from the query over the face, in units
            of uniform attention (β times the number of grid locations: 1 everywhere when the
            head attends to all locations alike, as it does at initialisation).
        weights: float32 N×K, the heads' learned weights for each face (rows sum to 1).
        combined: float32 N×H×W, the weight-averaged map in the same units.
        grid: height and width of the feature map the module attends over.
    """

    layer: str
    query: tuple[float, float]
    heads: np.ndarray
    weights: np.ndarray
    combined: np.ndarray
    grid: tuple[int, int]


def self_attention_maps(
    model: Any, faces: Any, query: tuple[float, float] | None = None
) -> list[SelfAttentionMaps]:
    """Attention of every Multiple Self-Attention module from ``query`` (x, y in face pixels;
    default the face's centre), one entry per module.

    The maps live on the grid of the module's input; with a spatial transformer in front that
    grid is the warped face (the transformer starts at the identity, and learns small warps).
    """
    subject = Subject(model)
    modules = _require(subject, "attention")
    arr = as_faces(faces)
    face_hw = arr.shape[1:]
    if query is None:
        query = ((face_hw[1] - 1) / 2, (face_hw[0] - 1) / 2)
    qx, qy = query
    if not (0 <= qx < face_hw[1] and 0 <= qy < face_hw[0]):
        raise FerlabError(f"query {query} lies outside the {face_hw[1]}×{face_hw[0]} face")
    u, v = subject.input_point((qx, qy), face_hw)
    if not (0 <= u < 1 and 0 <= v < 1):
        raise FerlabError(f"query {query} lies outside the centre crop the network sees")
    inputs: dict[str, torch.Tensor] = {}

    def keep_input(name: str):
        def hook(_m: nn.Module, inp: Any, _out: Any) -> None:
            inputs[name] = inp[0].detach()

        return hook

    handles = [m.register_forward_hook(keep_input(n)) for n, m in modules]
    msas = [m for _, m in modules]
    try:
        with evaluating(subject.network), recording(msas), torch.no_grad():
            subject.network(subject.to_input(arr))
    finally:
        for h in handles:
            h.remove()
    out = []
    for name, msa in modules:
        x = inputs[name]
        h, w = x.shape[-2:]
        row = min(int(v * h), h - 1) * w + min(int(u * w), w - 1)
        with torch.no_grad():
            heads = torch.stack(
                [head.attention_map(x)[:, row].reshape(-1, h, w) for head in msa.heads], 1
            )
        heads = heads.cpu() * (h * w)
        weights = msa.last_weights.float().cpu()
        combined = (weights[:, :, None, None] * heads).sum(1, keepdim=True)
        out.append(
            SelfAttentionMaps(
                layer=name,
                query=(float(qx), float(qy)),
                heads=subject.to_face_frame(heads, face_hw),
                weights=weights.numpy().astype(np.float32),
                combined=subject.to_face_frame(combined, face_hw)[:, 0],
                grid=(int(h), int(w)),
            )
        )
    return out


def _peak_one(maps: np.ndarray) -> np.ndarray:
    """Scale each map (over its last two axes) so that its largest value is 1."""
    peak = maps.max(axis=(-2, -1), keepdims=True)
    return np.where(peak > 0, maps / np.where(peak > 0, peak, 1), 0).astype(np.float32)


# --------------------------------------------------------------------- squeeze-and-excitation


def se_channel_weights(model: Any, faces: Any) -> dict[str, np.ndarray]:
    """Gate values of every squeeze-and-excitation layer, ``{layer name: float32 N×C}`` in
    network order; each value in (0, 1) is the factor that layer multiplies a channel by."""
    subject = Subject(model)
    modules = _require(subject, "se")
    arr = as_faces(faces)
    gates = [m for _, m in modules]
    with evaluating(subject.network), recording(gates), torch.no_grad():
        subject.network(subject.to_input(arr))
    return {name: m.last_weights.float().cpu().numpy() for name, m in modules}


# --------------------------------------------------------------------- facial features


@dataclass(frozen=True)
class FacialMap:
    """One facial-feature attention map (Meen et al.) and its effect on the input face.

    Attributes:
        layer: the attention module's name (``attention`` for Models 1–2; ``input_attention.i``
            and ``stage_attention.i`` for Model 3's maps on the input and on stages 2, 3, 4).
        applied_to: ``"input"`` or ``"stage s"``: what the model multiplies the map with.
        maps: float32 N×H×W, the attention map at the faces' size, averaged over its maps when
            it has several (``features="all"``), in the units the model uses.
        eq1: float32 N×H×W in [0, 1], Eq. 1 ``map · img``, scaled to a peak of 1 for display.
        eq2: float32 N×H×W in [0, 1], Eq. 2 ``(1 + map) · img``, scaled likewise.
        grid: height and width of the map before interpolation.
    """

    layer: str
    applied_to: str
    maps: np.ndarray
    eq1: np.ndarray
    eq2: np.ndarray
    grid: tuple[int, int]


def facial_attention_maps(model: Any, faces: Any) -> list[FacialMap]:
    """Every facial-feature attention map of a ``facial_attention_m1``/``m2``/``m3`` model.

    Both equations are shown whatever ``combine`` the model was built with, as the paper's
    Figs. 3 and 4 do; maps that act on an internal stage (Model 3) are shown on the input too,
    interpolated like the model interpolates them to its stage.
    """
    from ferlab.models.facial_attention import ATTENTION_STAGES

    subject = Subject(model)
    modules = _require(subject, "facial")
    arr = as_faces(faces)
    face_hw = arr.shape[1:]
    maps: dict[str, torch.Tensor] = {}

    def keep_maps(name: str):
        def hook(m: FeatureMapAttention, inp: Any, _out: Any) -> None:
            maps[name] = m.attention_maps(inp[1]).mean(1, keepdim=True).detach()

        return hook

    handles = [m.register_forward_hook(keep_maps(n)) for n, m in modules]
    try:
        with evaluating(subject.network), torch.no_grad():
            subject.network(subject.to_input(arr))
    finally:
        for h in handles:
            h.remove()
    img = arr.astype(np.float32) / 255.0
    out = []
    for name, _ in modules:
        attention = subject.to_face_frame(maps[name], face_hw)[:, 0]
        where = "input"
        if name.startswith("stage_attention."):
            where = f"stage {ATTENTION_STAGES[int(name.rsplit('.', 1)[1])]}"
        out.append(
            FacialMap(
                layer=name,
                applied_to=where,
                maps=attention,
                eq1=_peak_one(np.clip(attention * img, 0, None)),
                eq2=_peak_one(np.clip((1 + attention) * img, 0, None)),
                grid=tuple(int(s) for s in maps[name].shape[-2:]),
            )
        )
    return out
