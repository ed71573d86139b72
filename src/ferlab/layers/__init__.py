"""Attention layers shared by the model zoo, each one small module, created by name.

``create_attention(name, channels, **kwargs)`` builds one; ``list_attention()`` names them.
Layer modules register themselves with :func:`register_attention` on import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from ferlab.errors import UnknownNameError

_ATTENTION: dict[str, Callable[..., nn.Module]] = {}


def register_attention(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        _ATTENTION[name] = cls
        return cls

    return decorate


def create_attention(name: str, channels: int, **kwargs: Any) -> nn.Module:
    """Build the attention layer ``name`` for feature maps with ``channels`` channels."""
    _load_all()
    if name not in _ATTENTION:
        raise UnknownNameError("attention layer", name, list(_ATTENTION))
    return _ATTENTION[name](channels, **kwargs)


def list_attention() -> list[str]:
    _load_all()
    return sorted(_ATTENTION)


def _load_all() -> None:
    import importlib
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


__all__ = ["create_attention", "list_attention", "register_attention"]
