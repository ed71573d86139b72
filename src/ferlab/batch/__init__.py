"""Batch inference over many photos and videos, in this process or on Ray Data.

>>> from ferlab import batch
>>> df = batch.predict(["photos/", "interview.mp4"], engine="ray", out="faces/")  # doctest: +SKIP
>>> ds = batch.dataset(["photos/"])            # a lazy ray.data.Dataset   # doctest: +SKIP
>>> df = batch.read("faces/")                  # a written output, as pandas  # doctest: +SKIP

* :func:`predict` runs a job to the end and returns its rows as a pandas DataFrame (the table of
  ``ferlab predict --csv``): for jobs whose rows fit in memory, which is most (a million faces
  are a few hundred MB). With ``out`` it also writes them as a Parquet dataset and resumes:
  inputs already in ``out`` are skipped.
* :func:`dataset` returns the job as a lazy Ray Dataset for jobs whose rows do not fit, or to
  chain more Ray Data steps; consuming it runs the job (and writes ``out``, if given).
* :func:`read` reads a written output back, in reading order.

Both engines run the same code on the same chunks of inputs (:mod:`~ferlab.batch.jobs`): the
``local`` engine in this process, one chunk after the other; the ``ray`` engine on an actor pool
(:mod:`~ferlab.batch.ray_engine`). See docs/scale.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferlab.batch.jobs import ID_STRIDE, Settings, Unit, chunked, plan, run_chunk, sort_rows
from ferlab.batch.store import Store
from ferlab.errors import FerlabError, UnknownNameError

if TYPE_CHECKING:
    import pandas as pd

    from ferlab.recognize import Recognizer

__all__ = [
    "ENGINES",
    "ID_STRIDE",
    "Settings",
    "Unit",
    "chunked",
    "dataset",
    "plan",
    "predict",
    "read",
    "run_chunk",
    "sort_rows",
]

#: ``local``: this process; ``ray``: Ray Data actors, on this machine or a cluster.
ENGINES = ("local", "ray")


class _Job:
    """A job prepared in the driver: settings checked (and the model loaded once, which names
    a bad option before any worker starts), inputs listed, finished ones skipped."""

    def __init__(
        self,
        paths: Iterable[str | Path],
        out: str | Path | None,
        chunk_frames: int,
        images_per_chunk: int,
        options: dict[str, Any],
    ) -> None:
        if isinstance(paths, str | Path):
            paths = [paths]
        if options.get("runtime", "auto") == "auto":
            options = {**options, "runtime": "onnx"}  # workers run ONNX Runtime
        unknown = set(options) - set(Settings.__dataclass_fields__) - {"labels"}
        if unknown:
            raise FerlabError(f"unknown option(s) {', '.join(sorted(unknown))}")
        settings = Settings(**options)
        self.recognizer: Recognizer = settings.recognizer()
        self.settings = replace(settings, labels=self.recognizer.labels)
        self.units = plan(paths, chunk_frames=chunk_frames, every_n=settings.every_n)
        if not self.units:
            raise FerlabError("no inputs given")
        self.store = None
        done: set[str] = set()
        if out is not None:
            record = {**self.settings.record(), "chunk_frames": chunk_frames}
            self.store = Store(out, record).open()
            done = self.store.done()
        todo = [u for u in self.units if u.key not in done]
        self.chunks = chunked(todo, images_per_chunk)
        self.skipped = len(self.units) - len(todo)

    def rows(self, done: Iterable[pd.DataFrame]) -> pd.DataFrame:
        """All the job's rows in reading order, from the chunks run now (and ``out``)."""
        import pandas as pd

        frames = list(done)
        if self.store is not None:
            rows = self.store.read()
        elif frames:
            rows = pd.concat(frames, ignore_index=True)
        else:
            rows = pd.DataFrame(columns=["source", "frame", "unit", "row"])
        return sort_rows(rows, self.units)


