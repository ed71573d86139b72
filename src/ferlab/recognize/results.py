"""What recognition returns: one tidy row per face per frame, and conversions of those rows.

A :class:`Results` is a list of :class:`Face` rows plus the list of sources that were read (so
that an image without faces still shows up, with no rows) and the sources that failed. It turns
into a pandas DataFrame, JSON lines or CSV, summarises video tracks and plots their emotion
timelines.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ferlab.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FIXED_COLUMNS", "CsvStream", "Face", "FrameResult", "Results", "frames_of"]

#: Columns of :meth:`Results.to_dataframe` before the per-emotion probabilities and the label.
FIXED_COLUMNS = ("source", "frame", "time", "face_id", "x", "y", "w", "h", "score", "roll")


@dataclass(frozen=True)
class Face:
    """One face in one frame.

    Attributes:
        source: the image path, video path, ``camera:<index>`` or ``<array>``.
        frame: frame index in the video (0 for images).
        time: seconds from the start of the video or camera run (0 for images).
        face_id: track id in videos and camera runs, reading-order index in images.
        box: ``(x, y, w, h)`` in pixels of the original, upright image.
        score: detector confidence (the cascade's level weight, see ``detect.py``); ``None``
            for a box given by the caller or a whole image taken as the face.
        roll: head roll in degrees measured from the eyes (``None`` when they were not found
            or alignment is off); the crop is rotated by it when it is 5° or more.
        scores: probability of each emotion, in the classifier's label order; in videos these
            are the track's smoothed probabilities.
        label: the most probable emotion.
    """

    source: str
    frame: int
    time: float
    face_id: int
    box: tuple[int, int, int, int]
    score: float | None
    roll: float | None
    scores: dict[str, float]
    label: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``box`` as a list, ``scores`` as a mapping."""
        return {
            "source": self.source,
            "frame": self.frame,
            "time": round(self.time, 4),
            "face_id": self.face_id,
            "box": list(self.box),
            "score": None if self.score is None else round(self.score, 4),
            "roll": None if self.roll is None else round(self.roll, 2),
            "label": self.label,
            "scores": {k: round(v, 5) for k, v in self.scores.items()},
        }


@dataclass
class FrameResult:
    """The faces of one processed frame (or image), with the frame itself for drawing.

    ``fps`` is the frame rate of a video or camera source (``None`` for images). ``error`` is set
    instead when the source could not be read; ``image`` is then ``None``.
    """

    source: str
    frame: int
    time: float
    image: np.ndarray | None
    faces: list[Face] = field(default_factory=list)
    error: str | None = None
    fps: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The per-input JSON object of ``ferlab predict --json`` (faces without ``source``)."""
        out: dict[str, Any] = {"source": self.source}
        if self.error is not None:
            out["error"] = self.error
        else:
            out["frame"] = self.frame
            out["time"] = round(self.time, 4)
        out["faces"] = [{k: v for k, v in f.to_dict().items() if k != "source"} for f in self.faces]
        return out


class Results:
    """Faces found in one or more sources.

    Attributes:
        labels: the classifier's emotion names, in order.
        faces: one :class:`Face` per face per processed frame.
        sources: every source read, in order (including those without faces).
        errors: ``(source, message)`` of each source that could not be read.
        empty_frames: ``(source, frame, time, error)`` of each frame (or image) without a face,
            ``error`` set where the source could not be read.
    """

    def __init__(self, labels: tuple[str, ...]) -> None:
        self.labels = labels
        self.faces: list[Face] = []
        self.sources: list[str] = []
        self.errors: list[tuple[str, str]] = []
        self.empty_frames: list[tuple[str, int, float, str | None]] = []

    def add(self, frame: FrameResult) -> None:
        """Record one processed frame."""
        if not self.sources or self.sources[-1] != frame.source:
            self.sources.append(frame.source)
        if frame.error is not None:
            self.errors.append((frame.source, frame.error))
        if not frame.faces:
            self.empty_frames.append((frame.source, frame.frame, frame.time, frame.error))
        self.faces.extend(frame.faces)

    def __len__(self) -> int:
        return len(self.faces)

    def __iter__(self) -> Iterator[Face]:
        return iter(self.faces)

    def __getitem__(self, index: int) -> Face:
        return self.faces[index]

    def __repr__(self) -> str:
        return (
            f"Results({len(self.faces)} faces from {len(self.sources)} sources, "
            f"{len(self.errors)} errors)"
        )

    @property
    def columns(self) -> list[str]:
        """Column names of :meth:`to_dataframe` and :meth:`to_csv`."""
        return [*FIXED_COLUMNS, *self.labels, "label"]

    def rows(self) -> Iterator[dict[str, Any]]:
        """The tidy rows as flat dictionaries (the columns of :meth:`to_dataframe`)."""
        for f in self.faces:
            x, y, w, h = f.box
            yield {
                "source": f.source,
                "frame": f.frame,
                "time": f.time,
                "face_id": f.face_id,
                "x": x,
                "y": y,
                "w": w,
                "h": h,
                "score": math.nan if f.score is None else f.score,
                "roll": math.nan if f.roll is None else f.roll,
                **f.scores,
                "label": f.label,
            }

    def to_dataframe(self, *, every_frame: bool = False) -> pd.DataFrame:
        """One row per face per frame: source, frame, time, face_id, x, y, w, h, score, roll,
        one probability column per emotion, label.

        With ``every_frame``, frames and images without a face get a row too (face columns
        empty) and an ``error`` column says why a source could not be read: every input is in
        the table, as ``ferlab predict --json`` lists them.
        """
        import pandas as pd

        df = pd.DataFrame(list(self.rows()), columns=self.columns)
        if not every_frame:
            return df
        if not self.empty_frames:
            return df.assign(error=None)
        empty = pd.DataFrame(self.empty_frames, columns=["source", "frame", "time", "error"])
        df = pd.concat([df if len(df) else None, empty], ignore_index=True)
        df = df.reindex(columns=[*self.columns, "error"])
        # Back into reading order (stable: a frame's faces keep theirs), integers kept.
        rank = df["source"].map({source: i for i, source in enumerate(self.sources)})
        df = df.iloc[np.lexsort((df["frame"], rank))].reset_index(drop=True)
        return df.astype({c: "Int64" for c in ("frame", "face_id", "x", "y", "w", "h")})

    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, labels: tuple[str, ...]) -> Results:
        """The results whose :meth:`to_dataframe` with ``every_frame`` is ``df``."""
        results = cls(labels)
        for frame in frames_of(df, labels):
            results.add(frame)
        return results

    def to_jsonl(self, path: str | Path | None = None) -> str:
        """One JSON object per face (:meth:`Face.to_dict`), also written to ``path`` if given."""
        text = "".join(json.dumps(f.to_dict()) + "\n" for f in self.faces)
        if path is not None:
            _write_text(Path(path), text)
        return text

    def to_csv(self, path: str | Path, *, every_frame: bool = False) -> None:
        """Write :meth:`to_dataframe` as CSV (no index column); ``every_frame`` as there."""
        path = Path(path)
        df = self.to_dataframe(every_frame=every_frame)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            df.to_csv(path, index=False)
        except OSError as exc:
            raise DataError(f"cannot write CSV ({exc.strerror or exc})", path=path) from None

    def summary(self) -> pd.DataFrame:
        """Per face (track): frames seen, first/last time, duration, dominant emotion, mean
        probabilities.

        The dominant emotion is the arg-max of the mean probabilities over the frames the face was
        seen in, which is steadier than the most frequent per-frame label.
        """
        import pandas as pd

        df = self.to_dataframe()
        columns = ["source", "face_id", "frames", "first", "last", "duration", "dominant"]
        if df.empty:
            return pd.DataFrame(columns=[*columns, *self.labels])
        labels = list(self.labels)
        grouped = df.groupby(["source", "face_id"], sort=False)
        out = grouped[labels].mean()
        out.insert(0, "frames", grouped.size())
        out.insert(1, "first", grouped["time"].min())
        out.insert(2, "last", grouped["time"].max())
        out.insert(3, "duration", out["last"] - out["first"])
        out.insert(4, "dominant", out[labels].idxmax(axis=1))
        return out.reset_index()[[*columns, *labels]]

    def per_second(self) -> pd.DataFrame:
        """The emotion timeline per second of video: for each source, whole second (``second``
        = 0 for 0 s up to 1 s) and face, the frames it was seen in, its mean probabilities and
        the most probable emotion of those means (``label``)."""
        import pandas as pd

        df = self.to_dataframe()
        labels = list(self.labels)
        columns = ["source", "second", "face_id", "frames", *labels, "label"]
        if df.empty:
            return pd.DataFrame(columns=columns)
        df["second"] = np.floor(df["time"].to_numpy()).astype(int)
        grouped = df.groupby(["source", "second", "face_id"], sort=False)
        out = grouped[labels].mean()
        out.insert(0, "frames", grouped.size())
        out["label"] = out[labels].idxmax(axis=1)
        return out.reset_index()[columns]

    def plot_timeline(self, path: str | Path, source: str | None = None) -> Path:
        """Save a PNG with one panel per face: each emotion's probability against time.

        ``source`` picks one video when the results hold several (default: the first one with
        faces). Returns the path written.
        """
        from ferlab.plots import pyplot

        plt = pyplot()
        path = Path(path)
        df = self.to_dataframe()
        if source is not None:
            df = df[df["source"] == source]
        elif not df.empty:
            df = df[df["source"] == df["source"].iloc[0]]
        ids = list(dict.fromkeys(df["face_id"]))
        fig, axes = plt.subplots(
            max(1, len(ids)), 1, figsize=(8, 2.2 * max(1, len(ids))), squeeze=False, sharex=True
        )
        colors = plt.get_cmap("tab10")
        for ax, face_id in zip(axes[:, 0], ids or [None], strict=True):
            if face_id is None:
                ax.text(0.5, 0.5, "no faces", ha="center", va="center", transform=ax.transAxes)
                continue
            track = df[df["face_id"] == face_id]
            for i, label in enumerate(self.labels):
                ax.plot(track["time"], track[label], label=label, color=colors(i % 10), lw=1.4)
            ax.set_ylim(0, 1)
            ax.set_ylabel(f"face {face_id}")
            ax.grid(alpha=0.3)
        axes[-1, 0].set_xlabel("time (s)")
        axes[0, 0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        title = df["source"].iloc[0] if not df.empty else (source or "")
        fig.suptitle(f"Emotion probabilities over time: {Path(title).name}", fontsize=10)
        fig.tight_layout()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(path, dpi=110)
        except OSError as exc:
            raise DataError(f"cannot write plot ({exc.strerror or exc})", path=path) from None
        finally:
            plt.close(fig)
        return path


class CsvStream:
    """The rows of :meth:`Results.to_csv` with ``every_frame`` written as frames arrive, so a
    long run's CSV fills while it runs (and holds what was done if it is stopped)."""

    def __init__(self, path: str | Path, labels: tuple[str, ...]) -> None:
        import csv

        self.path = Path(path)
        self.columns = [*Results(labels).columns, "error"]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise DataError(f"cannot write CSV ({exc.strerror or exc})", path=path) from None
        self._writer = csv.writer(self._file)
        self._writer.writerow(self.columns)

    def add(self, frame: FrameResult) -> None:
        """Write the frame's faces, or one row with empty face columns when it has none."""
        one = Results(tuple(self.columns[len(FIXED_COLUMNS) : -2]))
        one.add(frame)
        rows = [{**row, "error": None} for row in one.rows()] or [
            {"source": frame.source, "frame": frame.frame, "time": frame.time, "error": frame.error}
        ]
        for row in rows:
            self._writer.writerow([_csv_value(row.get(c)) for c in self.columns])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _csv_value(value: Any) -> Any:
    """As pandas writes it: missing values (``None``, NaN) as empty fields."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def frames_of(df: pd.DataFrame, labels: tuple[str, ...]) -> Iterator[FrameResult]:
    """The frames of a table of :meth:`Results.to_dataframe` with ``every_frame`` (rows in
    reading order; a row without ``label`` is a frame without a face, or an unreadable source
    when its ``error`` is set), without their images."""
    frame: FrameResult | None = None
    for row in df.to_dict("records"):
        key = (row["source"], int(row["frame"]))
        if frame is None or (frame.source, frame.frame) != key or frame.error is not None:
            if frame is not None:
                yield frame
            frame = FrameResult(*key, float(row["time"]), None, error=_text(row.get("error")))
        if _text(row["label"]) is None:
            continue
        frame.faces.append(
            Face(
                source=key[0],
                frame=key[1],
                time=float(row["time"]),
                face_id=int(row["face_id"]),
                box=(int(row["x"]), int(row["y"]), int(row["w"]), int(row["h"])),
                score=_number(row["score"]),
                roll=_number(row["roll"]),
                scores={label: float(row[label]) for label in labels},
                label=str(row["label"]),
            )
        )
    if frame is not None:
        yield frame


def _number(value: Any) -> float | None:
    """A float cell of a results table; ``None`` for a missing one (NaN, NA or None)."""
    import pandas as pd

    return None if pd.isna(value) else float(value)


def _text(value: Any) -> str | None:
    """A text cell of a results table; ``None`` for a missing one (NaN, NA or None)."""
    import pandas as pd

    return None if pd.isna(value) else str(value)


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot write file ({exc.strerror or exc})", path=path) from None
