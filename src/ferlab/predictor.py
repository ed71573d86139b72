"""``ferlab.load_model``: a trained network as a scikit-learn-style predictor.

``load_model("default")`` returns the FER2013 model shipped inside the package,
``load_model("ferplus")`` the 8-class FER+ model, and ``load_model("path/to/best.pt")`` any
checkpoint written by ``ferlab train``. The returned :class:`EmotionModel` takes grayscale face
crops and returns class probabilities whose columns follow ``.labels``.

``load_model("model.onnx")`` (a file written by ``ferlab export``) returns the same interface run
by ONNX Runtime without PyTorch (:mod:`ferlab.export.runtime`); ``runtime="onnx"`` runs a
checkpoint that way, and where PyTorch is not installed the ``.onnx`` file beside a checkpoint
or shipped model is used automatically.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ferlab.errors import DataError, FerlabError, UnknownNameError

__all__ = ["EmotionModel", "gray_faces", "load_model", "model_file", "shipped_models"]

#: Names of the models shipped inside the package and their weight files.
SHIPPED = {"default": "default.pt", "ferplus": "ferplus.pt"}

TTA_CHOICES = ("none", "flip", "ten_crop")

#: Arithmetic of the PyTorch runtime: ``bf16`` (autocast) is about twice as fast on CPUs with
#: native bf16 (AVX-512 BF16, AMX) and changes few predictions (docs/models.md).
PRECISIONS = ("fp32", "bf16")

#: ``auto``: PyTorch when it is installed, else the ``.onnx`` export beside the model.
RUNTIMES = ("auto", "torch", "onnx")


def _weights_dir() -> Path:
    return Path(str(resources.files("ferlab") / "weights"))


def shipped_models() -> dict[str, Path]:
    """Shipped model names whose weights are present in this install, with their paths."""
    root = _weights_dir()
    found = {}
    for name, filename in SHIPPED.items():
        path = root / filename
        if path.is_file():
            found[name] = path
    return found


def model_file(name_or_path: str | Path) -> Path:
    """The file behind a shipped model name or a path: a ``.pt`` checkpoint, or a shipped
    model's ``.onnx`` export where its ``.pt`` is absent (an inference-only install)."""
    key = str(name_or_path)
    if key in SHIPPED:
        pt = _weights_dir() / SHIPPED[key]
        for path in (pt, pt.with_suffix(".onnx")):
            if path.is_file():
                return path
        raise DataError(
            f"the '{key}' model's weights are not in this install "
            f"(expected ferlab/weights/{SHIPPED[key]}); reinstall ferlab or pass a "
            "checkpoint path",
            field="model",
        )
    path = Path(key)
    if not path.exists():
        if path.suffix or len(path.parts) > 1:
            kind = "ONNX export" if path.suffix.lower() == ".onnx" else "checkpoint"
            raise DataError(f"{kind} not found", path=path)
        raise UnknownNameError(
            "model (name or checkpoint path)",
            key,
            [*SHIPPED, "<path to a .pt checkpoint or .onnx export>"],
        )
    return path


def _torch_installed() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UnknownNameError("device", device, ["auto", "cpu", "cuda"])
    return device


def gray_faces(faces: Any) -> np.ndarray:
    """Faces as uint8 grayscale N×H×W: one H×W face becomes N = 1, BGR(A) crops turn gray.

    Numbers 0–255 of another real dtype are rounded to pixel values; anything else is a
    :class:`~ferlab.errors.DataError` naming the problem. N may be 0; the sides may not.
    """
    arr = np.asarray(faces)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim == 4 and arr.shape[-1] in (3, 4):
        import cv2

        code = cv2.COLOR_BGRA2GRAY if arr.shape[-1] == 4 else cv2.COLOR_BGR2GRAY
        arr = np.stack([cv2.cvtColor(np.ascontiguousarray(f), code) for f in arr])
    if arr.ndim != 3:
        raise DataError(
            f"faces must be a grayscale array N×H×W (or one H×W face), got shape {arr.shape}",
            field="faces",
        )
    if min(arr.shape[1:]) < 1:
        raise DataError(f"faces have an empty side: shape {arr.shape}", field="faces")
    if arr.dtype != np.uint8:
        real = np.issubdtype(arr.dtype, np.number) and not np.issubdtype(
            arr.dtype, np.complexfloating
        )
        if not real or (arr.size and (np.isnan(arr).any() or arr.min() < 0 or arr.max() > 255)):
            raise DataError(
                f"faces must hold pixel values 0-255 (uint8), got dtype {arr.dtype}",
                field="faces",
            )
        arr = np.rint(arr).astype(np.uint8)
    return np.ascontiguousarray(arr)


