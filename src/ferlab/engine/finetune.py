"""Fine-tuning: a run that starts from another run's weights (``model.init_from``).

The FER+ model starts from the FER2013 default model this way: same network, same
normalisation, a fresh 8-class classifier. The source's path, SHA-256 and metrics are kept in
every checkpoint of the new run, so the chain of weights stays traceable after the source
file is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from ferlab.engine.checkpoint import file_sha256, read_checkpoint
from ferlab.errors import DataError

__all__ = ["load_initial_weights", "read_source"]

# May differ between source and new run: set by the engine from the data (num_classes), or
# options that drop layers while every other tensor keeps its name and shape (ferlab_net's
# se=False, the squeeze-and-excitation ablation).
_FREE_KWARGS = ("num_classes", "se")


def read_source(spec: str) -> tuple[Path, dict[str, Any]]:
    """The checkpoint behind ``model.init_from``: a path or a shipped model name."""
    from ferlab.inference import model_file

    path = model_file(spec)
    if path.suffix.lower() == ".onnx":
        raise DataError(
            "model.init_from needs a PyTorch checkpoint (.pt), not an ONNX export", path=path
        )
    return path, read_checkpoint(path)


def load_initial_weights(
    model: nn.Module, name: str, kwargs: dict[str, Any], path: Path, source: dict[str, Any]
) -> dict[str, Any]:
    """Copy every tensor of ``source`` whose name and shape fit ``model``; the rest start fresh.

    Returns the provenance stored as ``init_from`` in the new run's checkpoints: ``fresh``
    names the new run's tensors that start fresh, ``unused`` the source's tensors left out.
    """
    spec = source["model"]
    if spec["name"] != name:
        raise DataError(
            f"model.init_from holds a '{spec['name']}' network; the recipe trains '{name}'",
            path=path,
        )
    theirs = {k: v for k, v in spec["kwargs"].items() if k not in _FREE_KWARGS}
    ours = {k: v for k, v in kwargs.items() if k not in _FREE_KWARGS}
    if theirs != ours:
        raise DataError(
            f"model.init_from was built with {theirs}; the recipe asks for {ours}", path=path
        )
    weights = source["state_dict"]
    own = model.state_dict()
    fitting = {k: v for k, v in weights.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(fitting, strict=False)
    return {
        "path": str(path.resolve()),
        "sha256": file_sha256(path),
        "model": spec,
        "classes": list(source["classes"]),
        "metrics": source.get("metrics", {}),
        "fresh": sorted(set(own) - set(fitting)),
        "unused": sorted(set(weights) - set(fitting)),
    }
