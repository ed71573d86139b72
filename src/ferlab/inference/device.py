"""Where a model runs: device names checked and resolved in one place, for every runtime.

Device names are ``auto`` (a GPU when there is one, else the CPU), ``cpu``, ``cuda`` and
``cuda:N``. :func:`torch_device` resolves one for PyTorch (training, evaluation, the PyTorch
backend), :func:`onnx_providers` for ONNX Runtime. :func:`import_torch` is how inference code
reaches PyTorch, which only the ``ferlab[train]`` extra installs.
"""

from __future__ import annotations

from typing import Any

from ferlab.errors import FerlabError, UnknownNameError

__all__ = ["DEVICES", "check_device", "import_torch", "onnx_providers", "torch_device"]

DEVICES = ("auto", "cpu", "cuda")

#: What to install for the commands and runtimes that need PyTorch.
TRAIN_EXTRA = "pip install 'ferlab[train]'"


def check_device(device: str) -> str:
    """``device`` when it is a device name (see the module docstring), else a clear error."""
    if device in DEVICES or (device.startswith("cuda:") and device[5:].isdigit()):
        return device
    raise UnknownNameError("device", device, [*DEVICES, "cuda:N"])


def import_torch(purpose: str = "this") -> Any:
    """``torch``, or a one-line error saying which extra installs it."""
    try:
        import torch
    except ImportError:
        raise FerlabError(
            f"{purpose} needs PyTorch, which this install lacks: {TRAIN_EXTRA}"
        ) from None
    return torch


def torch_device(device: str) -> str:
    """A PyTorch device for a device name: ``auto`` becomes ``cuda`` where a GPU is usable."""
    check_device(device)
    torch = import_torch("running a model with PyTorch")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise FerlabError(f"device '{device}' was requested but no CUDA device is available")
    return device


def onnx_providers(ort: Any, device: str) -> list[Any]:
    """ONNX Runtime execution providers for a device name."""
    check_device(device)
    cuda_ok = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not cuda_ok):
        return ["CPUExecutionProvider"]
    if device == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if not cuda_ok:
        raise FerlabError(
            f"device '{device}' needs onnxruntime-gpu (this onnxruntime runs on the CPU only)"
        )
    index = int(device[5:]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
