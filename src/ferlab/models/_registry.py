"""Model registry: every architecture is created by name.

Modelled on timm: a model family lives in one file whose public constructor functions are
decorated with :func:`register_model`; :func:`create_model` builds one by name with keyword
variants. The registry also records each model's paper, so ``ferlab models`` can list them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ferlab.errors import FerlabError, UnknownNameError

__all__ = ["ModelEntry", "create_model", "get_model_entry", "list_models", "register_model"]


@dataclass(frozen=True)
class ModelEntry:
    name: str
    fn: Callable[..., nn.Module]
    source: str
    """Short citation of the paper the architecture comes from."""


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    fn: Callable[..., nn.Module] | None = None, *, source: str = ""
) -> Callable[..., Any]:
    """Register a model constructor under its function name.

    Use bare (``@register_model``) or with a citation (``@register_model(source="Luo 2022")``).
    """

    def decorate(f: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if f.__name__ in _REGISTRY:
            raise ValueError(f"model '{f.__name__}' is registered twice")
        _REGISTRY[f.__name__] = ModelEntry(f.__name__, f, source)
        return f

    return decorate(fn) if fn is not None else decorate


def _ensure_loaded() -> None:
    # Importing the package imports every model family, which registers them.
    import ferlab.models  # noqa: F401


def list_models() -> list[str]:
    """Names of every registered model, sorted."""
    _ensure_loaded()
    return sorted(_REGISTRY)


def get_model_entry(name: str) -> ModelEntry:
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("model", name, list(_REGISTRY)) from None


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; keyword arguments select its variant."""
    entry = get_model_entry(name)
    try:
        return entry.fn(**kwargs)
    except TypeError as exc:
        # A misspelt or unsupported keyword: say which model and what it accepts.
        import inspect

        accepted = ", ".join(inspect.signature(entry.fn).parameters)
        raise FerlabError(f"model '{name}': {exc} (its constructor takes: {accepted})") from None
