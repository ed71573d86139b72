"""Is a heat map faithful? The deletion test (Petsiuk, Das & Saenko, "RISE", BMVC 2018).

A map that shows where the evidence for a class lies must predict what happens when that
evidence is removed: deleting the pixels the map ranks highest should lower the class's
probability faster than deleting as many pixels at random. For every face:

1. the map is computed for the explained class (the predicted one unless ``target`` says);
2. the pixels the network sees are ranked by the map (ties broken at random, so a flat map
   behaves exactly like the random order) and, separately, in ``repeats`` random orders;
   ``baseline="blobs"`` (the default) ranks them by *random maps of the same smoothness*:
   uniform noise at the explained layer's resolution, upsampled as the maps are, so both
   orders delete compact regions and differ only in where; ``baseline="pixels"`` ranks them
   uniformly at random, which deletes scattered pixels (salt-and-pepper damage that lowers a
   CNN's confidence faster than deleting any compact region, so it is the harder bar);
3. for each fraction ``f`` of :data:`FRACTIONS` the first ``f`` of the pixels in that order are
   set to the face's mean input value (the grey the network sees on average: no new edges,
   no new brightness), and the explained class's probability is recorded;
4. the *deletion score* of an order is the area under probability-vs-fraction (trapezoids over
   the fractions, divided by the largest fraction): lower means the probability fell faster.

A faithful method has a lower score for the map's order than for the random orders, on most
faces. The probabilities are those of the network's own input view (centre crop, no test-time
augmentation), the view the maps are computed on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ferlab.errors import FerlabError, UnknownNameError
from ferlab.explain._subject import Subject, as_faces, evaluating
from ferlab.explain.cam import class_activation_maps

__all__ = ["BASELINES", "FRACTIONS", "DeletionResult", "deletion_test"]

#: Random orders the map's order is compared with (see the module docstring).
BASELINES = ("blobs", "pixels")

#: Fractions of the network's input pixels deleted, in order.
FRACTIONS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class DeletionResult:
    """Outcome of :func:`deletion_test` for one method.

    Attributes:
        method: the heat-map method.
        fractions: deleted fractions (the columns of the curves).
        map_curve: float N×F, the explained class's probability with the map's top pixels gone.
        random_curve: float N×F, the same for random pixels (mean over the random orders).
        map_score, random_score: float N, deletion scores (area under each curve, normalised).
        baseline: ``blobs`` or ``pixels``.
    """

    method: str
    fractions: tuple[float, ...]
    map_curve: np.ndarray
    random_curve: np.ndarray
    map_score: np.ndarray
    random_score: np.ndarray
    baseline: str = "blobs"

    @property
    def faster(self) -> float:
        """Share of faces whose probability fell faster for the map than at random."""
        return float((self.map_score < self.random_score).mean())

    @property
    def gap(self) -> float:
        """Mean random score minus mean map score (positive: the map is the better guide)."""
        return float(self.random_score.mean() - self.map_score.mean())


def _area(curves: np.ndarray, fractions: tuple[float, ...]) -> np.ndarray:
    f = np.asarray(fractions, dtype=np.float64)
    heights = (curves[:, 1:] + curves[:, :-1]) / 2
    return (heights * np.diff(f)).sum(axis=1) / (f[-1] - f[0])


def _layer_hw(subject: Subject, layer: str, x: torch.Tensor) -> tuple[int, int]:
    """Spatial size of ``layer``'s output for input ``x``."""
    seen: dict[str, tuple[int, int]] = {}
    module = dict(subject.network.named_modules())[layer]

    def record(_module: Any, _inp: Any, out: torch.Tensor) -> None:
        seen["hw"] = tuple(out.shape[-2:])

    handle = module.register_forward_hook(record)
    try:
        with torch.no_grad():
            subject.network(x[:1])
    finally:
        handle.remove()
    return seen["hw"]