def predict(
    paths: Iterable[str | Path] | str | Path,
    *,
    engine: str = "local",
    out: str | Path | None = None,
    address: str | None = None,
    workers: int | None = None,
    chunk_frames: int = 3000,
    images_per_chunk: int = 32,
    progress: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """Recognise every face in ``paths`` (images, folders, videos); one row per face per frame.

    Args:
        paths: image files, folders of images (recursively) and videos.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data; ``pip install
            "ferlab[ray]"``).
        out: a folder for the rows as a Parquet dataset; rerunning into it resumes.
        address: the Ray cluster to join (default: ``RAY_ADDRESS``, else a local Ray).
        workers: actors, one CPU each (default: every CPU of the local Ray or the cluster).
        chunk_frames: videos are split into ranges of this many frames across workers.
        images_per_chunk: images per worker call (their faces are classified together).
        progress: draw a rich progress bar on stderr.
        options: the recognizer's settings, :class:`Settings`' fields: ``model``,
            ``detector``, ``runtime`` (``auto`` means ONNX Runtime here), ``tta``, ``min_face``,
            ``detect_size``, ``faces``, ``smoothing``, ``every_n``, ``threads``, ``device``.

    Returns:
        The rows of ``ferlab predict --csv``: ``source, frame, time, face_id, x, y, w, h,
        score, roll``, one probability per emotion, ``label``, ``error``; an image or frame
        without a face has one row with empty face columns.
    """
    if engine not in ENGINES:
        raise UnknownNameError("engine", engine, list(ENGINES))
    if engine == "ray":
        from ferlab.batch.ray_engine import import_ray

        import_ray()  # the missing extra is named before anything is loaded
    job = _Job(paths, out, chunk_frames, images_per_chunk, options)
    if engine == "local":
        chunks = (run_chunk(job.recognizer, chunk) for chunk in job.chunks)
        done = _written(chunks, job.store)
    else:
        from ferlab.batch.ray_engine import run

        done = run(job.chunks, job.settings, job.store, address=address, workers=workers)
    return job.rows(_counted(done, len(job.units), job.skipped, progress))


def dataset(
    paths: Iterable[str | Path] | str | Path,
    *,
    out: str | Path | None = None,
    address: str | None = None,
    workers: int | None = None,
    chunk_frames: int = 3000,
    images_per_chunk: int = 32,
    **options: Any,
) -> Any:
    """The job of :func:`predict` (engine ``ray``, same arguments) as a lazy
    ``ray.data.Dataset`` of rows in no particular order, with the bookkeeping columns ``unit``
    and ``row``. Consuming it runs the job; with ``out`` each chunk's file is written as it
    completes (inputs already there are left out)."""
    from ferlab.batch.ray_engine import chunk_dataset, connect, import_ray

    import_ray()
    job = _Job(paths, out, chunk_frames, images_per_chunk, options)
    size = connect(address, workers)
    return chunk_dataset(job.chunks, job.settings, job.store, min(size, max(len(job.chunks), 1)))


def read(out: str | Path) -> pd.DataFrame:
    """The rows written into ``out`` by :func:`predict` or ``ferlab predict --out``, sorted by
    source, frame and position (without the bookkeeping columns)."""
    import json

    from ferlab.errors import DataError

    record = Path(out) / "_ferlab.json"
    if not record.is_file():
        raise DataError("no ferlab output here (no _ferlab.json)", path=out)
    store = Store(out, json.loads(record.read_text(encoding="utf-8")))
    return sort_rows(store.read())


def _written(chunks: Iterable[pd.DataFrame], store: Store | None) -> Iterator[pd.DataFrame]:
    for rows in chunks:
        if store is not None:
            store.write(rows)
        yield rows


def _counted(
    chunks: Iterable[pd.DataFrame], total: int, skipped: int, progress: bool
) -> Iterator[pd.DataFrame]:
    """Pass the chunks' rows through, advancing a rich bar by the units they finish."""
    from ferlab.recognize.recognizer import progress_bar

    seen: set[str] = set()
    with progress_bar("inputs", total, progress) as advance:
        advance(skipped)
        for rows in chunks:
            new = set(rows["unit"]) - seen
            seen |= new
            advance(len(new))
            yield rows
