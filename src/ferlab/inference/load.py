"""``load_model``: a model by name or path, on the runtime asked for.

The decisions are made here once: which file (:mod:`~ferlab.inference.shipped`), which runtime
(PyTorch when installed, else ONNX Runtime), which device (:mod:`~ferlab.inference.device`) and
which test-time augmentation (:func:`~ferlab.inference.preprocess.resolve_tta`); the backends
only run what they are given.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.inference.device import TRAIN_EXTRA, check_device, torch_device
from ferlab.inference.model import PRECISIONS, EmotionModel
from ferlab.inference.preprocess import resolve_tta
from ferlab.inference.shipped import SHIPPED, model_file, verify_weights

__all__ = ["RUNTIMES", "load_model", "torch_installed"]

#: ``auto``: PyTorch when it is installed, else ONNX Runtime.
RUNTIMES = ("auto", "torch", "onnx")


def torch_installed() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def load_model(
    name_or_path: str | Path = "default",
    *,
    device: str = "auto",
    tta: str | None = None,
    runtime: str = "auto",
    precision: str = "fp32",
    threads: int | None = None,
) -> EmotionModel:
    """Load a shipped model by name (``"default"``, ``"ferplus"``), a checkpoint or an export.

    ``tta`` defaults to the test-time augmentation recorded with the model (``none`` when it
    records none). Works offline: shipped weights live inside the installed package, and their
    SHA-256 is checked on load. ``precision="bf16"`` runs a PyTorch model under bf16 autocast.

    ``runtime``: ``torch`` runs checkpoints with PyTorch; ``onnx`` runs them with ONNX Runtime,
    from the ``.onnx`` file of the same name beside the checkpoint (every shipped model has
    one), else from an export made in memory; ``auto`` (default) is ``torch`` when PyTorch is
    installed and ``onnx`` otherwise. ``.onnx`` files always run with ONNX Runtime.
    ``threads`` sets ONNX Runtime's intra-op threads (default: one per physical core).
    """
    if runtime not in RUNTIMES:
        raise UnknownNameError("runtime", runtime, list(RUNTIMES))
    if precision not in PRECISIONS:
        raise UnknownNameError("precision", precision, list(PRECISIONS))
    if precision != "fp32" and runtime == "onnx":
        raise FerlabError("precision bf16 is for the torch runtime; ONNX Runtime offers int8")
    if tta is not None:
        resolve_tta(tta)
    check_device(device)
    key = str(name_or_path)
    path = model_file(key)
    name = key if key in SHIPPED else path.stem
    if path.suffix.lower() == ".onnx":
        if runtime == "torch":
            raise DataError(
                "is an ONNX export: load it with runtime 'onnx' or 'auto'"
                + ("" if key not in SHIPPED else f" ({TRAIN_EXTRA} adds the PyTorch weights)"),
                path=path,
            )
        runtime = "onnx"
    if runtime == "auto":
        runtime = "torch" if torch_installed() else "onnx"
    twin = path.with_suffix(".onnx")
    if runtime == "onnx":
        from ferlab.inference.onnx_backend import load_onnx

        if path.suffix.lower() == ".onnx" or twin.is_file():
            return load_onnx(twin, device=device, tta=tta, name=name, threads=threads)
        if not torch_installed():
            raise FerlabError(
                f"'{key}' is a PyTorch checkpoint with no .onnx export beside it, and running "
                f"it needs PyTorch ({TRAIN_EXTRA}); or export it where PyTorch is installed "
                f"(ferlab export {key} --out {twin.name}) and load the .onnx file"
            )
        from ferlab.inference.torch_backend import export_in_memory

        verify_weights(path)
        loaded = load_onnx(
            export_in_memory(path), device=device, tta=tta, name=name, threads=threads
        )
        loaded.meta["path"] = str(path)
        return loaded
    dev = torch_device(device)
    from ferlab.inference.torch_backend import load_torch

    verify_weights(path)
    backend, meta = load_torch(path, dev, precision)
    meta.setdefault("name", name)
    return EmotionModel(backend, meta, tta=resolve_tta(tta, meta.get("tta")))
