"""``EmotionModel``: a trained emotion classifier behind a small scikit-learn-like interface.

The model prepares faces with its :class:`~ferlab.inference.preprocess.Preprocess` (numpy) and
hands the test-time views to a backend, which runs the network and averages the softmax over the
views: :class:`~ferlab.inference.torch_backend.TorchBackend` (PyTorch) or
:class:`~ferlab.inference.onnx_backend.OnnxBackend` (ONNX Runtime). :func:`predict_batches` is
that loop, shared with the training engine's evaluation.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from ferlab.errors import DataError
from ferlab.inference.preprocess import Preprocess, check_tta
from ferlab.labels import typed_label

__all__ = ["PRECISIONS", "Backend", "EmotionModel", "gray_faces", "predict_batches"]

#: Arithmetic of the PyTorch backend: ``bf16`` (autocast) is about twice as fast on CPUs with
#: native bf16 (AVX-512 BF16, AMX) and changes few predictions (docs/models.md).
PRECISIONS = ("fp32", "bf16")


class Backend(Protocol):
    """What runs a network: ``probs(views)`` maps V×N×C×H×W views to N×classes probabilities
    (the softmax averaged over the V views)."""

    network: Any
    device: str
    runtime: str

    def probs(self, views: np.ndarray) -> np.ndarray: ...


def gray_faces(faces: Any) -> np.ndarray:
    """Faces as uint8 grayscale N×H×W: one H×W face becomes N = 1, BGR(A) crops turn gray.

    Numbers 0–255 of another real dtype are rounded to pixel values; anything else is a
    :class:`~ferlab.errors.DataError` naming the problem. N may be 0; the sides may not.
    """
    arr = np.asarray(faces)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        import cv2

        code = cv2.COLOR_BGRA2GRAY if arr.shape[-1] == 4 else cv2.COLOR_BGR2GRAY
        arr = np.stack([cv2.cvtColor(np.ascontiguousarray(f), code) for f in arr])
    if arr.ndim != 3:
        raise DataError(
            f"faces must be a grayscale array N×H×W (or one H×W face), got shape {arr.shape}",
            field="faces",
        )
    if min(arr.shape[1:]) < 1:
        raise DataError(f"faces have an empty side: shape {arr.shape}", field="faces")
    if arr.dtype != np.uint8:
        real = np.issubdtype(arr.dtype, np.number) and not np.issubdtype(
            arr.dtype, np.complexfloating
        )
        if not real or (arr.size and (np.isnan(arr).any() or arr.min() < 0 or arr.max() > 255)):
            raise DataError(
                f"faces must hold pixel values 0-255 (uint8), got dtype {arr.dtype}",
                field="faces",
            )
        arr = np.rint(arr).astype(np.uint8)
    return np.ascontiguousarray(arr)


def predict_batches(
    probs: Callable[[np.ndarray], np.ndarray],
    faces: np.ndarray,
    preprocess: Preprocess,
    num_classes: int,
    *,
    tta: str = "none",
    batch_size: int = 256,
    equalized: bool = False,
) -> np.ndarray:
    """Probabilities N×C of uint8 faces N×S×S, ``batch_size`` faces at a time: each batch is
    prepared by ``preprocess`` into its test-time views and passed to ``probs`` (a backend's)."""
    out = [
        probs(preprocess(faces[lo : lo + batch_size], tta, equalized=equalized))
        for lo in range(0, faces.shape[0], batch_size)
    ]
    if not out:
        return np.zeros((0, num_classes), dtype=np.float32)
    return np.concatenate(out)


class EmotionModel:
    """A trained emotion classifier with ``predict_proba`` / ``predict`` / ``score``.

    Attributes:
        labels: class names, in the order of ``predict_proba``'s columns (``classes_`` holds
            them as a numpy array, as scikit-learn classifiers do).
        input_size: (C, H, W) of the network input.
        image_size: side of the square grayscale faces the model expects (48); other sizes are
            resized with area interpolation.
        tta: test-time augmentation used by :meth:`predict_proba` (``none``, ``flip`` or
            ``ten_crop``).
        runtime: ``torch`` or ``onnx``; ``network`` is the PyTorch module or the ONNX Runtime
            session, ``device`` where it runs, ``precision`` its arithmetic (``fp32``,
            ``bf16``).
        meta: everything the checkpoint or export records (recipe, metrics, preprocessing).
    """

    def __init__(self, backend: Backend, meta: dict, *, tta: str = "none") -> None:
        self.backend = backend
        self.meta = meta
        self.tta = check_tta(tta)
        self.labels: tuple[str, ...] = tuple(meta["classes"])
        self.classes_ = np.asarray(self.labels)
        self.input_size: tuple[int, int, int] = tuple(meta["input_size"])
        self.preprocess: Preprocess = meta["preprocess"]
        self.image_size: int = self.preprocess.image_size
        self.name: str = meta.get("name", meta["model"]["name"])

    @property
    def network(self) -> Any:
        return self.backend.network

    @property
    def device(self) -> str:
        return self.backend.device

    @property
    def runtime(self) -> str:
        return self.backend.runtime

    @property
    def precision(self) -> str:
        return getattr(self.backend, "precision", "fp32")

    def __repr__(self) -> str:
        extra = (
            f", quantization={self.meta['quantization']!r}" if "quantization" in self.meta else ""
        )
        return (
            f"EmotionModel({self.name!r}, labels={list(self.labels)}, tta={self.tta!r}, "
            f"runtime={self.runtime!r}{extra})"
        )

    def with_tta(self, tta: str) -> EmotionModel:
        """The same model (sharing its network) with another test-time augmentation."""
        other = copy.copy(self)
        other.tta = check_tta(tta)
        return other

    def _as_faces(self, faces: Any) -> np.ndarray:
        """Validate faces and bring them to uint8 N×S×S (S = ``image_size``)."""
        arr = gray_faces(faces)
        s = self.image_size
        if arr.shape[1:] != (s, s):
            import cv2

            arr = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in arr])
        return np.ascontiguousarray(arr)

    def predict_proba(self, faces: Any, *, batch_size: int = 256) -> np.ndarray:
        """Probabilities N×C (rows sum to 1; columns follow :attr:`labels`).

        ``faces``: uint8 grayscale crops N×H×W (48×48 like FER2013; other sizes are resized),
        a single H×W crop, or BGR(A) crops N×H×W×3/4.
        """
        arr = self._as_faces(faces)
        return predict_batches(
            self.backend.probs,
            arr,
            self.preprocess,
            len(self.labels),
            tta=self.tta,
            batch_size=batch_size,
        ).astype(np.float32, copy=False)

    def predict(self, faces: Any) -> list[str]:
        """The most probable label of each face."""
        probs = self.predict_proba(faces)
        return [self.labels[i] for i in probs.argmax(1)]

    def score(self, faces: Any, y: Any) -> float:
        """Accuracy on faces with true labels ``y`` (label names or class indices), as
        scikit-learn's ``ClassifierMixin.score``; names may be FER+'s spellings, as
        ``happiness`` for ``happy`` (:mod:`ferlab.labels`)."""
        truth = np.asarray(y)
        pred = self.predict_proba(faces).argmax(1)
        if truth.shape != pred.shape:
            raise DataError(f"y has {truth.size} labels for {pred.size} faces", field="y")
        if truth.dtype.kind in "iu":
            bad = truth[(truth < 0) | (truth >= len(self.labels))]
        else:  # names, in any accepted spelling ("happiness" for "happy")
            index = {typed_label(label): i for i, label in enumerate(self.labels)}
            names = [typed_label(v) for v in truth.tolist()]
            bad = [v for v, n in zip(truth.tolist(), names, strict=True) if n not in index]
            truth = np.asarray([index.get(n, -1) for n in names], dtype=np.int64)
        if len(bad):
            raise DataError(
                f"y holds {bad[0]!r}, not one of the model's labels {list(self.labels)} "
                f"or indices 0-{len(self.labels) - 1}",
                field="y",
            )
        return float((pred == truth).mean()) if truth.size else 0.0