def _input_maps(subject: Subject, maps: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Face-frame maps N×H×W → maps over the network input N×h×w (the centre crop it sees)."""
    m = torch.as_tensor(maps, dtype=torch.float32)[:, None]
    fh, fw = subject.frame_hw
    m = torch.nn.functional.interpolate(m, size=(fh, fw), mode="bilinear", align_corners=False)
    h, w = subject.input_hw
    top, left = (fh - h) // 2, (fw - w) // 2
    return m[:, 0, top : top + h, left : left + w]


@torch.no_grad()
def _curves(
    subject: Subject, x: torch.Tensor, orders: torch.Tensor, targets: torch.Tensor, fractions
) -> np.ndarray:
    """Probability of ``targets`` as the pixels are deleted in ``orders`` (N×P indices)."""
    n, _, h, w = x.shape
    fill = x.mean(dim=(1, 2, 3), keepdim=True)
    out = np.zeros((n, len(fractions)), dtype=np.float64)
    for j, f in enumerate(fractions):
        k = int(round(f * h * w))
        keep = torch.ones(n, h * w, device=x.device)
        if k:
            keep.scatter_(1, orders[:, :k].to(x.device), 0.0)
        keep = keep.view(n, 1, h, w)
        xd = x * keep + fill * (1 - keep)
        probs = torch.softmax(subject.network(xd).float(), 1)
        out[:, j] = probs.gather(1, targets[:, None].to(probs.device))[:, 0].cpu().numpy()
    return out


def deletion_test(
    model: Any,
    faces: Any,
    method: str = "gradcam",
    target: Any = None,
    *,
    fractions: tuple[float, ...] = FRACTIONS,
    baseline: str = "blobs",
    repeats: int = 3,
    seed: int = 0,
    batch_size: int = 64,
) -> DeletionResult:
    """Run the deletion test of ``method``'s maps on ``faces`` (see the module docstring).

    Args:
        model: an :class:`~ferlab.inference.EmotionModel` or a zoo ``nn.Module``.
        faces: uint8 grayscale faces N×H×W.
        method: a Grad-CAM family method (:data:`~ferlab.explain.CAM_METHODS`).
        target: the class to explain (``None``: each face's predicted class), as for
            :func:`~ferlab.explain.class_activation_maps`.
        fractions: increasing fractions of the input pixels to delete, from 0.
        baseline: ``blobs`` (random maps as smooth as the method's) or ``pixels``.
        repeats: random orders per face (their curves are averaged).
        seed: seeds the random orders and the tie-breaking.
    """
    f = tuple(float(v) for v in fractions)
    rising = all(b > a for a, b in zip(f, f[1:], strict=False))
    if len(f) < 2 or f[0] != 0.0 or not rising or f[-1] > 1:
        raise FerlabError(f"fractions must rise from 0 to at most 1, got {list(fractions)}")
    if baseline not in BASELINES:
        raise UnknownNameError("deletion baseline", baseline, list(BASELINES))
    if repeats < 1:
        raise FerlabError(f"repeats must be at least 1, got {repeats}")
    arr = as_faces(faces)
    cam = class_activation_maps(model, arr, method, target)
    subject = Subject(model)
    # Separate streams: the map's tie-breaking does not depend on the random reference chosen.
    ties = torch.Generator().manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    map_curves, random_curves = [], []
    with evaluating(subject.network):
        for lo in range(0, len(arr), batch_size):
            x = subject.to_input(arr[lo : lo + batch_size])
            targets = torch.from_numpy(cam.targets[lo : lo + batch_size]).long()
            m = _input_maps(subject, cam.maps[lo : lo + batch_size]).reshape(len(x), -1)
            # Random jitter far below the maps' resolution only breaks ties.
            jitter = torch.rand(m.shape, generator=ties) * 1e-6
            by_map = torch.argsort(m + jitter, dim=1, descending=True)
            map_curves.append(_curves(subject, x, by_map, targets, f))
            rand = []
            for _ in range(repeats):
                if baseline == "pixels":
                    noise = torch.rand(m.shape, generator=gen)
                else:
                    lh, lw = _layer_hw(subject, cam.layer, x)
                    coarse = torch.rand(len(x), 1, lh, lw, generator=gen)
                    face = subject.to_face_frame(coarse, subject.frame_hw)[:, 0]
                    noise = _input_maps(subject, face).reshape(len(x), -1)
                    noise = noise + torch.rand(m.shape, generator=gen) * 1e-6
                order = torch.argsort(noise, dim=1, descending=True)
                rand.append(_curves(subject, x, order, targets, f))
            random_curves.append(np.mean(rand, axis=0))
    mc, rc = np.concatenate(map_curves), np.concatenate(random_curves)
    return DeletionResult(
        method=method,
        fractions=f,
        map_curve=mc,
        random_curve=rc,
        map_score=_area(mc, f),
        random_score=_area(rc, f),
        baseline=baseline,
    )
