"""Knowledge distillation, offline: a trained teacher's probabilities as the student's targets.

Hinton et al. ("Distilling the knowledge in a neural network", 2015) train a small network on a
large one's softened output distribution mixed with the true labels. On a CPU the cheap form is
*offline*: the teacher runs once over every training image (with its own test-time augmentation,
ten-crop for the shipped ``default``; the trainer runs it under bf16 autocast on CPUs with
native bf16, 3.3x faster for ferlab_net on one thread of the AVX-512 BF16 machine, where the
default model's accuracy moves by at most 0.06 point, docs/models.md), its probabilities are
cached, and the student trains on
them like any other soft targets: the trainer's ``crossentropy`` target scheme
(:mod:`ferlab.engine.losses`), so mixup, label smoothing and class balancing apply to them as to
the FER+ votes. What a step costs is then the student's alone. The price is that the teacher
sees the un-augmented face while the student sees an augmented view of it, the usual trade of
offline distillation.

The target of training image *i* with label *y* is

    ``(1 - weight) · onehot(y) + weight · softmax(log p_teacher(i) / temperature)``

(the teacher's probabilities softened by ``temperature``; ``1`` keeps them as they are). The
student's logits are not divided by the temperature: that is the soft-target form of the loss,
whose gradient differs from Hinton's ``T²``-scaled KL term only by a constant factor per image.

Only training images get teacher targets (the trainer passes its training split only);
validation and test images keep their labels, so model selection and the final test are not
touched by the teacher. The cache lives in the data cache folder (``teacher/`` inside
:func:`~ferlab.data.cache.default_cache_dir` or ``data.cache_dir``), never in the repository:
one ``.npz`` per teacher file, TTA, precision and set of images, named by the teacher's SHA-256,
the TTA, the precision and a digest of the images, and written whole or not at all. An absent
or unreadable entry is computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferlab.errors import DataError

__all__ = [
    "TEACHER_CACHE_VERSION",
    "TeacherProbs",
    "distill_targets",
    "teacher_probabilities",
]

#: Bump when what is cached changes, so that older entries are never used.
TEACHER_CACHE_VERSION = 1
_CHUNK = 512  # images per progress update


@dataclass(frozen=True)
class TeacherProbs:
    """A teacher's probabilities on a set of images, and where they come from."""

    probs: torch.Tensor
    """float32 N×C, rows in the order of the images given."""
    meta: dict[str, Any]
    """``teacher`` (path), ``teacher_sha256``, ``tta``, ``precision``, ``classes``, ``n``,
    ``images_sha256``,
    ``cache`` (the file), ``version``: stored in the student's checkpoints."""


