"""On-disk cache of decoded datasets.

Parsing the 301 MB challenge CSV or decoding thousands of images takes seconds; the decoded
arrays (82 MB for FER2013) load from an uncompressed ``.npz`` in well under a second. Entries live
in the user's cache folder, never next to the source:

``cache_dir`` argument > ``$FERLAB_CACHE_DIR`` > ``$XDG_CACHE_HOME/ferlab`` > ``~/.cache/ferlab``.

An entry's file name is a hash of what was asked (format version, the source's absolute path,
the options that change the result); inside, it records the source's fingerprint (size and
mtime in nanoseconds of the file, or of every file of a folder). A load whose fingerprint differs
is a miss and the entry is rewritten, so a changed source is never served stale and old entries do
not pile up. Writes go to a temporary file in the same folder followed by ``os.replace``, so a
crash or a concurrent reader never sees half a file. An unreadable or corrupt entry counts as a
miss; a cache folder that cannot be written only costs speed (a warning says so).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CACHE_VERSION", "DataCache", "default_cache_dir"]

#: Bump when the readers' output changes, so that older entries are never used.
CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$FERLAB_CACHE_DIR``, else ``$XDG_CACHE_HOME/ferlab``, else ``~/.cache/ferlab``."""
    if env := os.environ.get("FERLAB_CACHE_DIR"):
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "ferlab"


class DataCache:
    """Decoded arrays keyed by source and options, checked against the source's fingerprint."""

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        self.dir = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()

    def entry(self, identity: dict[str, Any]) -> Path:
        """The file that holds the entry for ``identity`` (source path, format, options)."""
        blob = json.dumps({"version": CACHE_VERSION, **identity}, sort_keys=True)
        name = Path(str(identity.get("source", "data"))).name or "data"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:60]
        return self.dir / f"{safe}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npz"

    def load(
        self, identity: dict[str, Any], fingerprint: dict[str, Any]
    ) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The arrays and metadata stored for ``identity``, or None when absent or stale."""
        path = self.entry(identity)
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(npz["__meta__"].tobytes().decode())
                if meta.get("fingerprint") != fingerprint or meta.get("version") != CACHE_VERSION:
                    return None
                arrays = {k: npz[k] for k in npz.files if k != "__meta__"}
        except FileNotFoundError:
            return None
        # A truncated or foreign file is a miss: it is rebuilt and replaced.
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        return arrays, meta["meta"]

    def save(
        self,
        identity: dict[str, Any],
        fingerprint: dict[str, Any],
        arrays: dict[str, np.ndarray],
        meta: dict[str, Any],
    ) -> Path | None:
        """Store an entry atomically; returns its path, or None (with a warning) on failure."""
        path = self.entry(identity)
        header = {"version": CACHE_VERSION, "fingerprint": fingerprint, "meta": meta}
        tmp_name = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(
                dir=self.dir, prefix=f".{path.stem}-", suffix=".tmp", delete=False
            ) as tmp:
                tmp_name = tmp.name
                np.savez(
                    tmp,
                    __meta__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
                    **arrays,
                )
            os.replace(tmp_name, path)
        except OSError as exc:
            if tmp_name is not None:
                Path(tmp_name).unlink(missing_ok=True)
            warnings.warn(
                f"could not write the data cache in {self.dir} ({exc}); the next load will "
                "parse the source again",
                UserWarning,
                stacklevel=3,
            )
            return None
        return path