class EmotionModel:
    """A trained emotion classifier with ``predict_proba`` / ``predict``.

    Attributes:
        labels: class names, in the order of ``predict_proba``'s columns.
        input_size: (C, H, W) of the network input.
        image_size: side of the square grayscale faces the model expects (48); other sizes are
            resized with area interpolation.
        tta: test-time augmentation used by :meth:`predict_proba` (``none``, ``flip`` or
            ``ten_crop``).
        precision: ``fp32`` or ``bf16`` (autocast) arithmetic of the network.
        meta: everything the checkpoint records (recipe, metrics, preprocessing, version).

    :func:`load_model` puts the network in the channels-last memory layout, which oneDNN's
    convolutions run fastest (1.2× at batch 1 and 1.5× at batch 256 for the default model,
    docs/benchmarks.md).
    """

    def __init__(
        self,
        network: Any,
        meta: dict,
        *,
        device: str = "cpu",
        tta: str = "none",
        precision: str = "fp32",
    ):
        if tta not in TTA_CHOICES:
            raise UnknownNameError("test-time augmentation", tta, list(TTA_CHOICES))
        if precision not in PRECISIONS:
            raise UnknownNameError("precision", precision, list(PRECISIONS))
        self.network = network
        self.precision = precision
        self.meta = meta
        self.device = device
        self.tta = tta
        self.labels: tuple[str, ...] = tuple(meta["classes"])
        self.input_size: tuple[int, int, int] = tuple(meta["input_size"])
        self.image_size: int = meta["preprocess"].image_size
        self.name: str = meta.get("name", meta["model"]["name"])

    def __repr__(self) -> str:
        return f"EmotionModel({self.name!r}, labels={list(self.labels)}, tta={self.tta!r})"

    def _as_faces(self, faces: Any) -> np.ndarray:
        """Validate faces and bring them to uint8 N×S×S (S = ``image_size``)."""
        arr = gray_faces(faces)
        s = self.image_size
        if arr.shape[1:] != (s, s):
            import cv2

            arr = np.stack([cv2.resize(f, (s, s), interpolation=cv2.INTER_AREA) for f in arr])
        return np.ascontiguousarray(arr)

    def predict_proba(self, faces: Any, *, batch_size: int = 256) -> np.ndarray:
        """Probabilities N×C (rows sum to 1; columns follow :attr:`labels`).

        ``faces``: uint8 grayscale crops N×H×W (48×48 like FER2013; other sizes are resized),
        a single H×W crop, or BGR(A) crops N×H×W×3/4.
        """
        import torch

        from ferlab.engine.evaluate import predict_proba

        arr = self._as_faces(faces)
        if arr.shape[0] == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        probs = predict_proba(
            self.network,
            torch.from_numpy(arr),
            self.meta["preprocess"],
            tta=self.tta,
            batch_size=batch_size,
            device=self.device,
            channels_last=True,
            bf16=self.precision == "bf16",
        )
        return probs.numpy().astype(np.float32)

    def predict(self, faces: Any) -> list[str]:
        """The most probable label of each face."""
        probs = self.predict_proba(faces)
        return [self.labels[i] for i in probs.argmax(1)]


def load_model(
    name_or_path: str | Path = "default",
    *,
    device: str = "auto",
    tta: str | None = None,
    runtime: str = "auto",
    precision: str = "fp32",
) -> EmotionModel:
    """Load a shipped model by name (``"default"``, ``"ferplus"``), a checkpoint or an export.

    ``tta`` defaults to the test-time augmentation recorded with the model (``none`` when it
    records none). Works offline: shipped weights live inside the installed package.
    ``precision="bf16"`` runs a PyTorch model under bf16 autocast (see :data:`PRECISIONS`).

    ``runtime``: ``torch`` runs checkpoints with PyTorch; ``onnx`` runs them with ONNX Runtime,
    from the ``.onnx`` file of the same name beside the checkpoint when there is one, else from an
    export made in memory; ``auto`` (default) is ``torch`` when PyTorch is installed and ``onnx``
    otherwise. ``.onnx`` files always run with ONNX Runtime.
    """
    if runtime not in RUNTIMES:
        raise UnknownNameError("runtime", runtime, list(RUNTIMES))
    if precision not in PRECISIONS:
        raise UnknownNameError("precision", precision, list(PRECISIONS))
    if precision != "fp32" and runtime == "onnx":
        raise FerlabError("precision bf16 is for the torch runtime; ONNX Runtime offers int8")
    key = str(name_or_path)
    path = model_file(key)
    name = key if key in SHIPPED else path.stem
    if path.suffix.lower() == ".onnx":
        if runtime == "torch":
            raise DataError("is an ONNX export: load it with runtime 'onnx' or 'auto'", path=path)
        return _load_onnx(path, device, tta, name)
    if runtime == "auto" and not _torch_installed():
        if not path.with_suffix(".onnx").is_file():
            raise FerlabError(
                f"PyTorch is not installed, and '{key}' is a PyTorch checkpoint with no .onnx "
                f"export beside it: pip install torch, or export it where PyTorch is installed "
                f"(ferlab export {key} --out {path.with_suffix('.onnx').name}) and load the "
                ".onnx file"
            )
        runtime = "onnx"
    if runtime == "onnx":
        twin = path.with_suffix(".onnx")
        return _load_onnx(twin if twin.is_file() else path, device, tta, name)
    from ferlab.engine.checkpoint import load_checkpoint

    dev = _resolve_device(device)
    network, meta = load_checkpoint(path, device=dev)
    import torch

    network.to(memory_format=torch.channels_last)
    meta.setdefault("name", name)
    chosen = tta if tta is not None else meta.get("tta", "none")
    return EmotionModel(network, meta, device=dev, tta=chosen, precision=precision)


def _load_onnx(path: Path, device: str, tta: str | None, name: str) -> EmotionModel:
    """An ``.onnx`` file, or a checkpoint exported in memory, run by ONNX Runtime."""
    from ferlab.export.runtime import load_onnx

    if path.suffix.lower() == ".onnx":
        return load_onnx(path, device=device, tta=tta, name=name)
    if not _torch_installed():
        raise FerlabError(
            f"running the checkpoint {path} with ONNX Runtime exports it first, which needs "
            "PyTorch: pip install torch, or load an .onnx file written by ferlab export"
        )
    from ferlab.engine.checkpoint import load_checkpoint
    from ferlab.export.onnx_export import network_to_onnx, require_onnx

    require_onnx()
    network, meta = load_checkpoint(path, device="cpu")
    meta["source"] = path.name
    model = network_to_onnx(network, meta, dynamic_batch=True)
    loaded = load_onnx(model.SerializeToString(), device=device, tta=tta, name=name)
    loaded.meta["path"] = str(path)
    return loaded
