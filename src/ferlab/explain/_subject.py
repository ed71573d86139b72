"""What every explanation starts from: the network, its input, and the way back to the face.

A model reaches the explanation functions either as an :class:`~ferlab.inference.EmotionModel`
(from ``ferlab.load_model``), whose checkpoint records how faces become network input
(resize to the stored image size, optional histogram equalisation, normalisation, centre crop),
or as a bare ``nn.Module`` (a zoo model, e.g. from ``create_model``), which gets the face
resized to its ``input_size`` and scaled to [0, 1]. :class:`Subject` hides the difference: it
turns uint8 faces into network input and brings maps computed on that input back to the faces'
own frame, so every map an explanation returns lines up with the face it was given.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ferlab.errors import DataError, FerlabError
from ferlab.inference import gray_faces
from ferlab.labels import label_index

__all__ = ["Subject", "as_faces", "evaluating", "recording"]


def as_faces(faces: Any) -> np.ndarray:
    """:func:`ferlab.inference.gray_faces`, with at least one face to explain."""
    arr = gray_faces(faces)
    if arr.shape[0] == 0:
        raise DataError(
            f"faces must hold at least one non-empty face, got shape {arr.shape}", field="faces"
        )
    return arr


def _resize_all(faces: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    if faces.shape[1:] == hw:
        return faces
    # Area averaging when shrinking, as the predictor does; bilinear when enlarging.
    shrink = hw[0] * hw[1] < faces.shape[1] * faces.shape[2]
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (hw[1], hw[0]), interpolation=method) for f in faces])


@contextmanager
def evaluating(network: nn.Module) -> Iterator[nn.Module]:
    """Eval mode (fixed batch norm, no dropout) for the duration; the old mode comes back."""
    was_training = network.training
    network.eval()
    try:
        yield network
    finally:
        network.train(was_training)


@contextmanager
def recording(modules: Sequence[nn.Module]) -> Iterator[None]:
    """Switch on the ``record`` flag of attention layers (they then keep their last weights)."""
    before = [m.record for m in modules]
    for m in modules:
        m.record = True
    try:
        yield
    finally:
        for m, flag in zip(modules, before, strict=True):
            m.record = flag


class Subject:
    """A model prepared for explanation: network, labels, input conversion and frame mapping.

    Attributes:
        network: the ``nn.Module`` that is explained.
        labels: class names (``None`` when a bare module has an unusual number of classes).
        input_hw: height and width of the network input.
        span: fraction of the face (centred) that the network input covers (crop / image size
            for checkpoints trained on centre crops, 1 otherwise).
    """

    def __init__(self, model: Any) -> None:
        from ferlab.inference import EmotionModel

        if isinstance(model, EmotionModel) and model.runtime != "torch":
            model = _torch_twin(model)
        if isinstance(model, EmotionModel):
            self.network: nn.Module = model.network
            self.labels: tuple[str, ...] | None = tuple(model.labels)
            self.preprocess = model.meta["preprocess"]
            self.device = torch.device(model.device)
            size, crop = self.preprocess.image_size, min(self.preprocess.crop, model.image_size)
            self.input_hw = (crop, crop)
            self.frame_hw = (size, size)
            self.in_chans = int(model.input_size[0])
        elif isinstance(model, nn.Module):
            self.network = model
            self.preprocess = None
            first = next(model.parameters(), None)
            self.device = first.device if first is not None else torch.device("cpu")
            chw = getattr(model, "input_size", None)
            if chw is None or len(chw) != 3:
                raise FerlabError(
                    f"cannot explain a {type(model).__name__}: it has no input_size (C, H, W); "
                    "pass a model from ferlab.load_model or ferlab.create_model"
                )
            self.in_chans = int(chw[0])
            self.input_hw = (int(chw[1]), int(chw[2]))
            self.frame_hw = self.input_hw
            self.labels = _default_labels(getattr(model, "num_classes", None))
        else:
            raise FerlabError(
                "model must be an EmotionModel (ferlab.load_model) or a torch nn.Module, got "
                f"{type(model).__name__}"
            )
        self.span = self.input_hw[0] / self.frame_hw[0]

    # ------------------------------------------------------------------ faces → input

    def to_input(self, faces: np.ndarray) -> torch.Tensor:
        """uint8 faces N×H×W → the network input N×C×h×w (on the network's device)."""
        framed = _resize_all(faces, self.frame_hw)
        if self.preprocess is not None:  # exactly the input prediction prepares
            x = torch.from_numpy(self.preprocess(framed, "none")[0]).to(self.device)
        else:
            x = torch.from_numpy(framed).to(self.device).float().div(255.0).unsqueeze(1)
        if self.in_chans != x.shape[1]:
            x = x.expand(-1, self.in_chans, -1, -1)
        return x.contiguous()

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Network input (or anything in its space, such as an optimised image) → [0, 1] pixels,
        N×h×w (first channel)."""
        x = x[:, 0].detach().float().cpu()
        if self.preprocess is not None:
            mean, std = (
                _crop_stat(torch.as_tensor(v, dtype=torch.float32), self.frame_hw, self.input_hw)
                for v in (self.preprocess.mean, self.preprocess.std)
            )
            x = x * std + mean
        return x.clamp(0, 1)

    def pixel_bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Lowest and highest network-input values (pixels 0 and 1), h×w, for clamping."""
        if self.preprocess is None:
            return torch.zeros(self.input_hw), torch.ones(self.input_hw)
        mean, std = (
            _crop_stat(torch.as_tensor(v, dtype=torch.float32), self.frame_hw, self.input_hw)
            for v in (self.preprocess.mean, self.preprocess.std)
        )
        lo = (0 - mean) / std
        hi = (1 - mean) / std
        return lo.expand(self.input_hw).clone(), hi.expand(self.input_hw).clone()

    # ------------------------------------------------------------------ input → faces

    def to_face_frame(self, maps: torch.Tensor, out_hw: tuple[int, int]) -> np.ndarray:
        """Maps N×K×h'×w' laid over the network input → float32 N×K×H×W over the face.

        Bilinear upsampling to the input, the border outside a centre crop filled by
        replicating the edge, then resizing to the face's own size.
        """
        maps = maps.detach().float().cpu()
        maps = F.interpolate(maps, size=self.input_hw, mode="bilinear", align_corners=False)
        if self.input_hw != self.frame_hw:
            top = (self.frame_hw[0] - self.input_hw[0]) // 2
            left = (self.frame_hw[1] - self.input_hw[1]) // 2
            bottom = self.frame_hw[0] - self.input_hw[0] - top
            right = self.frame_hw[1] - self.input_hw[1] - left
            maps = F.pad(maps, (left, right, top, bottom), mode="replicate")
        if tuple(out_hw) != self.frame_hw:
            maps = F.interpolate(maps, size=tuple(out_hw), mode="bilinear", align_corners=False)
        return maps.numpy().astype(np.float32)

    def input_point(
        self, point: tuple[float, float], face_hw: tuple[int, int]
    ) -> tuple[float, float]:
        """A face pixel ``(x, y)`` as a fraction ``(u, v)`` in [0, 1) of the network input."""
        x, y = point
        fx = (x + 0.5) / face_hw[1]
        fy = (y + 0.5) / face_hw[0]
        off = (1 - self.span) / 2
        return (fx - off) / self.span, (fy - off) / self.span

    # ------------------------------------------------------------------ classes

    def class_index(self, target: int | str) -> int:
        """A class given by index or by name (any accepted spelling: ``happiness`` for
        ``happy``), checked against the network's outputs."""
        n = self.num_classes
        if isinstance(target, str) and not target.lstrip("-").isdigit():
            names = list(self.labels or ()) or [str(i) for i in range(n)]
            return label_index(target, names, what="class")
        index = int(target)
        if not 0 <= index < n:
            raise FerlabError(f"target class {index} is out of range: the model has {n} classes")
        return index

    @property
    def num_classes(self) -> int:
        n = getattr(self.network, "num_classes", None)
        if n is None:
            n = len(self.labels or ())
        return int(n)

    def label(self, index: int) -> str:
        return self.labels[index] if self.labels else f"class {index}"

    def targets(self, target: Any, logits: torch.Tensor) -> torch.Tensor:
        """Target class per face: the predicted one (``None``), one for all, or one per face."""
        n = logits.shape[0]
        if target is None:
            return logits.argmax(1)
        if isinstance(target, int | str | np.integer):
            return torch.full((n,), self.class_index(target), dtype=torch.long)
        chosen = [self.class_index(t) for t in target]
        if len(chosen) != n:
            raise FerlabError(f"got {len(chosen)} targets for {n} faces; give one per face")
        return torch.tensor(chosen, dtype=torch.long)


def _default_labels(num_classes: int | None) -> tuple[str, ...] | None:
    from ferlab.data.dataset import FER2013_CLASSES, FERPLUS_CLASSES

    for classes in (FER2013_CLASSES, FERPLUS_CLASSES):
        if num_classes == len(classes):
            return tuple(classes)
    return None


def _crop_stat(
    value: torch.Tensor, frame_hw: tuple[int, int], input_hw: tuple[int, int]
) -> torch.Tensor:
    """A normalisation statistic (scalar or a per-pixel map of the frame) over the centre crop."""
    if value.dim() < 2:
        return value.reshape(1, 1)
    value = value.reshape(frame_hw)
    top = (frame_hw[0] - input_hw[0]) // 2
    left = (frame_hw[1] - input_hw[1]) // 2
    return value[top : top + input_hw[0], left : left + input_hw[1]]


def _torch_twin(model: Any) -> Any:
    """The PyTorch model behind an ``EmotionModel`` that ONNX Runtime runs (explanations need
    the network's gradients and layers): a shipped model's ``.pt``, or the checkpoint it was
    exported from in memory."""
    from ferlab.inference import SHIPPED

    source = model.name if model.name in SHIPPED else model.meta.get("path")
    if not source or str(source).lower().endswith(".onnx"):
        raise FerlabError(
            "explanations need the PyTorch network: load the checkpoint (not its ONNX export) "
            "with ferlab.load_model(..., runtime='torch')"
        )
    return _load_torch(str(source), model.device, model.tta)


@lru_cache(maxsize=4)
def _load_torch(source: str, device: str, tta: str) -> Any:
    """Loaded once per model: a service explains many faces with the same network."""
    from ferlab.inference import load_model

    return load_model(source, runtime="torch", device=device, tta=tta)
