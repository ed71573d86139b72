"""Reading FER data in every form it is distributed in.

:func:`load_dataset` detects the format of a path (challenge CSV, ``icml_face_data.csv``, Kaggle
image-folder release as folder or zip, any ImageFolder of face crops; optionally FER+ votes),
validates it, caches the decoded arrays and returns one :class:`FERData`. :func:`check_dataset`
lists every problem of a source. See ``docs/data.md`` for formats, rules and caching.
"""

from __future__ import annotations

from ferlab.data.cache import default_cache_dir
from ferlab.data.dataset import (
    FER2013_CLASSES,
    FERPLUS_CLASSES,
    FERPLUS_VOTE_COLUMNS,
    SPLITS,
    FERData,
)
from ferlab.data.ferplus import FERPLUS_MODES, ferplus_labels, ferplus_target
from ferlab.data.loader import (
    LABEL_MODES,
    CheckReport,
    Source,
    check_dataset,
    detect_source,
    load_dataset,
)

__all__ = [
    "FER2013_CLASSES",
    "FERPLUS_CLASSES",
    "FERPLUS_VOTE_COLUMNS",
    "FERPLUS_MODES",
    "LABEL_MODES",
    "SPLITS",
    "CheckReport",
    "FERData",
    "Source",
    "check_dataset",
    "default_cache_dir",
    "detect_source",
    "ferplus_labels",
    "ferplus_target",
    "load_dataset",
]
