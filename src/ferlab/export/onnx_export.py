"""Export a checkpoint, a shipped model or a registered architecture to ONNX.

Choices, measured with torch 2.13 and onnxruntime 1.32:

* **The TorchScript exporter** (``torch.onnx.export(..., dynamo=False)``): the newer
  ``torch.export``-based exporter needs the ``onnxscript`` package; the TorchScript one exports
  every registered model with no extra dependency (it is deprecated upstream but kept working).
* **Opset 17**, or **20** for models with a spatial transformer: ``F.affine_grid`` became the
  ONNX operator ``AffineGrid`` only in opset 20 (``grid_sample`` is ``GridSample`` from 16);
  staying at 17 elsewhere lets older runtimes load the other models.
* **The network only**: the graph maps prepared faces (``input``, float32 N×C×H×W, normalised
  and cropped) to ``logits``. The preparation (resize, equalisation, mean/std, crop) and the
  test-time augmentation are described in the metadata (:mod:`ferlab.inference.metadata`) and
  run in numpy by the inference core (:mod:`ferlab.inference.onnx_backend`), so a consumer can
  also feed its own crops.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.inference import metadata
from ferlab.inference.preprocess import Preprocess, resolve_tta
from ferlab.inference.shipped import SHIPPED, model_file

__all__ = [
    "DEFAULT_OPSET",
    "STN_OPSET",
    "default_opset",
    "export_onnx",
    "load_source",
    "network_to_onnx",
]

DEFAULT_OPSET = 17
STN_OPSET = 20


def require_onnx() -> None:
    """Fail with an install hint when the export's packages are missing."""
    missing = []
    for module in ("onnx", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise FerlabError(f"ONNX export needs {' and '.join(missing)}: pip install 'ferlab[train]'")


def default_opset(network: nn.Module) -> int:
    """The lowest opset that expresses every operation of ``network`` (see the module notes)."""
    from ferlab.layers.spatial_transformer import SpatialTransformer

    return (
        STN_OPSET
        if any(isinstance(m, SpatialTransformer) for m in network.modules())
        else (DEFAULT_OPSET)
    )


def load_source(source: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The network (eval mode, CPU) and metadata of what ``ferlab export`` was given.

    ``source``: a shipped model name (``default``, ``ferplus``), a checkpoint path, or a
    registered architecture, exported with its freshly initialised (untrained) weights.
    """
    from ferlab.engine.checkpoint import load_checkpoint
    from ferlab.models import create_model, list_models

    key = str(source)
    if key in SHIPPED or Path(key).exists():
        path = model_file(key)
        if path.suffix.lower() == ".onnx":
            raise DataError("is already an ONNX export", path=path)
        network, meta = load_checkpoint(path, device="cpu")
        meta["source"] = key if key in SHIPPED else path.name
        meta["weights"] = "trained"
        return network, meta
    if key in list_models():
        network = create_model(key).eval()
        meta = {
            "model": {"name": key, "kwargs": {}},
            "classes": _default_classes(network.num_classes),
            "input_size": tuple(network.input_size),
            "preprocess": Preprocess(crop=network.input_size[-1]),
            "label_mode": "fer2013",
            "source": key,
            "weights": "untrained",
        }
        return network, meta
    if Path(key).suffix or os.sep in key or "/" in key:
        raise DataError("checkpoint not found", path=key)
    raise UnknownNameError("model", key, [*list_models(), *SHIPPED, "<checkpoint.pt>"])


def _default_classes(num_classes: int) -> list[str]:
    from ferlab.data.dataset import FER2013_CLASSES, FERPLUS_CLASSES

    for classes in (FER2013_CLASSES, FERPLUS_CLASSES):
        if len(classes) == num_classes:
            return list(classes)
    return [f"class_{i}" for i in range(num_classes)]


def onnx_metadata(meta: dict[str, Any], *, tta: str, quantization: str) -> dict[str, Any]:
    """The metadata fields of :mod:`ferlab.export.metadata` for a checkpoint's ``meta``."""
    from ferlab import __version__

    return {
        "labels": [str(c) for c in meta["classes"]],
        "input_size": [int(v) for v in meta["input_size"]],
        "preprocess": meta["preprocess"].to_dict(),
        "tta": tta,
        "model": meta["model"]["name"],
        "model_kwargs": meta["model"].get("kwargs", {}),
        "source": meta.get("source", meta["model"]["name"]),
        "weights": meta.get("weights", "trained"),
        "quantization": quantization,
        "label_mode": meta.get("label_mode", "fer2013"),
        "metrics": meta.get("metrics") or {},
        "ferlab_version": __version__,
    }


def set_metadata(model: Any, fields: dict[str, Any]) -> None:
    """Replace the ``metadata_props`` of an ``onnx.ModelProto`` with ferlab's fields."""
    del model.metadata_props[:]
    for key, value in metadata.encode(fields).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "ferlab"
    model.doc_string = (
        f"ferlab emotion model '{fields['model']}' ({fields['quantization']}): input float32 "
        "N×C×H×W prepared as the 'preprocess' metadata says; output logits N×len(labels)."
    )


def network_to_onnx(
    network: nn.Module,
    meta: dict[str, Any],
    *,
    dynamic_batch: bool = True,
    opset: int | None = None,
    tta: str | None = None,
) -> Any:
    """The ONNX graph (``onnx.ModelProto``) of a network, with ferlab's metadata.

    Without ``dynamic_batch`` the input takes exactly one face view per run.
    """
    import onnx

    chosen_tta = resolve_tta(tta, meta.get("tta"))
    opset = opset or default_opset(network)
    name = meta["model"]["name"]
    network = network.eval().cpu()
    example = torch.zeros(2 if dynamic_batch else 1, *meta["input_size"])
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The TorchScript exporter announces its deprecation on every call, and notes
            # optimisations it skips; neither concerns the user.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)
            torch.onnx.export(
                network,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes=axes,
            )
    except Exception as exc:  # the exporter raises many types (unsupported operators, tracing)
        lines = [ln for ln in str(exc).splitlines() if ln.strip() and "graph(" not in ln]
        reason = lines[0] if lines else type(exc).__name__
        raise FerlabError(f"model '{name}' cannot be exported to ONNX: {reason[:300]}") from None
    model = onnx.load_model_from_string(buffer.getvalue())
    set_metadata(model, onnx_metadata(meta, tta=chosen_tta, quantization="none"))
    return model


def _fix_batch(model: Any, size: int) -> None:
    """Pin the batch axis of the graph's input and output to ``size``."""
    for value in (*model.graph.input, *model.graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        dim.Clear()
        dim.dim_value = size


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot be written, before any slow work."""
    if out.suffix.lower() != ".onnx":
        raise DataError(
            "the output must end in .onnx (ferlab.load_model recognises exports by it)", path=out
        )
    if out.is_dir():
        raise DataError("is a folder; give the .onnx file to write", path=out)
    folder = out.parent
    if not folder.is_dir():
        raise DataError(
            "output folder does not exist" if not folder.exists() else "is not a folder",
            path=folder,
        )
    if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise DataError("cannot write here (permission denied)", path=out)


def _save(model: Any, out: Path) -> None:
    """Write next to ``out`` and rename over it, so a failure never leaves half a file."""
    import onnx

    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        onnx.save_model(model, tmp)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write ({exc.strerror or exc})", path=out) from None


def _torch_probs(network: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(network(torch.from_numpy(x)).float(), 1).numpy()


def export_onnx(
    source: str | Path,
    out: str | Path,
    *,
    dynamic_batch: bool = False,
    int8: str | None = None,
    calibration: Any = None,
    calibration_size: int = 1024,
    opset: int | None = None,
    tta: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Export ``source`` (see :func:`load_source`) to the ONNX file ``out``; a report.

    Args:
        dynamic_batch: accept any number of inputs per run (otherwise exactly one).
        int8: ``"static"`` or ``"dynamic"`` quantisation (see :mod:`ferlab.export.quantize`),
            or ``None`` for float32.
        calibration: faces for static quantisation: a dataset path or ``FERData`` (its
            Training split is sampled), or a uint8 array N×H×W of faces.
        calibration_size: faces drawn from the Training split for calibration.
        opset: ONNX opset (default: :func:`default_opset`).
        tta: test-time augmentation recorded as the file's default (default: the model's).

    The report holds the output path and size, opset, quantisation, labels, and ``check``: the
    exported model run by ONNX Runtime against the PyTorch model on the same faces
    (``max_abs_diff`` of the probabilities, ``top1_agreement``).
    """
    require_onnx()
    from ferlab.export.quantize import MODES, calibration_faces, quantize_model
    from ferlab.inference.onnx_backend import load_onnx, softmax

    if int8 is not None and int8 not in MODES:
        raise UnknownNameError("quantisation", int8, list(MODES))
    if int8 == "static" and calibration is None:
        raise FerlabError(
            "static int8 quantisation needs calibration faces: give FER2013 data to draw "
            "Training faces from (--calibration fer2013.csv.gz), or quantise dynamically "
            "(--int8-mode dynamic)"
        )
    out = Path(out)
    _check_out(out)
    network, meta = load_source(source)
    # Quantisation calibrates in batches, so it starts from a dynamic-batch graph.
    model = network_to_onnx(
        network, meta, dynamic_batch=dynamic_batch or bool(int8), opset=opset, tta=tta
    )
    preprocess: Preprocess = meta["preprocess"]
    held_out = None
    if calibration is not None:
        pool = (
            np.asarray(calibration, dtype=np.uint8)
            if isinstance(calibration, np.ndarray)
            else calibration_faces(calibration, calibration_size + 256)
        )
        held_out = pool[calibration_size:]
        calibration = pool[:calibration_size]
    if int8:
        inputs = preprocess(calibration)[0] if calibration is not None else None
        fields = metadata.decode({p.key: p.value for p in model.metadata_props})
        model = quantize_model(model, int8, inputs, progress=progress)
        fields["quantization"] = f"int8-{int8}"
        set_metadata(model, fields)
        if not dynamic_batch:
            _fix_batch(model, 1)
    # Check the export on faces the calibration did not see (or seeded random pixels).
    if held_out is not None and len(held_out):
        faces, kind = held_out, "FER2013 Training faces not used for calibration"
    else:
        size = preprocess.image_size
        faces = np.random.default_rng(0).integers(0, 256, (16, size, size), dtype=np.uint8)
        kind = "random pixels"
    x = preprocess(faces)[0]
    exported = load_onnx(model.SerializeToString(), device="cpu", tta="none")
    got, want = softmax(exported.backend.logits(x)), _torch_probs(network, x)
    _save(model, out)
    fields = metadata.decode({p.key: p.value for p in model.metadata_props})
    return {
        "out": str(out),
        "bytes": out.stat().st_size,
        "source": fields["source"],
        "model": fields["model"],
        "weights": fields["weights"],
        "opset": next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
        "dynamic_batch": dynamic_batch,
        "quantization": fields["quantization"],
        "labels": fields["labels"],
        "input_size": fields["input_size"],
        "tta": fields["tta"],
        "check": {
            "faces": int(len(faces)),
            "of": kind,
            "max_abs_diff": float(np.abs(got - want).max()),
            "top1_agreement": float((got.argmax(1) == want.argmax(1)).mean()),
        },
    }
