"""ferlab: facial emotion recognition with attention CNNs.

Public API: :func:`load_model` (a trained classifier with ``predict_proba`` / ``predict``),
:func:`create_model` / :func:`list_models` (the model zoo), :func:`load_dataset` (FER2013, FER+
and image folders) and :class:`Recognizer` (faces → emotions in photos, videos and cameras).
Heavy modules load on first use, so ``import ferlab`` stays fast.
"""

from __future__ import annotations

from typing import Any

from ferlab.errors import DataError, FerlabError, UnknownNameError

__version__ = "0.1.0"

_LAZY = {
    "load_model": "ferlab.inference",
    "EmotionModel": "ferlab.inference",
    "create_model": "ferlab.models",
    "list_models": "ferlab.models",
    "load_dataset": "ferlab.data",
    "Recognizer": "ferlab.recognize",
}

__all__ = ["DataError", "FerlabError", "UnknownNameError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferlab' has no attribute {name!r}")
