"""The inference core: shipped models, preprocessing, ``EmotionModel`` and ``load_model``.

* :mod:`~ferlab.inference.shipped`: the shipped-model table (files and SHA-256 digests).
* :mod:`~ferlab.inference.preprocess`: how faces become network input, and test-time
  augmentation (TTA), in numpy, for every runtime and for the training engine's evaluation.
* :mod:`~ferlab.inference.model`: :class:`EmotionModel`, backed by
  :mod:`~ferlab.inference.torch_backend` (PyTorch, the ``ferlab[train]`` extra) or
  :mod:`~ferlab.inference.onnx_backend` (ONNX Runtime, always installed).
* :mod:`~ferlab.inference.device`: device names, resolved once for both runtimes.
* :mod:`~ferlab.inference.runtimes`: which runtime runs a model when none is asked for (the
  fastest within 0.1 point of fp32's accuracy), and the thread count every library gets.
* :mod:`~ferlab.inference.load`: :func:`load_model`, a thin dispatcher over those.

Nothing imported here loads PyTorch or ONNX Runtime; the backends load them when used.
"""

from ferlab.inference.load import LOAD_PRECISIONS, RUNTIMES, load_model, torch_installed
from ferlab.inference.model import PRECISIONS, EmotionModel, gray_faces
from ferlab.inference.preprocess import (
    STREAM_TTA,
    TTA_CHOICES,
    TTA_VIEWS,
    Preprocess,
    resolve_tta,
)
from ferlab.inference.shipped import SHIPPED, model_file, shipped_models

__all__ = [
    "LOAD_PRECISIONS",
    "PRECISIONS",
    "RUNTIMES",
    "SHIPPED",
    "STREAM_TTA",
    "TTA_CHOICES",
    "TTA_VIEWS",
    "EmotionModel",
    "Preprocess",
    "gray_faces",
    "load_model",
    "model_file",
    "resolve_tta",
    "shipped_models",
    "torch_installed",
]
