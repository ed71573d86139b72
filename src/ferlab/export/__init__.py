"""ONNX export, an ONNX Runtime backend for ``load_model``, and int8 quantisation.

* :func:`export_onnx` (``ferlab export``) writes a checkpoint, shipped model or registered
  architecture as an ``.onnx`` file carrying its labels, input size and preprocessing
  (:mod:`ferlab.export.metadata`), optionally int8-quantised (:mod:`ferlab.export.quantize`).
* :func:`load_onnx` / ``ferlab.load_model("model.onnx")`` runs such a file with ONNX Runtime
  behind the :class:`~ferlab.predictor.EmotionModel` interface, without importing PyTorch.

Names load on first use: exporting needs torch, running an export does not. See
``docs/export.md``.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "export_onnx": "ferlab.export.onnx_export",
    "network_to_onnx": "ferlab.export.onnx_export",
    "load_onnx": "ferlab.export.runtime",
    "OnnxEmotionModel": "ferlab.export.runtime",
    "ArrayPreprocess": "ferlab.export.preprocess",
    "quantize_model": "ferlab.export.quantize",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferlab.export' has no attribute {name!r}")
