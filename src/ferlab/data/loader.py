"""One entry point for every form of the data: :func:`load_dataset` and :func:`check_dataset`.

The format is detected from the path (see :func:`detect_source`), the source is parsed once and
the decoded arrays are cached (:mod:`ferlab.data.cache`); FER+ labels are derived on every load
from the vote file, which takes a fraction of a second, so one cached parse of ``fer2013.csv``
serves every label mode and a changed vote file is always read afresh.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ferlab.data._problems import Problems
from ferlab.data.cache import DataCache
from ferlab.data.dataset import FERPLUS_CLASSES, FERData
from ferlab.data.fer2013_csv import CsvRows, read_fer2013_csv
from ferlab.data.ferplus import fer2013_soft_targets, ferplus_labels, read_ferplus_votes
from ferlab.data.image_folder import (
    FolderRows,
    find_image_root,
    read_image_folder,
    tree_fingerprint,
    warn_resized,
)
from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.labels import canonical_labels

__all__ = ["LABEL_MODES", "CheckReport", "Source", "check_dataset", "detect_source", "load_dataset"]

#: Values of ``labels``: the FER2013 labels, one of the FER+ modes (needs ``ferplus``), or
#: ``fer2013-ferplus``: FER2013's labels and classes with FER+ votes blended into soft targets
#: (:func:`~ferlab.data.ferplus.fer2013_soft_targets`; every row kept).
LABEL_MODES: tuple[str, ...] = (
    "fer2013",
    "ferplus-majority",
    "ferplus-probability",
    "ferplus-crossentropy",
    "ferplus-multi",
    "fer2013-ferplus",
)
_CSV_NAMES = ("fer2013.csv", "fer2013.csv.gz", "icml_face_data.csv", "icml_face_data.csv.gz")
SUPPORTED_FORMS = (
    "a FER2013 challenge CSV (fer2013.csv, fer2013.csv.gz, icml_face_data.csv); "
    "a folder holding one of those; the Kaggle image-folder release "
    "(train/<class>/*.jpg, test/<class>/*.jpg) as a folder or .zip; an ImageFolder of face crops "
    "with train/, optional val/, and test/ class folders, as a folder or .zip"
)


@dataclass(frozen=True)
class Source:
    """A detected source: ``kind`` is ``"csv"`` or ``"images"``; ``path`` the file/folder read."""

    kind: str
    path: Path


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes:
        data: the good rows (None when a fatal problem stopped the read).
        problems: every problem found, in file order, fatal one last.
        fatal: the problem that stopped the read, if any (no data could be produced).
    """

    data: FERData | None
    problems: list[DataError] = field(default_factory=list)
    fatal: DataError | None = None