def distill_targets(
    probs: torch.Tensor, labels: torch.Tensor, weight: float, temperature: float
) -> torch.Tensor:
    """Soft targets N×C: the hard labels mixed with the teacher's softened probabilities."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], not {weight!r}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, not {temperature!r}")
    logp = torch.log(probs.double().clamp(min=1e-12)) / temperature
    soft = torch.softmax(logp, dim=1)
    onehot = torch.nn.functional.one_hot(labels, probs.shape[1]).double()
    return ((1.0 - weight) * onehot + weight * soft).float()


def teacher_probabilities(
    teacher: str,
    images: torch.Tensor,
    classes: tuple[str, ...],
    *,
    tta: str | None = None,
    cache_dir: str | Path | None = None,
    precision: str = "fp32",
    expect: dict[str, Any] | None = None,
    progress: bool = False,
) -> TeacherProbs:
    """The teacher's probabilities on ``images`` (uint8 N×48×48, as read), cached.

    Args:
        teacher: a shipped model name (``default``) or a checkpoint path.
        images: the training images, not yet equalised (the teacher's own preprocessing,
            histogram equalisation included, is applied).
        classes: the student's classes; the teacher must have the same ones, in that order.
        tta: the teacher's test-time augmentation; ``None`` uses the one it ships with.
        cache_dir: the data cache folder (default :func:`~ferlab.data.cache.default_cache_dir`).
        precision: the teacher's arithmetic, ``fp32`` or ``bf16`` (autocast; the softmax stays
            in float32).
        expect: a resumed run's recorded ``meta`` (teacher digest, TTA, precision): its cached
            probabilities are used, and a different teacher file is an error rather than a
            silent change of targets.
        progress: show a progress bar (on stderr) while the teacher runs.

    Raises:
        DataError: the teacher is missing, has other classes, or is not the expected file.
    """
    from ferlab.data.cache import default_cache_dir
    from ferlab.engine.finetune import read_source

    folder = (Path(cache_dir).expanduser() if cache_dir else default_cache_dir()) / "teacher"
    images_sha = hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()
    if expect is not None:
        # A resumed run needs only the cache; the teacher file may have been replaced since.
        entry = _entry(
            folder, expect["teacher_sha256"], expect["tta"], expect["precision"], images_sha
        )
        hit = _load(entry, images_sha, len(images))
        if hit is not None:
            return hit
        tta = expect["tta"]
    path, ckpt = read_source(teacher)
    sha = _sha256(path)
    if expect is not None and sha != expect["teacher_sha256"]:
        raise DataError(
            f"the distillation teacher '{teacher}' is another file than the one this run was "
            f"started with (SHA-256 {sha[:16]}… instead of {expect['teacher_sha256'][:16]}…) "
            "and its cached probabilities are gone; restore that teacher or start a new run",
            path=path,
        )
    if tuple(ckpt["classes"]) != tuple(classes):
        raise DataError(
            f"the distillation teacher predicts {list(ckpt['classes'])}; the data's classes are "
            f"{list(classes)}",
            path=path,
        )
    tta = tta or str(ckpt.get("tta", "none"))
    entry = _entry(folder, sha, tta, precision, images_sha)
    hit = _load(entry, images_sha, len(images))
    if hit is not None:
        # The same file may sit elsewhere now (another checkout): record where it is.
        return TeacherProbs(hit.probs, {**hit.meta, "teacher": str(path.resolve())})
    probs = _run_teacher(path, images, tta, precision, progress)
    meta = {
        "version": TEACHER_CACHE_VERSION,
        "teacher": str(path.resolve()),
        "teacher_sha256": sha,
        "tta": tta,
        "precision": precision,
        "classes": list(classes),
        "n": len(images),
        "images_sha256": images_sha,
    }
    _save(entry, probs, meta)
    return TeacherProbs(torch.from_numpy(probs), {**meta, "cache": str(entry)})


def _sha256(path: Path) -> str:
    from ferlab.inference.shipped import file_sha256

    return file_sha256(path)


def _entry(folder: Path, sha: str, tta: str, precision: str, images_sha: str) -> Path:
    name = f"teacher-v{TEACHER_CACHE_VERSION}-{sha[:16]}-{tta}-{precision}-{images_sha[:16]}"
    return folder / f"{name}.npz"


def _load(entry: Path, images_sha: str, n: int) -> TeacherProbs | None:
    """The cached entry, or ``None`` when it is absent, unreadable or of other images."""
    try:
        with np.load(entry, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            probs = np.array(z["probs"], dtype=np.float32)
    except (OSError, ValueError, KeyError):
        return None
    if meta.get("images_sha256") != images_sha or probs.shape[0] != n:
        return None
    return TeacherProbs(torch.from_numpy(probs), {**meta, "cache": str(entry)})


def _save(entry: Path, probs: np.ndarray, meta: dict[str, Any]) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=".teacher-", suffix=".npz")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, probs=probs, meta=np.array(json.dumps(meta)))
        os.replace(tmp, entry)
    except OSError as exc:
        # Only speed is lost: the next run computes the probabilities again.
        import warnings

        warnings.warn(f"cannot cache the teacher's probabilities in {entry}: {exc}", stacklevel=2)


def _run_teacher(
    path: Path, images: torch.Tensor, tta: str, precision: str, progress: bool
) -> np.ndarray:
    """The teacher's probabilities (bf16 autocast or fp32 arithmetic, float32 softmax), in
    chunks so that a progress bar can follow."""
    from ferlab.data._progress import progress_bar
    from ferlab.engine.checkpoint import load_checkpoint
    from ferlab.engine.evaluate import predict_proba

    model, meta = load_checkpoint(path)
    out = []
    with progress_bar(f"teacher ({tta})", len(images), progress) as update:
        for lo in range(0, len(images), _CHUNK):
            chunk = images[lo : lo + _CHUNK]
            probs = predict_proba(
                model,
                chunk,
                meta["preprocess"],
                tta=tta,
                batch_size=256,
                channels_last=True,
                bf16=precision == "bf16",
            )
            out.append(probs)
            update(lo + len(chunk))
    return torch.cat(out).numpy().astype(np.float32)
