"""Class activation maps: Grad-CAM and three relatives, written here for every zoo model.

All four weigh the channels of one convolutional layer's output ``A`` (C×h×w) and keep the
positive part of the weighted sum, ``CAM = ReLU(Σ_k w_k A_k)``, upsampled to the face:

* ``gradcam`` (Selvaraju et al., 2017): ``w_k`` is the spatial mean of ∂y_c/∂A_k, the gradient of
  the target class's logit.
* ``gradcam++`` (Chattopadhay et al., 2018): ``w_k = Σ_ij α_ij ReLU(∂y_c/∂A_kij)`` with the
  closed-form α of the paper (second and third powers of the gradient), which credits every
  region that raises the score rather than the average, so several instances of a cue all show.
* ``layercam`` (Jiang et al., 2021): no channel weight; every location is weighted by its own
  positive gradient, ``CAM = ReLU(Σ_k ReLU(∂y_c/∂A_k) · A_k)``, which keeps finer detail.
* ``scorecam`` (Wang et al., 2020): no gradient at all; each channel, upsampled and scaled to
  [0, 1], masks the input, and ``w_k`` is the class probability the masked input gets. Immune
  to noisy or saturated gradients, but it costs one forward pass per channel: as in "Faster
  Score-CAM" (github.com/tabayashi0117/Score-CAM, tf-keras-vis's ``max_N``), only the
  :data:`SCORECAM_CHANNELS` channels whose maps vary most are used (the rest get weight 0),
  which bounds the cost for wide layers (DenseNet121's last block has 1024 channels: all of
  them took over 6 minutes per face here).

The ``grad-cam`` package is not used: it requires torchvision, which would replace the pinned
``torch==2.13.0`` (see ``docs/explain.md``).

**Which layer.** By default the last convolution whose output map is larger than 1×1, followed
through the layers after it that keep its spatial size (its batch norm, activation,
squeeze-and-excitation gate, the block or stage that ends there), so the map is the block's
final output; :func:`target_layer` tells which one. Any module name of the network can be given
instead (``layer=``). The maps are computed on the centre view the network sees (no test-time
augmentation), for the predicted class unless ``target`` names one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.explain._subject import Subject, as_faces, evaluating

__all__ = [
    "CAM_METHODS",
    "SCORECAM_CHANNELS",
    "CamResult",
    "capture",
    "class_activation_maps",
    "face_heatmap",
    "overlay_heatmap",
    "resolve_layer",
    "target_layer",
]

CAM_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam")
#: Channels Score-CAM masks the input with (those whose activation maps vary most).
SCORECAM_CHANNELS = 64

_BATCH = 64


@dataclass(frozen=True)
class CamResult:
    """Heat maps with the classes they explain.

    Attributes:
        maps: float32 N×H×W in [0, 1] at the faces' size (1 = strongest evidence).
        targets: the explained class of each face.
        probs: float32 N×C class probabilities of the view the maps were computed on.
        layer: name of the layer whose channels were weighted.
    """

    maps: np.ndarray
    targets: np.ndarray
    probs: np.ndarray
    layer: str


def _trace(network: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module, tuple | None]]:
    """Every module call of one forward pass, in the order the calls end, with the output shape
    (``None`` for outputs that are not tensors and for modules that hand their input through
    unchanged, such as dropout in eval mode or an identity shortcut)."""
    calls: list[tuple[str, nn.Module, tuple | None]] = []

    def hook(name: str):
        def record(module: nn.Module, inp: Any, out: Any) -> None:
            # In-place activations return their input too, but changed: they count.
            passthrough = bool(inp) and out is inp[0] and not getattr(module, "inplace", False)
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) and not passthrough else None
            calls.append((name, module, shape))

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in network.named_modules() if n]
    try:
        with torch.no_grad(), evaluating(network):
            network(x)
    finally:
        for h in handles:
            h.remove()
    return calls


def _pick_layer(calls: list[tuple[str, nn.Module, tuple | None]]) -> str | None:
    """The last convolution with a map larger than 1×1, followed to the last module that keeps
    its spatial size (modules called more than once are skipped: their hook would be ambiguous)."""
    times = Counter(name for name, _, _ in calls)
    convs = [
        i
        for i, (_, module, shape) in enumerate(calls)
        if isinstance(module, nn.Conv2d) and shape is not None and shape[2] * shape[3] > 1
    ]
    if not convs:
        return None
    chosen = convs[-1]
    size = calls[chosen][2][2:]  # type: ignore[index]
    for i in range(chosen + 1, len(calls)):
        name, _, shape = calls[i]
        if shape is None or len(shape) != 4:
            continue
        if shape[2:] != size:
            break
        if times[name] == 1:
            chosen = i
    return calls[chosen][0]


#: The default layer found for each network (keyed weakly: dropped with the network), so that
#: repeated explanations, such as a web page's one face per request, trace the network once.
_DEFAULT_LAYERS: WeakKeyDictionary[nn.Module, str | None] = WeakKeyDictionary()


def resolve_layer(subject: Subject, layer: str | None) -> tuple[str, nn.Module]:
    """The layer to explain (name and module): ``layer`` by name, or the model's default."""
    modules = dict(subject.network.named_modules())
    if layer is None:
        if subject.network not in _DEFAULT_LAYERS:
            probe = torch.zeros(1, subject.in_chans, *subject.input_hw, device=subject.device)
            _DEFAULT_LAYERS[subject.network] = _pick_layer(_trace(subject.network, probe))
        layer = _DEFAULT_LAYERS[subject.network]
        if layer is None:
            raise FerlabError(
                f"{type(subject.network).__name__} has no convolution with a map larger than "
                "1×1 to explain"
            )
    if layer not in modules or not layer:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        raise FerlabError(
            f"the model has no layer '{layer}'; its last convolutions are: "
            f"{', '.join(convs[-6:])} (any name from network.named_modules() works)"
        )
    return layer, modules[layer]


