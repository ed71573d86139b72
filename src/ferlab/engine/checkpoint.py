"""Checkpoints: atomic writes, and rebuilding a usable model from one file.

A ferlab checkpoint is a ``torch.save`` dictionary holding everything needed to use the model
without the recipe or the code that trained it:

* ``format`` / ``format_version``: identify the file as a ferlab checkpoint;
* ``model``: registry name and the full constructor kwargs (``num_classes``, ``input_size``, ...);
* ``state_dict``: the weights to use (the EMA copy when the run kept one);
* ``classes``: label names in output order; ``label_mode``; ``input_size`` (C, H, W);
* ``preprocess``: histogram-equalisation flag, normalisation mean/std, image and crop size;
* ``metrics``, ``recipe`` (the resolved recipe as a mapping), ``ferlab_version``, ``epoch``,
  ``step``;
* ``train_state`` (``last.pt`` only): optimiser, schedule, RNG states, position in the epoch,
  elapsed time, raw weights when an EMA copy is kept, history — all that ``--resume`` needs.

Files are written to a temporary file in the same folder, flushed and fsynced, then renamed over
the old one (``os.replace`` is atomic on POSIX and Windows), so a crash or a full disk mid-write
leaves the previous checkpoint intact. Loading uses ``torch.load(weights_only=True)``: a foreign
or tampered file cannot run code. A checkpoint also carries ``tensors_sha256``, a SHA-256 of all
its tensors, checked on load: flipped bytes in the weights are an error, not a silently wrong
model (files written before the digest existed load without the check).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ferlab.errors import DataError, FerlabError
from ferlab.inference.shipped import file_sha256
from ferlab.labels import canonical_labels, canonical_metrics

__all__ = [
    "FORMAT",
    "atomic_save",
    "build_model",
    "file_sha256",
    "load_checkpoint",
    "read_checkpoint",
    "release_checkpoint",
    "remove_stale_temp_files",
    "tensors_sha256",
]

FORMAT = "ferlab-checkpoint"
FORMAT_VERSION = 1
DIGEST_KEY = "tensors_sha256"


def tensors_sha256(obj: Any) -> str:
    """SHA-256 of every tensor in a (nested) checkpoint: its place, dtype, shape and bytes."""
    digest = hashlib.sha256()

    def walk(node: Any, where: str) -> None:
        if isinstance(node, torch.Tensor):
            data = node.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
            digest.update(f"{where}|{node.dtype}|{tuple(node.shape)}|".encode())
            digest.update(data.tobytes())
        elif isinstance(node, dict):
            for key in sorted(node, key=str):  # the digest itself is a string: not hashed
                walk(node[key], f"{where}/{key}")
        elif isinstance(node, list | tuple):
            for i, item in enumerate(node):
                walk(item, f"{where}/{i}")

    walk(obj, "")
    return digest.hexdigest()


def atomic_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` to ``path`` so that readers only ever see the old or the complete new file.

    A ferlab checkpoint gets its tensors' digest (:func:`tensors_sha256`), checked on load.
    """
    path = Path(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        obj = {**obj, DIGEST_KEY: tensors_sha256(obj)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return  # directories cannot be opened on some platforms (Windows)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str | Path) -> list[Path]:
    """Delete the temporary files :func:`atomic_save` left in ``folder`` when a process writing
    them was killed (``.last.pt.<pid>.tmp``); files of a process still running are kept."""
    removed = []
    for tmp in Path(folder).glob(".*.pt.*.tmp"):
        pid = tmp.name.rsplit(".", 2)[-2]
        if pid.isdigit() and int(pid) != os.getpid() and not _process_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else, or no such check (Windows)
        return True
    return True


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ferlab checkpoint dictionary; a clear :class:`DataError` for anything else."""
    path = Path(path)
    if not path.exists():
        raise DataError("checkpoint not found", path=path)
    if path.is_dir():
        raise DataError("is a folder; give the checkpoint file (e.g. best.pt)", path=path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"not a readable checkpoint (truncated or not a PyTorch file?): {reason[:200]}",
            path=path,
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(
            "not a ferlab checkpoint (a plain state_dict or another tool's file?); "
            "train with `ferlab train` to get one",
            path=path,
        )
    if int(ckpt.get("format_version", 0)) > FORMAT_VERSION:
        raise DataError(
            f"checkpoint format {ckpt['format_version']} is newer than this ferlab supports "
            f"({FORMAT_VERSION}); upgrade ferlab",
            path=path,
        )
    if DIGEST_KEY in ckpt and tensors_sha256(ckpt) != ckpt[DIGEST_KEY]:
        raise DataError(
            "checkpoint is corrupted: its tensors do not match the SHA-256 digest written with "
            "them (damaged on disk or in transfer?); use another copy or retrain",
            path=path,
        )
    # Files written before the emotion names were aligned say "happiness": renamed on reading.
    if "classes" in ckpt:
        ckpt["classes"] = list(canonical_labels(ckpt["classes"], path=path))
    if "metrics" in ckpt:
        ckpt["metrics"] = canonical_metrics(ckpt["metrics"])
    return ckpt


def build_model(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """Create a registry model, turning an unknown name into a user-facing error."""
    from ferlab.models import create_model

    return create_model(name, **kwargs)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint from the registry, in eval mode, with its metadata.

    Returns ``(model, meta)`` where ``meta`` holds ``model`` (name and kwargs), ``classes``,
    ``label_mode``, ``input_size``, ``preprocess`` (a :class:`~ferlab.inference.Preprocess`
    that turns uint8 N×48×48 images into network input), ``metrics``, ``recipe``,
    ``ferlab_version``, ``epoch``, ``step`` and ``path``.
    """
    from ferlab.inference.preprocess import Preprocess

    ckpt = read_checkpoint(path)
    spec = ckpt["model"]
    try:
        model = build_model(spec["name"], dict(spec["kwargs"]))
    except FerlabError as exc:
        raise DataError(f"cannot rebuild the checkpoint's model: {exc}", path=path) from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise DataError(
            f"weights do not fit model '{spec['name']}' of this ferlab version: "
            f"{' '.join(first[:3])[:300]}",
            path=path,
        ) from None
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "train_state", "format")}
    meta["preprocess"] = Preprocess.from_dict(ckpt["preprocess"])
    meta["path"] = str(path)
    return model, meta


def release_checkpoint(
    src: str | Path, dst: str | Path, *, tta: str | None = None, **extra_meta: Any
) -> dict[str, Any]:
    """Write a checkpoint for use only: the weights and metadata without the training state.

    This is how a run's ``best.pt`` becomes a shipped model (``ferlab/weights/*.pt``): resume
    state (optimiser, RNG, raw weights) is dropped, and ``tta`` (the test-time augmentation
    :func:`ferlab.load_model` applies by default) and any ``extra_meta`` are recorded.
    Returns the written dictionary.
    """
    ckpt = {k: v for k, v in read_checkpoint(src).items() if k != "train_state"}
    if tta is not None:
        ckpt["tta"] = tta
    ckpt.update(extra_meta)
    atomic_save(ckpt, dst)
    return ckpt
