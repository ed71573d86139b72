"""The work of a batch job, whatever runs it: inputs → units → chunks → rows.

* A **unit** is one input the job answers for exactly once: an image, or a range of frames of
  a video (:func:`plan` splits videos longer than ``chunk_frames``). Its ``key`` (absolute path,
  plus the range for videos) marks it done in a written output.
* A **chunk** is what one worker call processes: up to ``images_per_chunk`` images (their faces
  classified in one batch), or one video range (tracked frame by frame).
* :func:`run_chunk` turns a chunk into rows with the local engine's own recognizer: the same
  decoding, detection, alignment, classification and tracking as ``ferlab predict``.

The rows are those of ``Results.to_dataframe(every_frame=True)`` (``ferlab predict --csv``):
one per face per frame, and one with empty face columns for an image or frame without a face or
a source that could not be read (``error``), plus two columns of bookkeeping: ``unit`` (the
unit's key) and ``row`` (the row's position in its chunk, which keeps a frame's faces in order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferlab.errors import DataError, FerlabError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from ferlab.recognize import EmotionClassifier, Recognizer

__all__ = [
    "ID_STRIDE",
    "arrow_rows",
    "import_pyarrow",
    "row_schema",
    "Settings",
    "Unit",
    "chunked",
    "plan",
    "run_chunk",
    "sort_rows",
    "tidy",
]

#: Track ids of a video's range ``k`` start at ``k × ID_STRIDE`` (see docs/scale.md).
ID_STRIDE = 1_000_000


@dataclass(frozen=True)
class Unit:
    """One input of a job: an image, or frames ``start``–``stop`` of a video.

    ``source`` is the path as the caller gave it (the rows' ``source``), ``path`` the absolute
    one workers read; ``error`` is set when listing the input already failed.
    """

    source: str
    path: str
    video: bool = False
    start: int = 0
    stop: int | None = None
    first_id: int = 0
    error: str | None = None

    @property
    def key(self) -> str:
        if not self.video:
            return self.path
        return f"{self.path}#frames={self.start}:{'' if self.stop is None else self.stop}"


def plan(paths: Iterable[str | Path], *, chunk_frames: int = 3000, every_n: int = 1) -> list[Unit]:
    """The units of ``paths`` in reading order: images, folders (their images, recursively,
    sorted) and videos, each video cut into ranges of ``chunk_frames`` frames (rounded up to a
    multiple of ``every_n``, so that a range processes the frames a whole run would). A path that
    cannot be listed becomes a unit carrying its error; a path given twice is one unit."""
    from ferlab.recognize.io import VIDEO_EXTENSIONS, folder_images
    from ferlab.recognize.video import open_video

    if chunk_frames < 1 or every_n < 1:
        raise FerlabError(f"chunk_frames and every_n must be >= 1, got {chunk_frames}, {every_n}")
    step = -(-chunk_frames // every_n) * every_n
    units: list[Unit] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            try:
                files = folder_images(path)
            except DataError as exc:
                units.append(Unit(str(path), str(path.resolve()), error=str(exc)))
                continue
            units += [Unit(str(f), str(f.resolve())) for f in files]
        elif path.suffix.lower() in VIDEO_EXTENSIONS:
            try:
                cap, _, count = open_video(path)
                cap.release()
            except DataError as exc:
                units.append(Unit(str(path), str(path.resolve()), True, error=str(exc)))
                continue
            edges = list(range(0, count, step))[1:] if count else []
            starts, stops = [0, *edges], [*edges, None]
            units += [
                Unit(str(path), str(path.resolve()), True, a, b, k * ID_STRIDE)
                for k, (a, b) in enumerate(zip(starts, stops, strict=True))
            ]
        else:
            units.append(Unit(str(path), str(path.resolve())))
    first: dict[str, Unit] = {}
    for unit in units:
        first.setdefault(unit.key, unit)
    return list(first.values())


def chunked(units: Sequence[Unit], images_per_chunk: int = 32) -> list[list[Unit]]:
    """Units grouped into chunks: consecutive images up to ``images_per_chunk``, each video
    range alone."""
    chunks: list[list[Unit]] = []
    images: list[Unit] = []
    for unit in units:
        if unit.video:
            chunks += [images, [unit]] if images else [[unit]]
            images = []
            continue
        images.append(unit)
        if len(images) == images_per_chunk:
            chunks.append(images)
            images = []
    return chunks + [images] if images else chunks


@dataclass(frozen=True)
class Settings:
    """What a worker needs to build its recognizer (picklable; the model is loaded there).

    ``model`` is a model name or path, or a classifier object (see ``ferlab.recognize``);
    ``threads`` caps the threads of a worker's runtime and OpenCV (one worker per CPU).
    """

    model: Any = "default"
    detector: str = "haar"
    device: str = "auto"
    runtime: str = "onnx"
    tta: str | None = None
    min_face: int = 48
    detect_size: int = 640
    faces: str = "auto"
    smoothing: float = 0.5
    every_n: int = 1
    threads: int | None = 1
    labels: tuple[str, ...] = field(default=(), compare=False)

    def recognizer(self, classifier: EmotionClassifier | None = None) -> Recognizer:
        """The recognizer of these settings (loading the model unless ``classifier`` is given)."""
        from ferlab.recognize import Recognizer, load_classifier

        model = classifier or self.model
        if isinstance(model, str | Path):
            model = load_classifier(str(model), self.device, self.runtime, self.tta, self.threads)
        return Recognizer(
            detector=self.detector,
            model=model,
            tta=self.tta,
            min_face=self.min_face,
            detect_size=self.detect_size,
            faces=self.faces,
            smoothing=self.smoothing,
            every_n=self.every_n,
            threads=self.threads,
        )

    def record(self) -> dict[str, Any]:
        """The settings that decide the rows, as JSON-ready values (what a resumed output must
        have been written with)."""
        out = asdict(self)
        del out["threads"], out["device"]
        if not isinstance(self.model, str | Path):
            out["model"] = f"<{type(self.model).__name__}>"
        out["model"], out["labels"] = str(out["model"]), list(self.labels)
        return out


def run_chunk(rec: Recognizer, chunk: Sequence[Unit]) -> pd.DataFrame:
    """The rows of one chunk (see the module docstring), with the recognizer's own steps:
    each image decoded, its faces found and aligned, all the chunk's faces classified in one
    batch; a video range tracked frame by frame."""
    import cv2
    import numpy as np
    import pandas as pd

    from ferlab.recognize import FrameResult, Results
    from ferlab.recognize.io import load_image

    tables = []
    images: list[tuple[Unit, Any]] = []  # (unit, its faces found, or the error message)
    for unit in chunk:
        if unit.error is not None:
            images.append((unit, unit.error))
        elif not unit.video:
            try:
                gray = cv2.cvtColor(load_image(unit.path), cv2.COLOR_BGR2GRAY)
                images.append((unit, rec.finder.find(gray)))
            except DataError as exc:
                images.append((unit, _as_given(exc, unit)))
        else:
            tables.append(_video_rows(rec, unit))
    found = [f for _, f in images if not isinstance(f, str)]
    probs = rec.classify(np.concatenate([f.crops for f in found])) if found else None
    at = 0
    for unit, f in images:
        results = Results(rec.labels)
        if isinstance(f, str):
            results.add(FrameResult(unit.source, 0, 0.0, None, error=f))
        else:
            n = len(f.detections)
            faces = rec.describe(f, probs[at : at + n], source=unit.source) if n else []
            results.add(FrameResult(unit.source, 0, 0.0, None, faces))
            at += n
        tables.append(results.to_dataframe(every_frame=True).assign(unit=unit.key))
    # Images first above; put the chunk back in its own order (a chunk holds images or a video).
    order = {unit.key: i for i, unit in enumerate(chunk)}
    df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    df = df.iloc[np.argsort(df["unit"].map(order).to_numpy(), kind="stable")]
    return df.reset_index(drop=True).assign(row=np.arange(len(df)))


def _video_rows(rec: Recognizer, unit: Unit) -> pd.DataFrame:
    from ferlab.recognize import FrameResult, Results

    results = Results(rec.labels)
    try:
        frames = rec.iter_video(unit.path, start=unit.start, stop=unit.stop, first_id=unit.first_id)
        for fr in frames:
            fr.image = None  # rows only; frees the frame
            results.add(fr)
    except DataError as exc:
        results.add(FrameResult(unit.source, unit.start, 0.0, None, error=_as_given(exc, unit)))
    df = results.to_dataframe(every_frame=True)
    return df.assign(source=unit.source, unit=unit.key)


def _as_given(exc: DataError, unit: Unit) -> str:
    """The error's message naming the path as the caller gave it (workers read the absolute
    one)."""
    if exc.path != unit.path:
        return str(exc)
    return str(DataError(exc.problem, path=unit.source, row=exc.row, field=exc.field))


def sort_rows(df: pd.DataFrame, units: Sequence[Unit] = ()) -> pd.DataFrame:
    """Rows in reading order: by the units' order (rows of other units after them, by key),
    then frame, then position in their chunk; without the bookkeeping columns, and with the
    same column types whichever engine or file they came from."""
    import numpy as np

    rank = {unit.key: i for i, unit in enumerate(units)}
    known = df["unit"].map(rank)
    other = df["unit"].where(known.isna(), "").astype(str)
    order = np.lexsort((df["row"], df["frame"], other, known.fillna(len(rank))))
    return tidy(df.iloc[order].drop(columns=["unit", "row"]).reset_index(drop=True))


def tidy(df: pd.DataFrame) -> pd.DataFrame:
    """A results table with one column type per column, whichever engine or file it came
    from: nullable integers, floats, and text as Python strings (missing: ``None``)."""
    texts = ("source", "label", "error")
    types = {c: "Int64" for c in ("frame", "face_id", "x", "y", "w", "h")}
    types |= {c: "float64" for c in df.columns if c not in types and c not in texts}
    df = df.astype(types)
    for c in texts:
        df[c] = df[c].astype(object).where(df[c].notna(), None)
    return df


def import_pyarrow() -> Any:
    """``pyarrow`` (with Parquet), or a clear error saying how to install it."""
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 (the submodule the output folder uses)
    except ImportError:
        raise FerlabError(
            'Parquet output needs pyarrow, which this install lacks: pip install "ferlab[ray]"'
        ) from None
    return pyarrow


def row_schema(labels: Sequence[str]) -> pa.Schema:
    """The Arrow types of the rows (module docstring) of a classifier with ``labels``."""
    pa = import_pyarrow()
    ints = ("frame", "face_id", "x", "y", "w", "h")
    fields = [("source", pa.string()), *((c, pa.int64()) for c in ints)]
    fields += [(c, pa.float64()) for c in ("time", "score", "roll", *labels)]
    fields += [(c, pa.string()) for c in ("label", "error", "unit")] + [("row", pa.int64())]
    types = dict(fields)
    order = ["source", "frame", "time", *ints[1:], "score", "roll", *labels, "label", "error"]
    return pa.schema([(name, types[name]) for name in [*order, "unit", "row"]])


def arrow_rows(rows: pd.DataFrame, labels: Sequence[str]) -> pa.Table:
    """Rows as an Arrow table of :func:`row_schema` (one type per column in every chunk)."""
    return import_pyarrow().Table.from_pandas(rows, schema=row_schema(labels), preserve_index=False)
