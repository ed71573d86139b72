"""ONNX export, an ONNX Runtime backend for ``load_model``, and int8 quantisation.

* :func:`export_onnx` (``ferlab export``) writes a checkpoint, shipped model or registered
  architecture as an ``.onnx`` file carrying its labels, input size and preprocessing
  (:mod:`ferlab.export.metadata`), optionally int8-quantised (:mod:`ferlab.export.quantize`).
* Running such a file is the inference core's job: ``ferlab.load_model("model.onnx")`` (or
  :func:`ferlab.inference.onnx_backend.load_onnx`) runs it with ONNX Runtime, without PyTorch.

Exporting needs PyTorch and the onnx package (the ``ferlab[train]`` extra). See
``docs/export.md``.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "export_onnx": "ferlab.export.onnx_export",
    "network_to_onnx": "ferlab.export.onnx_export",
    "quantize_model": "ferlab.export.quantize",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferlab.export' has no attribute {name!r}")