def detect_source(path: str | Path) -> Source:
    """Tell which reader a path needs.

    A ``.zip`` (or zip content) is an image-folder archive; gzip content or a ``.csv``/``.gz``
    name is a challenge CSV; a folder is an image folder when it (or its only subfolder) holds
    ``train/``, or a CSV folder when it holds ``fer2013.csv[.gz]`` or ``icml_face_data.csv[.gz]``.

    Raises:
        DataError: the path does not exist or matches none of the supported forms.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise DataError("no such file or folder", path=p)
    p = p.resolve()
    if p.is_dir():
        if find_image_root(p) is not None:
            return Source("images", p)
        for name in _CSV_NAMES:
            if (p / name).is_file():
                return Source("csv", p / name)
        if (p / "test").is_dir() or (p / "val").is_dir():
            raise DataError("no train/ folder (expected train/, optional val/, and test/)", path=p)
        raise DataError(f"cannot tell the dataset format; supported: {SUPPORTED_FORMS}", path=p)
    try:
        with open(p, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise DataError(f"cannot read the file ({exc.strerror or exc})", path=p) from None
    name = p.name.lower()
    if name.endswith(".zip") or magic.startswith(b"PK\x03\x04"):
        if find_image_root(p) is None:
            raise DataError(
                "the zip holds no train/ folder (expected train/, optional val/, and test/, "
                "at the top or one folder down)",
                path=p,
            )
        return Source("images", p)
    if name.endswith((".csv", ".gz")) or magic.startswith(b"\x1f\x8b"):
        return Source("csv", p)
    raise DataError(f"cannot tell the dataset format; supported: {SUPPORTED_FORMS}", path=p)


def _check_options(labels: str, ferplus: str | Path | None, val_fraction: float, seed: int) -> None:
    if labels not in LABEL_MODES:
        raise UnknownNameError("label mode", labels, list(LABEL_MODES))
    if labels != "fer2013" and ferplus is None:
        raise FerlabError(
            f"labels '{labels}' need the FER+ vote file: pass ferplus=<fer2013new.csv> (--ferplus)"
        )
    if labels == "fer2013" and ferplus is not None:
        raise FerlabError(
            "a FER+ vote file was given with labels 'fer2013': choose a FER+ label mode "
            f"({', '.join(m for m in LABEL_MODES if m != 'fer2013')})"
        )
    # written so that NaN fails too
    if not (isinstance(val_fraction, int | float) and 0 <= val_fraction < 1):
        raise FerlabError(f"val_fraction must be at least 0 and below 1, not {val_fraction!r}")
    if seed < 0:
        raise FerlabError(f"seed must be a non-negative integer, not {seed}")


def load_dataset(
    path: str | Path,
    *,
    ferplus: str | Path | None = None,
    labels: str = "fer2013",
    cache_dir: str | Path | None = None,
    skip_bad: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
    ferplus_weight: float = 0.4,
) -> FERData:
    """Load FER data from any supported source into one :class:`FERData`.

    Args:
        path: a challenge CSV (``fer2013.csv``, ``.csv.gz``, ``icml_face_data.csv``), a folder
            holding one, the Kaggle image-folder release (folder or ``.zip``), or any ImageFolder
            of face crops with ``train/``, optional ``val/`` and ``test/``.
        ferplus: ``fer2013new.csv``, joined to a challenge CSV by row position.
        labels: one of :data:`LABEL_MODES`; the ``ferplus-*`` modes need ``ferplus``.
        cache_dir: where decoded arrays are cached (default: see
            :func:`ferlab.data.cache.default_cache_dir`).
        skip_bad: leave out bad rows/images (listed in :attr:`FERData.skipped`) instead of
            raising on the first one.
        val_fraction: share of each class moved from train to val when an image folder has no
            ``val/`` folder and no split prefixes in its file names.
        seed: seed of that split.
        progress: show progress bars (on stderr) while parsing.
        ferplus_weight: ``fer2013-ferplus`` only: the share of each soft target that comes
            from the FER+ votes (the rest is the FER2013 label).

    Raises:
        DataError: the source is missing, of no supported form, or malformed (message names the
            file, line or image and the problem).
        FerlabError: inconsistent options.
    """
    _check_options(labels, ferplus, val_fraction, seed)
    if not 0 <= ferplus_weight <= 1:
        raise FerlabError(f"ferplus_weight must be between 0 and 1, not {ferplus_weight!r}")
    source = detect_source(path)
    _require_csv_for_ferplus(source, ferplus)
    data, n_rows = _load_base(source, DataCache(cache_dir), skip_bad, val_fraction, seed, progress)
    if ferplus is None:
        return data
    problems = Problems()
    data = _apply_ferplus(
        data, n_rows, Path(ferplus).expanduser(), labels, problems, ferplus_weight
    )
    if problems and not skip_bad:
        problems.raise_first()
    data.skipped.extend(str(p) for p in problems.items)
    return data


def check_dataset(
    path: str | Path,
    *,
    ferplus: str | Path | None = None,
    labels: str = "fer2013",
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> CheckReport:
    """Validate a whole source (and FER+ file) without the cache, collecting every problem.

    Option errors are raised as in :func:`load_dataset`; everything wrong with the data is
    reported in the returned :class:`CheckReport` instead.
    """
    _check_options(labels, ferplus, val_fraction, seed)
    problems = Problems()
    report = CheckReport(data=None)
    try:
        source = detect_source(path)
        _require_csv_for_ferplus(source, ferplus)
        rows = _read(source, problems, False, val_fraction, seed, progress)
        arrays, meta = _arrays_meta(rows)
        warn_resized(source.path, meta["resized"], len(arrays["labels"]))
        data, n_rows = _from_arrays(arrays, meta, source), meta["n_rows"]
        if ferplus is not None:
            data = _apply_ferplus(data, n_rows, Path(ferplus).expanduser(), labels, problems)
        report.data = data
    except DataError as exc:
        report.fatal = exc
    report.problems = [*problems.items, *([report.fatal] if report.fatal else [])]
    return report


def _require_csv_for_ferplus(source: Source, ferplus: str | Path | None) -> None:
    if ferplus is not None and source.kind != "csv":
        raise DataError(
            "FER+ votes are joined by row position with fer2013.csv; they cannot be applied "
            "to an image folder",
            path=source.path,
        )


def _read(
    source: Source,
    problems: Problems,
    skip_bad: bool,
    val_fraction: float,
    seed: int,
    progress: bool,
) -> CsvRows | FolderRows:
    if source.kind == "csv":
        return read_fer2013_csv(source.path, problems, skip_bad=skip_bad, progress=progress)
    return read_image_folder(
        source.path,
        problems,
        skip_bad=skip_bad,
        val_fraction=val_fraction,
        seed=seed,
        progress=progress,
    )


def _fingerprint(source: Source) -> dict[str, Any]:
    try:
        if source.path.is_dir():
            return tree_fingerprint(source.path)
        st = os.stat(source.path)
    except OSError as exc:  # e.g. a file removed or made unreadable while listing
        raise DataError(f"cannot read the source ({exc})", path=source.path) from None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _load_base(
    source: Source,
    cache: DataCache,
    skip_bad: bool,
    val_fraction: float,
    seed: int,
    progress: bool,
) -> tuple[FERData, int]:
    """The source's own labels, from the cache or parsed (and then cached)."""
    identity: dict[str, Any] = {"kind": source.kind, "source": str(source.path), "skip": skip_bad}
    if source.kind == "images":  # the carved val split depends on these
        identity.update(val_fraction=val_fraction, seed=seed)
    fingerprint = _fingerprint(source)
    hit = cache.load(identity, fingerprint)
    if hit is None:
        problems = Problems()
        rows = _read(source, problems, skip_bad, val_fraction, seed, progress)
        if problems and not skip_bad:
            problems.raise_first()
        arrays, meta = _arrays_meta(rows)
        cache.save(identity, fingerprint, arrays, meta)
    else:
        arrays, meta = hit
    warn_resized(source.path, meta["resized"], len(arrays["labels"]))
    return _from_arrays(arrays, meta, source), meta["n_rows"]


