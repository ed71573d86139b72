"""The ONNX Runtime backend: exported ``.onnx`` models (and the shipped models' ONNX twins)
run without PyTorch.

:func:`load_onnx` returns an :class:`~ferlab.inference.model.EmotionModel` whose backend is an
:class:`OnnxBackend`: the faces are prepared by the same numpy
:class:`~ferlab.inference.preprocess.Preprocess` as for PyTorch, the graph runs in ONNX Runtime
and the softmax is averaged over the test-time views. Nothing here imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ferlab.errors import DataError, FerlabError
from ferlab.inference import metadata
from ferlab.inference.device import onnx_providers
from ferlab.inference.model import EmotionModel
from ferlab.inference.preprocess import Preprocess, resolve_tta
from ferlab.inference.shipped import verify_weights

__all__ = ["OnnxBackend", "import_onnxruntime", "load_onnx", "softmax"]


def import_onnxruntime() -> Any:
    """``onnxruntime``, or a clear error saying how to install it."""
    try:
        import onnxruntime
    except ImportError:
        raise FerlabError(
            "running ONNX models needs the onnxruntime package, which ferlab installs: "
            "reinstall ferlab (pip install ferlab) or pip install onnxruntime"
        ) from None
    return onnxruntime


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (as ``torch.softmax(logits, 1)``)."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


class OnnxBackend:
    """Runs an ONNX Runtime session on test-time views (see
    :class:`~ferlab.inference.model.Backend`); ``network`` is the ``InferenceSession``."""

    runtime = "onnx"

    def __init__(self, session: Any, precision: str = "fp32") -> None:
        self.network = session
        self.precision = precision
        self.device = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"
        first = session.get_inputs()[0]
        self._input = first.name
        self._output = session.get_outputs()[0].name
        # Exports without --dynamic-batch take a fixed number of inputs per run.
        self._fixed_batch = first.shape[0] if isinstance(first.shape[0], int) else None

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

    def probs(self, views: np.ndarray) -> np.ndarray:
        """Softmax N×C averaged over the V views of V×N×C×H×W inputs (float32)."""
        v, n = views.shape[:2]
        logits = self.logits(views.reshape(v * n, *views.shape[2:]))
        return softmax(logits.astype(np.float32)).reshape(v, n, -1).mean(0)


def load_onnx(
    model: str | Path | bytes,
    *,
    device: str = "auto",
    tta: str | None = None,
    threads: int | None = None,
    name: str | None = None,
    config: dict[str, str] | None = None,
) -> EmotionModel:
    """Load a ferlab ``.onnx`` file (or its bytes) for prediction with ONNX Runtime.

    ``tta`` defaults to the one recorded in the file; ``threads`` sets ONNX Runtime's intra-op
    threads (default: its own choice, one per physical core); ``config`` adds session
    configuration entries (e.g. ``{"session.intra_op.allow_spinning": "0"}`` on a busy machine).
    Idle threads wait without spinning when ``OMP_WAIT_POLICY=PASSIVE`` asks it of OpenMP too
    (the ``ferlab`` commands set it), so that one policy holds for every library.
    """
    ort = import_onnxruntime()
    where = None if isinstance(model, bytes) else str(model)
    if where is not None:
        path = Path(where)
        if not path.is_file():
            raise DataError(
                "ONNX model not found" if not path.exists() else "not a file", path=path
            )
        verify_weights(path)
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        config = {"session.intra_op.allow_spinning": "0", **(config or {})}
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    providers = onnx_providers(ort, device)
    try:
        session = ort.InferenceSession(
            model if isinstance(model, bytes) else where, options, providers=providers
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
        preprocess=Preprocess.from_dict(fields["preprocess"]),
        model={"name": fields["model"], "kwargs": fields.get("model_kwargs", {})},
        name=name or (Path(where).stem if where else fields["model"]),
        path=where,
        runtime="onnx",
    )
    precision = "int8" if str(meta.get("quantization", "")).startswith("int8") else "fp32"
    backend = OnnxBackend(session, precision)
    return EmotionModel(backend, meta, tta=resolve_tta(tta, meta.get("tta")))
