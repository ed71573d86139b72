"""The shift suite: FER2013 faces under the shifts that real inputs bring, one column each.

A model is scored on the same faces as they come (``clean``) and under one shift at a time:

=========== ===============================================================================
column      what happens to every face (48×48, FER2013 framing)
=========== ===============================================================================
tight       re-cropped at 0.8× the framing: the face fills the image, like lab datasets' crops
loose       re-cropped at 1.3× the framing (the missing surround is mirrored in)
frame       magnified 3× and pasted at a random place into a 320×240 frame with a textured
            background, then found, aligned and cropped by ``ferlab.Recognizer``'s own
            detector; the largest face found is classified, a face not found counts as wrong
rotate      rolled in-plane by 20° (left or right, half each)
blur        Gaussian blur, σ 1.5 pixels
jpeg        JPEG at quality 20
dark        low light: brightness × 0.3
contrast    low contrast: deviations from the mean × 0.4
gamma       gamma 2.2 (under-exposed) or 0.45 (over-exposed), half each
noise       Gaussian sensor noise, σ 15 grey levels
hand        a hand-like blob over mouth and chin, from the left or the right
glasses     dark glasses (lenses 90 % opaque)
=========== ===============================================================================

The operations are those of :mod:`ferlab.engine.shift_ops`, which also serve training
(:mod:`ferlab.engine.shift_augment`), at fixed settings at the severe end of the training ranges.
Everything random (which way a face rolls, where it is pasted, the noise) is drawn from
generators seeded by ``(seed, column)``, so a column is the same for every model and every run;
models are compared on identical images. The suite's ``mean`` is the mean accuracy over the
shifted columns (``clean`` excluded).

Models are used through their public interface only: any object with ``labels`` and
``predict_proba(uint8 N×48×48)`` (``ferlab.load_model``'s models, ONNX wrappers, test doubles),
and the ``frame`` column runs the public :class:`ferlab.Recognizer` with that object.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ferlab.engine import shift_ops as ops
from ferlab.errors import DataError
from ferlab.labels import typed_label

__all__ = [
    "SHIFTS",
    "SHIFT_NAMES",
    "Shift",
    "iter_framed",
    "plot_examples",
    "plot_results",
    "run_shift_suite",
    "shifted",
]

_FRAME = (240, 320)  # height, width of the frames faces are pasted into
_MAGNIFY = 3  # a 48-pixel face becomes 144 pixels: far above the detector's smallest face


@dataclass(frozen=True)
class Shift:
    """One column: a name, a short description and the operation (``None`` for ``frame``)."""

    name: str
    description: str
    apply: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None


def _signs(n: int, gen: torch.Generator) -> torch.Tensor:
    return torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)


SHIFTS: tuple[Shift, ...] = (
    Shift("clean", "as distributed", lambda x, g: x.clone()),
    Shift("tight", "crop 0.8x framing", lambda x, g: ops.reframe(x, 0.8)),
    Shift("loose", "crop 1.3x framing", lambda x, g: ops.reframe(x, 1.3)),
    Shift("frame", "in a 320x240 frame, found by the detector", None),
    Shift("rotate", "rolled 20 degrees", lambda x, g: ops.reframe(x, 1.0, 20 * _signs(len(x), g))),
    Shift("blur", "Gaussian blur sigma 1.5 px", lambda x, g: ops.blur(x, 1.5)),
    Shift("jpeg", "JPEG quality 20", lambda x, g: ops.jpeg(x, 20)),
    Shift("dark", "brightness x0.3", lambda x, g: ops.brightness(x, 0.3)),
    Shift("contrast", "contrast x0.4", lambda x, g: ops.contrast(x, 0.4)),
    Shift(
        "gamma",
        "gamma 2.2 or 0.45",
        lambda x, g: ops.gamma(x, torch.where(_signs(len(x), g) > 0, 2.2, 0.45)),
    ),
    Shift("noise", "Gaussian noise sigma 15", lambda x, g: ops.noise(x, 15.0, g)),
    Shift(
        "hand",
        "hand over mouth and chin",
        lambda x, g: ops.occlude_hand(x, 0.0, 170.0, _signs(len(x), g)),
    ),
    Shift("glasses", "dark glasses", lambda x, g: ops.occlude_glasses(x, 0.0, 0.9)),
)
SHIFT_NAMES: tuple[str, ...] = tuple(s.name for s in SHIFTS)


def _generator(seed: int, column: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + column)


def _column(name: str) -> tuple[int, Shift]:
    for i, s in enumerate(SHIFTS):
        if s.name == name:
            return i, s
    raise DataError(f"unknown shift {name!r}; the suite has: {', '.join(SHIFT_NAMES)}")


def shifted(images: torch.Tensor, name: str, seed: int = 0) -> torch.Tensor:
    """``images`` (uint8 N×48×48) under one shift of the suite (not ``frame``: see
    :func:`iter_framed`), exactly as the suite shows them to a model."""
    i, shift = _column(name)
    if shift.apply is None:
        raise DataError("the frame column is built by iter_framed(), not shifted()")
    return shift.apply(images, _generator(seed, i))


def iter_framed(images: torch.Tensor, seed: int = 0) -> Iterator[np.ndarray]:
    """Every face magnified and pasted into its own BGR frame (the ``frame`` column's input).

    The background is smooth, dim noise with a gradient, different for every frame; the face's
    position is uniform over the frame. One frame per face, in order.
    """
    i, _ = _column("frame")
    gen = _generator(seed, i)
    h, w = _FRAME
    side = images.shape[-1] * _MAGNIFY
    for face in images:
        coarse = torch.rand(1, 1, 6, 8, generator=gen) * 120 + 40
        bg = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=False)[0, 0]
        bg = bg + torch.randn(h, w, generator=gen) * 6
        big = F.interpolate(face[None, None].float(), scale_factor=_MAGNIFY, mode="bicubic")
        y = int(torch.randint(0, h - side + 1, (1,), generator=gen))
        x = int(torch.randint(0, w - side + 1, (1,), generator=gen))
        bg[y : y + side, x : x + side] = big[0, 0]
        gray = bg.round().clamp(0, 255).to(torch.uint8).numpy()
        yield np.repeat(gray[:, :, None], 3, axis=2)


def _label_map(model_labels: Sequence[str], data_classes: Sequence[str]) -> np.ndarray:
    """Column of the model's output for each data class (by name; FER+'s spellings accepted)."""
    names = [typed_label(c) for c in model_labels]
    missing = [c for c in data_classes if typed_label(c) not in names]
    if missing:
        raise DataError(
            f"the model's labels {list(model_labels)} lack the data's classes {missing}; the "
            "suite scores a model on the data's classes"
        )
    return np.array([names.index(typed_label(c)) for c in data_classes])


def _frame_predictions(
    model: Any, images: torch.Tensor, seed: int, cols: np.ndarray, advance: Callable
) -> tuple[np.ndarray, int]:
    """Predicted data-class ids (-1 where no face was found) and the number of faces found."""
    from ferlab import Recognizer

    recognizer = Recognizer(model=model)
    pred = np.full(len(images), -1, dtype=np.int64)
    for j, frame in enumerate(iter_framed(images, seed)):
        faces = list(recognizer(frame))
        if faces:
            face = max(faces, key=lambda f: f.box[2] * f.box[3])
            scores = np.array([face.scores[model.labels[c]] for c in cols])
            pred[j] = int(scores.argmax())
        advance(1)
    return pred, int((pred >= 0).sum())


def run_shift_suite(
    model: Any,
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: Sequence[str],
    *,
    seed: int = 0,
    shifts: Sequence[str] | None = None,
    progress: bool = False,
    per_face: bool = False,
) -> dict[str, Any]:
    """Accuracy of ``model`` on ``images`` under every shift of the suite.

    Args:
        model: an object with ``labels`` and ``predict_proba(uint8 N×48×48) → N×C``.
        images: uint8 N×48×48 faces; ``labels``: their class ids into ``classes``.
        seed: the suite's seed (the same seed gives the same shifted images).
        shifts: column names to run (default: all of :data:`SHIFTS`).
        progress: show a progress bar on stderr.
        per_face: also keep each column's ``correct``, a bool array N (for paired comparisons
            of models or test-time augmentations on the same faces; not JSON).

    Returns:
        ``{"shifts": {name: {"accuracy", "per_class", "n"[, "found"]}}, "mean": mean accuracy
        over the shifted columns run, "clean": clean accuracy (when run), "n", "seed"}``.
    """
    from rich.progress import Progress

    names = list(shifts) if shifts is not None else list(SHIFT_NAMES)
    for name in names:
        _column(name)
    if images.dim() != 3 or images.dtype != torch.uint8:
        raise DataError(
            f"the suite needs uint8 N×H×W faces, got {images.dtype} {tuple(images.shape)}"
        )
    cols = _label_map(model.labels, classes)
    y = labels.numpy()
    out: dict[str, Any] = {"shifts": {}, "n": len(y), "seed": seed}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("shift suite", total=len(names) * len(y))
        for name in names:
            bar.update(task, description=f"shift suite: {name}")
            if name == "frame":
                pred, found = _frame_predictions(
                    model, images, seed, cols, lambda k: bar.advance(task, k)
                )
            else:
                x = shifted(images, name, seed)
                probs = np.asarray(model.predict_proba(x.numpy()))
                pred, found = probs[:, cols].argmax(1), None
                bar.advance(task, len(y))
            correct = pred == y
            per_class = {
                c: float(correct[y == k].mean()) if (y == k).any() else None
                for k, c in enumerate(classes)
            }
            row = {"accuracy": float(correct.mean()), "per_class": per_class, "n": len(y)}
            if found is not None:
                row["found"] = found
            if per_face:
                row["correct"] = correct
            out["shifts"][name] = row
    accs = [r["accuracy"] for n, r in out["shifts"].items() if n != "clean"]
    out["mean"] = float(np.mean(accs)) if accs else None
    out["clean"] = out["shifts"].get("clean", {}).get("accuracy")
    return out


def _save(plt: Any, fig: Any, path: str | Path, dpi: int = 90) -> Path:
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_examples(images: torch.Tensor, path: str | Path, *, seed: int = 0) -> Path:
    """One row per shift (the ``frame`` row shows the whole frame), one column per face."""
    from ferlab.plots import pyplot

    plt = pyplot()

    k = len(images)
    fig, axes = plt.subplots(len(SHIFTS), k, figsize=(1.1 * k + 1.4, 1.1 * len(SHIFTS)))
    for r, s in enumerate(SHIFTS):
        if s.apply is None:
            views = list(iter_framed(images, seed))
        else:
            views = shifted(images, s.name, seed).numpy()
        for c in range(k):
            ax = axes[r, c]
            ax.imshow(views[c], cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(s.name, rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("The shift suite: one row per shift (seeded; the same for every model)")
    path = _save(plt, fig, path, dpi=64)
    from PIL import Image

    # Grey faces on white: a one-channel PNG is a third of the size of matplotlib's RGBA.
    Image.open(path).convert("L").save(path, optimize=True)
    return path


def plot_results(results: dict[str, dict[str, Any]], path: str | Path, title: str = "") -> Path:
    """A bar chart of accuracy per shift, one bar per model (``results``: name → suite result)."""
    from ferlab.plots import pyplot

    plt = pyplot()

    models = list(results)
    columns = [c for c in SHIFT_NAMES if any(c in r["shifts"] for r in results.values())]
    columns.append("mean")
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.3 * len(columns) * (len(models) + 1)), 4.2))
    x = np.arange(len(columns))
    for i, m in enumerate(models):
        r = results[m]
        vals = [
            r["mean"] if c == "mean" else r["shifts"].get(c, {}).get("accuracy", np.nan)
            for c in columns
        ]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, [100 * v for v in vals], width, label=m)
    ax.set_xticks(x, columns, rotation=30)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend()
    ax.set_title(title or "Shift suite: accuracy per shift")
    return _save(plt, fig, path)
