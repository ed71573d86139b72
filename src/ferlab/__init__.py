"""ferlab: facial emotion recognition with attention CNNs."""

from __future__ import annotations

from ferlab.errors import DataError, FerlabError, UnknownNameError

__version__ = "0.1.0"

__all__ = ["DataError", "FerlabError", "UnknownNameError", "__version__"]