def target_layer(model: Any) -> str:
    """Name of the layer Grad-CAM and the filter images use for ``model`` by default."""
    return resolve_layer(Subject(model), None)[0]


@contextmanager
def capture(layer: nn.Module, grads: bool) -> Iterator[dict[str, torch.Tensor]]:
    """Keep the layer's output of the next pass: a detached copy (``act``), the tensor itself
    (``live``, for differentiating through it) and, with ``grads``, the gradient reaching it
    (``grad``)."""
    store: dict[str, torch.Tensor] = {}

    def keep_grad(g: torch.Tensor) -> None:
        store["grad"] = g.detach()

    def hook(_module: nn.Module, _inp: Any, out: Any) -> None:
        if not isinstance(out, torch.Tensor) or out.dim() != 4:
            raise FerlabError("the chosen layer does not output a feature map N×C×H×W")
        store["act"] = out.detach().clone()
        store["live"] = out
        if grads:
            if not out.requires_grad:
                raise FerlabError(
                    "the chosen layer gets no gradient (it runs without autograd, like the "
                    "frozen face network); choose a layer of the emotion network"
                )
            out.register_hook(keep_grad)

    handle = layer.register_forward_hook(hook)
    try:
        yield store
    finally:
        handle.remove()


def _weigh(method: str, act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient methods' ``ReLU(Σ_k w_k A_k)``, N×h×w."""
    if method == "gradcam":
        weights = grad.mean(dim=(2, 3), keepdim=True)
        return torch.relu((weights * act).sum(1))
    if method == "gradcam++":
        g2, g3 = grad.pow(2), grad.pow(3)
        denom = 2 * g2 + act.sum(dim=(2, 3), keepdim=True) * g3
        alpha = torch.where(grad != 0, g2 / torch.where(denom != 0, denom, 1e-7), 0.0)
        weights = (alpha * torch.relu(grad)).sum(dim=(2, 3), keepdim=True)
        return torch.relu((weights * act).sum(1))
    return torch.relu((torch.relu(grad) * act).sum(1))  # layercam


def _score_cam(
    subject: Subject, x: torch.Tensor, act: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    """Score-CAM: each channel as a [0, 1] mask of the input, weighed by the class probability."""
    cams = []
    for i in range(x.shape[0]):
        keep = act[i].flatten(1).var(dim=1).argsort(descending=True)[:SCORECAM_CHANNELS]
        chosen = act[i, keep]
        up = F.interpolate(chosen[None], size=subject.input_hw, mode="bilinear")[0]
        lo = up.amin(dim=(1, 2), keepdim=True)
        hi = up.amax(dim=(1, 2), keepdim=True)
        masks = torch.where(hi > lo, (up - lo) / (hi - lo).clamp(min=1e-12), 0.0)
        scores = []
        with torch.no_grad():
            for lo_k in range(0, masks.shape[0], _BATCH):
                masked = x[i : i + 1] * masks[lo_k : lo_k + _BATCH, None]
                probs = torch.softmax(subject.network(masked).float(), 1)
                scores.append(probs[:, int(targets[i])])
        # The authors' code weighs each channel by the probability itself; a softmax over
        # channels (as some re-implementations add) would flatten the weights of probabilities
        # that all lie in [0, 1].
        weights = torch.cat(scores)
        cams.append(torch.relu((weights[:, None, None] * chosen).sum(0)))
    return torch.stack(cams)


def class_activation_maps(
    model: Any,
    faces: Any,
    method: str = "gradcam",
    target: Any = None,
    *,
    layer: str | None = None,
) -> CamResult:
    """Heat maps of ``method`` for ``faces``, with the explained classes and probabilities.

    Args:
        model: an :class:`~ferlab.inference.EmotionModel` or a zoo ``nn.Module``.
        faces: uint8 grayscale faces N×H×W (or one H×W face; BGR crops are converted).
        method: one of :data:`CAM_METHODS`.
        target: ``None`` (each face's predicted class), a class index or name for all faces,
            or a sequence with one per face.
        layer: module name of the layer to weigh (default: :func:`target_layer`).
    """
    if method not in CAM_METHODS:
        raise UnknownNameError("heat-map method", method, list(CAM_METHODS))
    subject = Subject(model)
    arr = as_faces(faces)
    name, module = resolve_layer(subject, layer)
    if _per_face(target) and len(list(target)) != arr.shape[0]:
        raise FerlabError(
            f"got {len(list(target))} targets for {arr.shape[0]} faces; give one each"
        )
    maps, chosen, probs = [], [], []
    # Gradients are needed even when the caller runs under torch.inference_mode().
    with evaluating(subject.network), torch.inference_mode(False):
        for lo in range(0, arr.shape[0], _BATCH):
            x = subject.to_input(arr[lo : lo + _BATCH])
            with capture(module, grads=method != "scorecam") as store, torch.enable_grad():
                x_in = x.clone().requires_grad_(True)
                logits = subject.network(x_in).float()
                targets = _batch_targets(subject, target, logits, lo)
                if method != "scorecam":
                    # Gradients of the input only: the parameters' .grad stay untouched (the
                    # hook on the layer's output still sees the gradient pass through it).
                    score = logits.gather(1, targets[:, None].to(logits.device)).sum()
                    torch.autograd.grad(score, x_in)
            if "act" not in store:
                raise FerlabError(f"layer '{name}' is not used by the network's forward pass")
            if method == "scorecam":
                cam = _score_cam(subject, x, store["act"], targets)
            else:
                cam = _weigh(method, store["act"].float(), store["grad"].float())
            peak = cam.amax(dim=(1, 2), keepdim=True)
            cam = torch.where(peak > 0, cam / peak.clamp(min=1e-12), 0.0)
            maps.append(subject.to_face_frame(cam[:, None], arr.shape[1:])[:, 0])
            chosen.append(targets.cpu().numpy())
            probs.append(torch.softmax(logits.detach(), 1).cpu().numpy())
    return CamResult(
        maps=np.clip(np.concatenate(maps), 0, 1).astype(np.float32),
        targets=np.concatenate(chosen),
        probs=np.concatenate(probs).astype(np.float32),
        layer=name,
    )


def _batch_targets(subject: Subject, target: Any, logits: torch.Tensor, start: int) -> torch.Tensor:
    """The targets of the faces ``start..start+len(logits)`` of the whole request."""
    if not _per_face(target):
        return subject.targets(target, logits)
    return subject.targets(list(target)[start : start + logits.shape[0]], logits)


def _per_face(target: Any) -> bool:
    return target is not None and not isinstance(target, int | str | np.integer)


def face_heatmap(
    model: Any, faces: Any, method: str = "gradcam", target: Any = None, *, layer: str | None = None
) -> np.ndarray:
    """Float32 N×H×W heat maps in [0, 1] at the faces' own size (see
    :func:`class_activation_maps`); ``target=None`` explains the predicted class."""
    return class_activation_maps(model, faces, method, target, layer=layer).maps


def overlay_heatmap(image: Any, heatmap: Any, alpha: float = 0.45) -> np.ndarray:
    """A heat map in [0, 1] drawn over an image as a BGR uint8 picture (jet colours).

    ``image``: uint8 gray H×W or BGR H×W×3 (BGRA is flattened); ``heatmap``: 2-D, resized to the
    image; ``alpha``: weight of the colours (0 shows the image only, 1 the map only).
    """
    if not 0.0 <= alpha <= 1.0:
        raise FerlabError(f"alpha must be between 0 and 1, got {alpha}")
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise DataError(f"image must be uint8, got {img.dtype}", field="image")
    if img.ndim == 2:
        bgr = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.ndim == 3 and img.shape[2] == 3:
        bgr = np.ascontiguousarray(img)
    elif img.ndim == 3 and img.shape[2] == 4:
        bgr = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    else:
        raise DataError(
            f"image must be gray H×W or BGR H×W×3, got shape {img.shape}", field="image"
        )
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2 or min(heat.shape) < 1:
        raise DataError(f"heatmap must be a 2-D map, got shape {heat.shape}", field="heatmap")
    if not np.isfinite(heat).all():
        raise DataError("heatmap holds NaN or infinite values", field="heatmap")
    heat = cv2.resize(heat, (bgr.shape[1], bgr.shape[0]), interpolation=cv2.INTER_LINEAR)
    colours = cv2.applyColorMap(
        np.rint(np.clip(heat, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET
    )
    return cv2.addWeighted(colours, alpha, bgr, 1.0 - alpha, 0.0)
