"""Run an exported ``.onnx`` model with ONNX Runtime: the ``load_model`` interface without torch.

:func:`load_onnx` returns an :class:`OnnxEmotionModel`, an
:class:`~ferlab.predictor.EmotionModel` whose ``predict_proba`` prepares faces with
:class:`~ferlab.export.preprocess.ArrayPreprocess` (numpy), runs the ONNX graph and averages the
softmax over the test-time views, exactly as the PyTorch path does. Nothing here imports torch,
so an install with only ``onnxruntime`` (and numpy, OpenCV) runs models and the recognizer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.export import metadata
from ferlab.export.preprocess import ArrayPreprocess
from ferlab.predictor import EmotionModel

__all__ = ["OnnxEmotionModel", "import_onnxruntime", "load_onnx", "softmax"]


def import_onnxruntime() -> Any:
    """``onnxruntime``, or a clear error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise FerlabError(
            "the ONNX runtime needs the onnxruntime package: pip install 'ferlab[onnx]' "
            "(or pip install onnxruntime)"
        ) from None
    return onnxruntime


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (as ``torch.softmax(logits, 1)``)."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _providers(ort: Any, device: str) -> list[Any]:
    """ONNX Runtime execution providers for a ferlab device name (auto, cpu, cuda[:N])."""
    cuda_ok = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cpu" or (device == "auto" and not cuda_ok):
        return ["CPUExecutionProvider"]
    if device == "auto":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not cuda_ok:
            raise FerlabError(
                "device 'cuda' needs onnxruntime-gpu (this onnxruntime runs on the CPU only)"
            )
        index = int(device[5:]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise UnknownNameError("device", device, ["auto", "cpu", "cuda"])


class OnnxEmotionModel(EmotionModel):
    """An exported model run by ONNX Runtime, with the interface of
    :class:`~ferlab.predictor.EmotionModel` (``labels``, ``input_size``, ``tta``, ``meta``,
    ``predict_proba``, ``predict``). ``network`` is the ``onnxruntime.InferenceSession``."""

    def __init__(self, session: Any, meta: dict, *, device: str = "cpu", tta: str = "none"):
        super().__init__(session, meta, device=device, tta=tta)
        first = session.get_inputs()[0]
        self._input = first.name
        self._output = session.get_outputs()[0].name
        # Exports without --dynamic-batch take a fixed number of inputs per run.
        self._fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None

    def __repr__(self) -> str:
        quant = self.meta.get("quantization", "none")
        return (
            f"OnnxEmotionModel({self.name!r}, labels={list(self.labels)}, tta={self.tta!r}, "
            f"quantization={quant!r})"
        )

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Network outputs for prepared inputs N×C×H×W (float32), in runs the graph accepts."""
        run = self.network.run
        fixed = self._fixed_batch
        if fixed is None:
            return run([self._output], {self._input: x})[0]
        out = []
        for lo in range(0, len(x), fixed):
            part = x[lo : lo + fixed]
            n = len(part)
            if n < fixed:  # pad the last run to the graph's batch size
                part = np.concatenate([part, np.zeros((fixed - n, *part.shape[1:]), part.dtype)])
            out.append(run([self._output], {self._input: part})[0][:n])
        return np.concatenate(out)

    def predict_proba(self, faces: Any, *, batch_size: int = 256) -> np.ndarray:
        """Probabilities N×C (rows sum to 1; columns follow :attr:`labels`); same inputs as
        :meth:`EmotionModel.predict_proba`."""
        arr = self._as_faces(faces)
        preprocess: ArrayPreprocess = self.meta["preprocess"]
        out = []
        for lo in range(0, arr.shape[0], batch_size):
            views = preprocess(arr[lo : lo + batch_size], self.tta)
            v, n = views.shape[:2]
            logits = self.logits(views.reshape(v * n, *views.shape[2:]))
            out.append(softmax(logits.astype(np.float32)).reshape(v, n, -1).mean(0))
        if not out:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.concatenate(out).astype(np.float32)


def load_onnx(
    model: str | Path | bytes,
    *,
    device: str = "auto",
    tta: str | None = None,
    threads: int | None = None,
    name: str | None = None,
    config: dict[str, str] | None = None,
) -> OnnxEmotionModel:
    """Load a ferlab ``.onnx`` file (or its bytes) for prediction with ONNX Runtime.

    ``tta`` defaults to the one recorded in the file; ``threads`` sets ONNX Runtime's intra-op
    threads (default: its own choice, one per physical core); ``config`` adds session
    configuration entries (e.g. ``{"session.intra_op.allow_spinning": "0"}`` on a busy machine).
    """
    ort = import_onnxruntime()
    where = None if isinstance(model, bytes) else str(model)
    if where is not None:
        path = Path(model)
        if not path.is_file():
            raise DataError(
                "ONNX model not found" if not path.exists() else "not a file", path=path
            )
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    providers = _providers(ort, device)
    try:
        session = ort.InferenceSession(
            model if isinstance(model, bytes) else str(model), options, providers=providers
        )
    except Exception as exc:  # onnxruntime raises its own types for invalid graphs
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"not a loadable ONNX model: {reason[:300]}", path=where) from None
    fields = metadata.decode(session.get_modelmeta().custom_metadata_map, path=where)
    renamed = ("labels", "input_size", "preprocess", "model", "model_kwargs")
    meta = {k: v for k, v in fields.items() if k not in renamed}
    meta.update(
        classes=fields["labels"],
        input_size=tuple(fields["input_size"]),
        preprocess=ArrayPreprocess.from_dict(fields["preprocess"]),
        model={"name": fields["model"], "kwargs": fields.get("model_kwargs", {})},
        name=name or (Path(where).stem if where else fields["model"]),
        path=where,
        runtime="onnx",
    )
    chosen = tta if tta is not None else meta.get("tta", "none")
    used = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
    return OnnxEmotionModel(session, meta, device=used, tta=chosen)
