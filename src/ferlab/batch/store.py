"""A job's output folder: a Parquet dataset written one chunk at a time, atomically.

* Each chunk becomes one file ``part-<digest>.parquet``, the digest naming the chunk's units:
  it is written to a hidden temporary file and renamed into place (atomic on one file system),
  so a worker killed while writing leaves no partial file, and a chunk retried after a failure
  replaces its own file instead of adding a second one.
* ``_ferlab.json`` records the settings that decide the rows; a rerun into the same folder with
  other settings is refused rather than mixing two kinds of rows.
* :meth:`Store.done` reads the ``unit`` column of every file: a rerun skips those units.

Readers that take a folder of Parquet files (pyarrow, pandas, Ray Data, DuckDB, Spark) skip the
files starting with ``_`` or ``.``, so the folder reads as one table.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ferlab.batch.jobs import arrow_rows, import_pyarrow, row_schema
from ferlab.errors import DataError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["Store"]

_SETTINGS = "_ferlab.json"


class Store:
    """The Parquet output folder of a job with the given settings (``Settings.record()``)."""

    def __init__(self, folder: str | Path, settings: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.settings = settings
        self.labels: list[str] = list(settings["labels"])

    def open(self) -> Store:
        """Create the folder (or check that an existing output was made with these settings)."""
        record = self.folder / _SETTINGS
        try:
            if self.folder.exists() and not self.folder.is_dir():
                raise DataError("is a file; --out takes a folder", path=self.folder)
            if record.is_file():
                before = json.loads(record.read_text(encoding="utf-8"))
                changed = [k for k in self.settings if before.get(k) != self.settings[k]]
                if changed:
                    diff = ", ".join(
                        f"{k}: {before.get(k)!r} there, {self.settings[k]!r} now" for k in changed
                    )
                    raise DataError(
                        f"holds results made with other settings ({diff}); rerun with the same "
                        "settings to resume, or write to another folder",
                        path=self.folder,
                    )
            elif self.folder.is_dir() and any(self.folder.glob("*.parquet")):
                raise DataError(
                    "holds Parquet files that ferlab did not write (no _ferlab.json); "
                    "write to another folder",
                    path=self.folder,
                )
            else:
                self.folder.mkdir(parents=True, exist_ok=True)
                _replace(record, json.dumps(self.settings, indent=1).encode())
        except OSError as exc:
            raise DataError(
                f"cannot write the output folder ({exc.strerror or exc})", path=self.folder
            ) from None
        return self

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def done(self) -> set[str]:
        """The units already written."""
        pq = import_pyarrow().parquet
        keys: set[str] = set()
        for path in self.files():
            keys.update(pq.read_table(path, columns=["unit"]).column("unit").to_pylist())
        return keys

    def schema(self) -> pa.Schema:
        return row_schema(self.labels)

    def write(self, rows: pd.DataFrame) -> Path:
        """Write one chunk's rows as one file, atomically; returns its path."""
        pa = import_pyarrow()
        keys = "\n".join(dict.fromkeys(rows["unit"]))
        path = self.folder / f"part-{hashlib.sha256(keys.encode()).hexdigest()[:20]}.parquet"
        table = arrow_rows(rows, self.labels)
        sink = pa.BufferOutputStream()
        pa.parquet.write_table(table, sink)
        try:
            _replace(path, sink.getvalue().to_pybytes())
        except OSError as exc:
            raise DataError(f"cannot write ({exc.strerror or exc})", path=path) from None
        return path

    def read(self) -> pd.DataFrame:
        """Every row written (unsorted), as pandas with nullable integers."""

        pa = import_pyarrow()
        schema = self.schema()
        tables = [pa.parquet.read_table(path, schema=schema) for path in self.files()]
        return pa.concat_tables(tables or [schema.empty_table()]).to_pandas()


def _replace(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a hidden temporary file beside it, then a rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
