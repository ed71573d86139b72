"""Emotion names: one spelling for each emotion, and the other spellings accepted for it.

Every ferlab model, dataset and output names the emotions as the shipped ``default`` does:
``angry, disgust, fear, happy, sad, surprise, neutral``, plus FER+'s ``contempt``
(:data:`EMOTIONS`). FER+'s vote file spells three of them as nouns (``anger``, ``happiness``,
``sadness``: :data:`ALIASES`). Names read from files (checkpoints, ONNX exports, class folders)
written that way are renamed when they are read (:func:`canonical_label`, exact spellings
only, so that every other label, a custom ``Happy`` folder included, stays as it was written).
Where a user types an emotion (``--color``, ``--target``, ``score(y=...)``) the FER+ spelling
is accepted too, and case and surrounding spaces do not matter (:func:`typed_label`).

This module imports nothing else of ferlab but its errors, so every layer can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from ferlab.errors import DataError, UnknownNameError

__all__ = [
    "ALIASES",
    "EMOTIONS",
    "canonical_label",
    "canonical_labels",
    "canonical_metrics",
    "label_index",
    "typed_label",
]

#: The emotion names ferlab uses: FER2013's seven in its label order, then FER+'s contempt.
EMOTIONS: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
    "contempt",
)
#: Other spellings accepted for an emotion (FER+'s vote-file column names) → ferlab's name.
ALIASES: dict[str, str] = {"anger": "angry", "happiness": "happy", "sadness": "sad"}


def canonical_label(name: str) -> str:
    """ferlab's name for an emotion a file names in FER+'s spelling (``"happiness"`` →
    ``"happy"``); every other name unchanged."""
    return ALIASES.get(str(name), str(name))


def typed_label(name: str) -> str:
    """ferlab's name for an emotion as a user may type it (``" Happiness"`` → ``"happy"``);
    a name that is no emotion comes back stripped of surrounding spaces."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    return key if key in EMOTIONS else str(name).strip()


def canonical_labels(names: Iterable[str], *, path: str | Path | None = None) -> tuple[str, ...]:
    """A model's or dataset's label list with every emotion under ferlab's name.

    Raises:
        DataError: two labels name the same emotion (``anger`` and ``angry``), which would
            make the columns ambiguous; ``path`` names the file they came from.
    """
    given = [str(n) for n in names]
    out = tuple(canonical_label(n) for n in given)
    seen: set[str] = set()
    for original, name in zip(given, out, strict=True):
        if name in seen:
            raise DataError(
                f"the labels name the emotion '{name}' twice (as '{original}' too)",
                path=path,
                field="labels",
            )
        seen.add(name)
    return out


def label_index(name: str, labels: Sequence[str], *, what: str = "emotion") -> int:
    """Position of a typed emotion in ``labels``, any accepted spelling on either side.

    Raises:
        UnknownNameError: no label matches; the message lists the labels.
    """
    wanted = typed_label(name)
    for i, label in enumerate(labels):
        if typed_label(label) == wanted:
            return i
    raise UnknownNameError(what, str(name), [str(label) for label in labels])


def canonical_metrics(metrics: object) -> object:
    """Recorded metrics with every ``per_class`` mapping keyed by ferlab's names (a copy)."""
    if isinstance(metrics, dict):
        return {
            key: (
                {canonical_label(k): v for k, v in value.items()}
                if key == "per_class" and isinstance(value, dict)
                else canonical_metrics(value)
            )
            for key, value in metrics.items()
        }
    if isinstance(metrics, list):
        return [canonical_metrics(v) for v in metrics]
    return metrics
