"""What a ferlab ONNX file says about itself, as ONNX ``metadata_props`` (string key/values).

Any ONNX consumer can read these (``onnx.load(f).metadata_props``, or
``InferenceSession.get_modelmeta().custom_metadata_map`` in ONNX Runtime), so an application in
another language knows the label order and how to prepare a face without ferlab:

==================  =====================================================================
key                 value
==================  =====================================================================
``ferlab_format``   ``ferlab-onnx``; ``ferlab_format_version``: ``1``
``labels``          JSON list of class names, in the order of the output's columns
``input_size``      JSON ``[C, H, W]`` of the network input (``input``: float32 N×C×H×W)
``preprocess``      JSON ``{image_size, crop, hist_eq, mean, std}``: resize the grayscale face
                    to ``image_size``², histogram-equalise if ``hist_eq``, scale to [0, 1],
                    subtract ``mean`` and divide by ``std`` (numbers, or ``image_size``² maps),
                    then centre-crop ``crop``²
``tta``             test-time augmentation ferlab applies by default (``none``, ``flip``,
                    ``ten_crop``): average the softmax over those views
``model``           registry name; ``model_kwargs``: JSON constructor arguments
``source``          the checkpoint file or model name it was exported from
``weights``         ``trained``, or ``untrained`` for a registered model exported as built
``quantization``    ``none``, ``int8-static`` or ``int8-dynamic``
``label_mode``      how the labels were made (``fer2013``, ``ferplus-majority``, ...)
``metrics``         JSON of the checkpoint's recorded evaluation metrics (may be ``{}``)
``ferlab_version``  version of ferlab that wrote the file
==================  =====================================================================

The output ``logits`` holds unnormalised scores N×len(labels); apply a softmax.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["FORMAT", "FORMAT_VERSION", "QUANTIZATIONS", "decode", "encode"]

FORMAT = "ferlab-onnx"
FORMAT_VERSION = 1
QUANTIZATIONS = ("none", "int8-static", "int8-dynamic")

#: Keys whose values are JSON; the others are plain strings.
_JSON_KEYS = ("labels", "input_size", "preprocess", "model_kwargs", "metrics")
_REQUIRED = ("labels", "input_size", "preprocess", "model", "tta")


def encode(meta: dict[str, Any]) -> dict[str, str]:
    """Metadata fields (Python values) → the string key/values stored in the ONNX file."""
    props = {"ferlab_format": FORMAT, "ferlab_format_version": str(FORMAT_VERSION)}
    for key, value in meta.items():
        props[key] = json.dumps(value) if key in _JSON_KEYS else str(value)
    return props


def decode(props: dict[str, str], *, path: str | None = None) -> dict[str, Any]:
    """The string key/values of an ONNX file → metadata fields; a clear error if not ferlab's."""
    from ferlab.errors import DataError
    from ferlab.labels import canonical_labels, canonical_metrics

    if props.get("ferlab_format") != FORMAT:
        raise DataError(
            "not a ferlab ONNX export (no ferlab metadata: labels, input size, preprocessing); "
            "export models with `ferlab export`",
            path=path,
        )
    version = props.get("ferlab_format_version", "0")
    if not version.isdigit() or int(version) > FORMAT_VERSION:
        raise DataError(
            f"ferlab ONNX format {version} is newer than this ferlab supports ({FORMAT_VERSION}); "
            "upgrade ferlab",
            path=path,
        )
    missing = [key for key in _REQUIRED if key not in props]
    if missing:
        raise DataError(f"ferlab ONNX metadata lacks {', '.join(missing)}", path=path)
    meta: dict[str, Any] = {}
    for key, value in props.items():
        if key.startswith("ferlab_format"):
            continue
        if key in _JSON_KEYS:
            try:
                meta[key] = json.loads(value)
            except json.JSONDecodeError:
                raise DataError(f"metadata '{key}' is not valid JSON", path=path) from None
        else:
            meta[key] = value
    # Exports written before the emotion names were aligned say "happiness": renamed here.
    if not isinstance(meta["labels"], list):
        raise DataError("metadata 'labels' is not a JSON list of names", path=path)
    meta["labels"] = list(canonical_labels(meta["labels"], path=path))
    if "metrics" in meta:
        meta["metrics"] = canonical_metrics(meta["metrics"])
    return meta