def _arrays_meta(rows: CsvRows | FolderRows) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {k: getattr(rows, k) for k in ("images", "labels", "split", "index")}
    meta = {
        "format": rows.format,
        "classes": list(rows.classes),
        "n_rows": rows.n_rows,
        "resized": rows.resized,
        "skipped": rows.skipped,
    }
    return arrays, meta


def _from_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any], source: Source) -> FERData:
    return FERData(
        images=torch.from_numpy(np.ascontiguousarray(arrays["images"], dtype=np.uint8)),
        labels=torch.from_numpy(np.ascontiguousarray(arrays["labels"], dtype=np.int64)),
        split=torch.from_numpy(np.ascontiguousarray(arrays["split"], dtype=np.int8)),
        classes=canonical_labels(meta["classes"], path=source.path),
        format=meta["format"],
        source=str(source.path),
        label_mode="fer2013",
        index=torch.from_numpy(np.ascontiguousarray(arrays["index"], dtype=np.int64)),
        skipped=list(meta["skipped"]),
    )


def _apply_ferplus(
    data: FERData,
    n_rows: int,
    ferplus: Path,
    labels: str,
    problems: Problems,
    ferplus_weight: float = 0.4,
) -> FERData:
    """Replace FER2013 labels by FER+ labels of mode ``labels`` (rows joined by position)."""
    if not ferplus.is_file():
        raise DataError("no such file", path=ferplus)
    votes = read_ferplus_votes(ferplus, problems)
    if votes.n_rows != n_rows:
        raise DataError(
            f"has {votes.n_rows} data rows but {data.source} has {n_rows}; the FER+ file must "
            "be row-aligned with fer2013.csv",
            path=ferplus,
        )
    rows = data.index.numpy()
    vote_split = votes.split[rows]
    mismatch = np.flatnonzero((vote_split >= 0) & (vote_split != data.split.numpy()))
    if len(mismatch):
        first = int(rows[mismatch[0]])
        raise DataError(
            f"Usage differs from {data.source} on {len(mismatch)} rows (first here); the files "
            "are not row-aligned",
            path=ferplus,
            row=first + 2,
            field="Usage",
        )
    if labels == "fer2013-ferplus":
        soft = fer2013_soft_targets(votes.votes[rows], data.labels.numpy(), ferplus_weight)
        return replace(data, targets=torch.from_numpy(soft), label_mode=labels)
    mode = labels.removeprefix("ferplus-")
    result = ferplus_labels(votes.votes[rows], mode)
    # index_select copies the 82 MB of images several times faster than a boolean mask.
    keep = torch.from_numpy(np.flatnonzero(result.keep))
    return FERData(
        images=data.images.index_select(0, keep),
        labels=torch.from_numpy(result.labels).index_select(0, keep),
        split=data.split.index_select(0, keep),
        classes=FERPLUS_CLASSES,
        targets=None
        if mode == "majority"
        else torch.from_numpy(result.targets).index_select(0, keep),
        format=data.format,
        source=data.source,
        label_mode=labels,
        index=data.index.index_select(0, keep),
        skipped=list(data.skipped),
        dropped=result.dropped,
    )
