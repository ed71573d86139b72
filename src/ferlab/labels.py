"""Emotion names: one spelling for each emotion, and the other spellings accepted for it.

Every ferlab model, dataset and output names the emotions as the shipped ``default`` does:
``angry, disgust, fear, happy, sad, surprise, neutral``, plus FER+'s ``contempt``
(:data:`EMOTIONS`). FER+'s vote file spells three of them as nouns (``anger``, ``happiness``,
``sadness``); those stay accepted wherever a user types an emotion (``--color``, ``--target``,
``score(y=...)``) and in files written before the names were aligned, whose labels are renamed
when they are read (:data:`ALIASES`). Matching ignores case and surrounding spaces. Names that
are no emotion of ferlab's (another classifier's labels) pass through unchanged.

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

_LOOKUP = {**{e: e for e in EMOTIONS}, **ALIASES}


def canonical_label(name: str) -> str:
    """ferlab's name for an emotion (``"Happiness"`` → ``"happy"``); other names unchanged."""
    return _LOOKUP.get(str(name).strip().lower(), str(name))


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
    wanted = canonical_label(name)
    for i, label in enumerate(labels):
        if canonical_label(label) == wanted:
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
