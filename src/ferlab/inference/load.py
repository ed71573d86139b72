"""``load_model``: a model by name or path, on the runtime asked for or the fastest one.

The decisions are made here once: which file (:mod:`~ferlab.inference.shipped`), which runtime
and precision (:mod:`~ferlab.inference.runtimes`: the fastest this machine offers within 0.1
point of fp32's accuracy, unless one is asked for), which device
(:mod:`~ferlab.inference.device`), how many threads, and which test-time augmentation
(:func:`~ferlab.inference.preprocess.resolve_tta`); the backends only run what they are given.
"""

from __future__ import annotations

from pathlib import Path

from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.inference.device import TRAIN_EXTRA, check_device, torch_device
from ferlab.inference.model import EmotionModel
from ferlab.inference.preprocess import resolve_tta
from ferlab.inference.runtimes import choose_runtime, thread_count, torch_installed
from ferlab.inference.shipped import SHIPPED, int8_file, model_file, verify_weights

__all__ = ["LOAD_PRECISIONS", "RUNTIMES", "load_model", "torch_installed"]

#: ``auto``: the fastest runtime available (see :mod:`~ferlab.inference.runtimes`).
RUNTIMES = ("auto", "torch", "onnx")
#: What ``load_model`` accepts as ``precision``: ``bf16`` is PyTorch's autocast, ``int8`` ONNX
#: Runtime on a statically quantised twin.
LOAD_PRECISIONS = ("fp32", "bf16", "int8")


def load_model(
    name_or_path: str | Path = "default",
    *,
    device: str = "auto",
    tta: str | None = None,
    runtime: str = "auto",
    precision: str | None = None,
    threads: int | None = None,
) -> EmotionModel:
    """Load a shipped model by name (``"default"``, ``"ferplus"``), a checkpoint or an export.

    ``tta`` defaults to the test-time augmentation recorded with the model (``none`` when it
    records none). Works offline: shipped weights live inside the installed package, and their
    SHA-256 is checked on load.

    ``runtime`` and ``precision``: with neither (the default), the fastest runtime this
    install and CPU offer whose PublicTest accuracy was measured within 0.1 point of PyTorch
    fp32 (:mod:`~ferlab.inference.runtimes`): for the shipped models ONNX Runtime on their int8
    twin, else ONNX Runtime fp32, else PyTorch (bf16 on CPUs with native bf16). ``runtime``
    forces one: ``torch`` runs checkpoints with PyTorch (``precision="bf16"``: under bf16
    autocast); ``onnx`` runs them with ONNX Runtime, from the ``.onnx`` file of the same name
    beside the checkpoint (every shipped model has one; ``precision="int8"``: its
    ``.int8.onnx`` twin), else from an export made in memory. ``.onnx`` files always run with
    ONNX Runtime. A forced runtime runs in fp32 unless ``precision`` says otherwise.

    ``threads``: intra-op threads of the runtime (default: ``OMP_NUM_THREADS`` when set, else
    the runtime's own choice).
    """
    if runtime not in RUNTIMES:
        raise UnknownNameError("runtime", runtime, list(RUNTIMES))
    if precision is not None and precision not in LOAD_PRECISIONS:
        raise UnknownNameError("precision", precision, list(LOAD_PRECISIONS))
    if precision == "bf16" and runtime == "onnx":
        raise FerlabError("precision bf16 is for the torch runtime; ONNX Runtime offers int8")
    if precision == "int8" and runtime == "torch":
        raise FerlabError("precision int8 is for the onnx runtime; PyTorch offers bf16")
    if tta is not None:
        resolve_tta(tta)
    check_device(device)
    threads = thread_count(threads)
    key = str(name_or_path)
    path = model_file(key)
    name = key if key in SHIPPED else path.stem
    quantised = int8_file(key)
    if path.suffix.lower() == ".onnx":
        if runtime == "torch" or precision == "bf16":
            raise DataError(
                "is an ONNX export: load it with runtime 'onnx' or 'auto'"
                + ("" if key not in SHIPPED else f" ({TRAIN_EXTRA} adds the PyTorch weights)"),
                path=path,
            )
        runtime = "onnx"
    if runtime == "auto":
        runtime, precision = choose_runtime(key, path, quantised, device, precision)
    precision = precision or "fp32"
    twin = path.with_suffix(".onnx")
    if runtime == "onnx":
        from ferlab.inference.onnx_backend import load_onnx

        if precision == "int8" and path.suffix.lower() != ".onnx":
            if quantised is None or not quantised.is_file():
                raise FerlabError(
                    f"'{key}' has no int8 twin; make one with "
                    f"`ferlab export {key} --int8 --calibration fer2013.csv.gz` and load that file"
                )
            twin = quantised
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
    backend, meta = load_torch(path, dev, precision, threads=threads)
    meta.setdefault("name", name)
    return EmotionModel(backend, meta, tta=resolve_tta(tta, meta.get("tta")))
