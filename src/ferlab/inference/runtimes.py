"""Which runtime runs a model when none is asked for, and how many threads it uses.

``load_model(name)`` without ``runtime`` takes the first of these that this install and CPU
offer, fastest first (docs/benchmarks.md, "ONNX Runtime and int8" and "Speed against fer"):

1. ``onnx`` / ``int8``: ONNX Runtime on the model's statically quantised twin
   (``<name>.int8.onnx``, shipped beside ``<name>.onnx``);
2. ``onnx`` / ``fp32``: ONNX Runtime on the float twin;
3. ``torch`` / ``bf16``: PyTorch under bf16 autocast, only on CPUs with native bf16
   (AVX-512 BF16 or AMX), where it is about twice fp32's speed (on others it is slower);
4. ``torch`` / ``fp32``.

The order holds one face per call (video frames, photos), where PyTorch's per-call cost
dominates. With 256 faces per call PyTorch bf16 can lead on a CPU with AMX (the speeds in
``weights/runtimes.json``: ``fast`` 6,367 crops/s on one thread against ONNX Runtime fp32's
4,217, but 730 against 3,234 one face per call), so ``precision="bf16"`` is for large batches.

The reduced precisions (int8, bf16) change a few near-tied decisions, so they are candidates
only for a shipped model whose record in ``weights/runtimes.json`` shows FER2013 PublicTest
accuracy (its validation split) within :data:`MAX_DROP` point of PyTorch fp32, under every
test-time augmentation measured; ``scripts/measure_runtimes.py`` measures and writes that
record. The fp32 runtimes run the same network in the same arithmetic and are always
candidates, so a model without a record (a new shipped model, a checkpoint) runs in fp32.

Threads: :func:`thread_count` is the one number every library gets (``--threads``, else
``OMP_NUM_THREADS``, else each library's own default); nothing here imports PyTorch, ONNX
Runtime or OpenCV.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "CANDIDATES",
    "MAX_DROP",
    "apply_threads",
    "choose_runtime",
    "native_bf16",
    "onnxruntime_installed",
    "runtime_record",
    "thread_count",
    "torch_installed",
]

#: Largest PublicTest accuracy change (points) a reduced precision may cost to be a default.
MAX_DROP = 0.1

#: ``(runtime, precision)`` choices, fastest first (see the module docstring).
CANDIDATES = (("onnx", "int8"), ("onnx", "fp32"), ("torch", "bf16"), ("torch", "fp32"))

RECORD_FILE = "runtimes.json"


def torch_installed() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    return importlib.util.find_spec("torch") is not None


def onnxruntime_installed() -> bool:
    """Whether ONNX Runtime can be imported (without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


@cache
def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512 BF16 or AMX; Linux's CPU flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "").split()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def runtime_record(name: str) -> dict[str, Any]:
    """The measured record of a shipped model (``{}`` when it has none); see the docstring."""
    from ferlab.inference.shipped import weights_dir

    path = weights_dir() / RECORD_FILE
    try:
        records = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return records.get(name, {}) if isinstance(records, dict) else {}


def within_fp32(record: dict[str, Any], key: str) -> bool:
    """Whether ``record`` measured runtime ``key`` (``onnx-int8``...) within :data:`MAX_DROP`
    of ``torch-fp32`` under every test-time augmentation it holds."""
    acc = record.get("accuracy", {})
    ref, got = acc.get("torch-fp32"), acc.get(key)
    if not ref or not got or set(ref) != set(got):
        return False
    return all(abs(got[t] - ref[t]) <= MAX_DROP + 1e-9 for t in ref)


def choose_runtime(
    name: str, path: Path, int8_path: Path | None, device: str, precision: str | None = None
) -> tuple[str, str]:
    """``(runtime, precision)`` for ``load_model`` when no runtime is asked for (see the module
    docstring). ``path`` is the model's file; ``int8_path`` its int8 twin, if it has one; a
    ``precision`` asked for limits the choice to the runtimes offering it, measured or not."""
    twin = path.with_suffix(".onnx")
    record = runtime_record(name)
    ort = onnxruntime_installed()
    gpu_ort = device != "cpu" and _onnx_cuda(ort)
    onnx_ok = ort and (gpu_ort or not device.startswith("cuda"))
    # int8 and bf16 are CPU arithmetic; on a GPU the float network is the fast one.
    cpu_only = device == "cpu" or (device == "auto" and not gpu_ort)
    available = {
        ("onnx", "int8"): onnx_ok and cpu_only and int8_path is not None and int8_path.is_file(),
        ("onnx", "fp32"): onnx_ok and twin.is_file(),
        ("torch", "bf16"): torch_installed() and cpu_only and native_bf16(),
        ("torch", "fp32"): torch_installed() and path.suffix.lower() != ".onnx",
    }
    if precision is not None:
        offering = [c for c in CANDIDATES if c[1] == precision]
        # The first that can run here, else the first, which then says what is missing.
        return next((c for c in offering if available[c]), offering[0])
    for runtime, arithmetic in CANDIDATES:
        if available[runtime, arithmetic] and (
            arithmetic == "fp32" or within_fp32(record, f"{runtime}-{arithmetic}")
        ):
            return runtime, arithmetic
    # Neither library can run it as it is: ONNX Runtime (always installed) gives the error.
    return "onnx", "fp32"


def _onnx_cuda(ort: bool) -> bool:
    if not ort:
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def thread_count(threads: int | None = None) -> int | None:
    """Threads for every library: ``threads`` when given, else ``OMP_NUM_THREADS`` when it is
    a positive whole number, else ``None`` (each library's own default)."""
    if threads is not None:
        if threads < 1:
            from ferlab.errors import FerlabError

            raise FerlabError(f"threads must be 1 or more, got {threads}")
        return threads
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def apply_threads(threads: int | None) -> None:
    """Give OpenCV (and PyTorch, when it is loaded) ``threads`` threads, so that the libraries
    together use the cores once rather than each on its own (``None`` leaves them as they are);
    ONNX Runtime gets it per session (``load_model``)."""
    if threads is None:
        return
    import cv2

    cv2.setNumThreads(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
