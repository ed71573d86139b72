"""``ferlab.load_model``: a trained network as a scikit-learn-style predictor.

``load_model("default")`` returns the FER2013 model shipped inside the package,
``load_model("ferplus")`` the 8-class FER+ model, and ``load_model("path/to/best.pt")`` any
checkpoint written by ``ferlab train``. The returned :class:`EmotionModel` takes grayscale face
crops and returns class probabilities whose columns follow ``.labels``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ferlab.errors import DataError, UnknownNameError

__all__ = ["EmotionModel", "load_model", "shipped_models"]

#: Names of the models shipped inside the package and their weight files.
SHIPPED = {"default": "default.pt", "ferplus": "ferplus.pt"}

TTA_CHOICES = ("none", "flip", "ten_crop")


def shipped_models() -> dict[str, Path]:
    """Shipped model names whose weights are present in this install, with their paths."""
    root = resources.files("ferlab") / "weights"
    found = {}
    for name, filename in SHIPPED.items():
        path = Path(str(root / filename))
        if path.is_file():
            found[name] = path
    return found


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UnknownNameError("device", device, ["auto", "cpu", "cuda"])
    return device


class EmotionModel:
    """A trained emotion classifier with ``predict_proba`` / ``predict``.

    Attributes:
        labels: class names, in the order of ``predict_proba``'s columns.
        input_size: (C, H, W) of the network input.
        image_size: side of the square grayscale faces the model expects (48); other sizes are
            resized with area interpolation.
        tta: test-time augmentation used by :meth:`predict_proba` (``none``, ``flip`` or
            ``ten_crop``).
        meta: everything the checkpoint records (recipe, metrics, preprocessing, version).
    """

    def __init__(self, network: Any, meta: dict, *, device: str = "cpu", tta: str = "none"):
        if tta not in TTA_CHOICES:
            raise UnknownNameError("test-time augmentation", tta, list(TTA_CHOICES))
        self.network = network
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
        if arr.dtype != np.uint8:
            if (
                not np.issubdtype(arr.dtype, np.number)
                or arr.size
                and (np.nanmin(arr) < 0 or np.nanmax(arr) > 255 or np.isnan(arr).any())
            ):
                raise DataError(
                    f"faces must hold pixel values 0-255 (uint8), got dtype {arr.dtype}",
                    field="faces",
                )
            arr = np.rint(arr).astype(np.uint8)
        s = self.image_size
        if arr.shape[1:] != (s, s):
            import cv2

            if min(arr.shape[1:]) < 1:
                raise DataError(f"faces have an empty side: shape {arr.shape}", field="faces")
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
        )
        return probs.numpy().astype(np.float32)

    def predict(self, faces: Any) -> list[str]:
        """The most probable label of each face."""
        probs = self.predict_proba(faces)
        return [self.labels[i] for i in probs.argmax(1)]


def load_model(
    name_or_path: str | Path = "default", *, device: str = "auto", tta: str | None = None
) -> EmotionModel:
    """Load a shipped model by name (``"default"``, ``"ferplus"``) or a checkpoint by path.

    ``tta`` defaults to the test-time augmentation recorded with the model (``none`` when it
    records none). Works offline: shipped weights live inside the installed package.
    """
    from ferlab.engine.checkpoint import load_checkpoint

    key = str(name_or_path)
    shipped = shipped_models()
    if key in SHIPPED:
        if key not in shipped:
            raise DataError(
                f"the '{key}' model's weights are not in this install "
                f"(expected ferlab/weights/{SHIPPED[key]}); reinstall ferlab or pass a "
                "checkpoint path",
                field="model",
            )
        path = shipped[key]
    else:
        path = Path(key)
        if not path.exists():
            raise UnknownNameError(
                "model (name or checkpoint path)", key, [*SHIPPED, "<path to a .pt checkpoint>"]
            )
    dev = _resolve_device(device)
    network, meta = load_checkpoint(path, device=dev)
    meta.setdefault("name", key if key in SHIPPED else path.stem)
    chosen = tta if tta is not None else meta.get("tta", "none")
    return EmotionModel(network, meta, device=dev, tta=chosen)
