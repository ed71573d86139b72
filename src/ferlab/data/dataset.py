"""The in-memory dataset every reader returns.

Whatever the source (challenge CSV, image folder, zip, FER+), data comes back as one
:class:`FERData`: all images as a uint8 tensor N×48×48, hard labels, optional soft targets,
split membership and class names in a fixed order. Training keeps this whole object in memory
and indexes into it; there is no per-image file access in the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from ferlab.labels import EMOTIONS, canonical_labels

__all__ = [
    "FER2013_CLASSES",
    "FERPLUS_CLASSES",
    "FERPLUS_VOTE_COLUMNS",
    "SPLITS",
    "FERData",
]

#: FER2013 label order (emotion ids 0..6 of the challenge CSV).
FER2013_CLASSES: tuple[str, ...] = EMOTIONS[:7]
#: FER+ emotion columns as ``fer2013new.csv`` names them in its header (FER+'s spelling).
FERPLUS_VOTE_COLUMNS: tuple[str, ...] = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)
#: FER+ label order (its vote columns, without ``unknown`` and ``NF``) under ferlab's names:
#: neutral, happy, surprise, sad, angry, disgust, fear, contempt.
FERPLUS_CLASSES: tuple[str, ...] = canonical_labels(FERPLUS_VOTE_COLUMNS)
#: Split ids: 0 train (FER2013 Training), 1 val (PublicTest), 2 test (PrivateTest).
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass
class FERData:
    """A whole dataset in memory.

    Attributes:
        images: uint8 tensor N×H×W (48×48 for every built-in reader).
        labels: int64 tensor N of class ids into ``classes``.
        split: int8 tensor N of split ids into :data:`SPLITS`.
        classes: class names in label order.
        targets: optional float32 tensor N×C of soft targets (FER+ probability /
            crossentropy modes: distribution of the top-voted emotions; multi: 0/1 mask of the
            emotions with at least 30 % of the votes; see :mod:`ferlab.data.ferplus`).
        format: the detected source format (e.g. ``"fer2013-csv"``).
        source: path the data was read from.
        label_mode: how labels were derived (``"fer2013"`` or ``"ferplus-<mode>"``).
        index: int64 tensor N of row numbers (or file order) in the source, for tracing.
        skipped: what ``skip_bad`` left out, one message per problem.
        dropped: rows the FER+ label rules left out, counted by reason.
    """

    images: torch.Tensor
    labels: torch.Tensor
    split: torch.Tensor
    classes: tuple[str, ...]
    targets: torch.Tensor | None = None
    format: str = ""
    source: str = ""
    label_mode: str = "fer2013"
    index: torch.Tensor | None = None
    skipped: list[str] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, split: str) -> FERData:
        """The rows of one split (``"train"``, ``"val"`` or ``"test"``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        mask = self.split == SPLITS.index(split)
        return self.select(mask)

    def select(self, mask_or_index: torch.Tensor) -> FERData:
        """Rows picked by a boolean mask or an index tensor."""
        pick = mask_or_index
        return replace(
            self,
            images=self.images[pick],
            labels=self.labels[pick],
            split=self.split[pick],
            targets=None if self.targets is None else self.targets[pick],
            index=None if self.index is None else self.index[pick],
        )

    def counts(self) -> dict[str, dict]:
        """Per-split totals and per-class counts, in the ``data info --json`` layout."""
        out: dict[str, dict] = {}
        for sid, name in enumerate(SPLITS):
            labels = self.labels[self.split == sid]
            per = torch.bincount(labels, minlength=self.num_classes).tolist()
            out[name] = {
                "total": int(labels.numel()),
                "per_class": dict(zip(self.classes, per, strict=True)),
            }
        return out
