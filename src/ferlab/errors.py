"""Errors that ferlab shows to users.

Every problem a user can cause (a bad file, an unknown name, a malformed row) raises a
:class:`FerlabError` subclass whose message names the file, row or field and says what to do.
The CLI prints these messages without a traceback and exits with status 2.
"""

from __future__ import annotations

from pathlib import Path


class FerlabError(Exception):
    """Base class of every error ferlab reports to a user."""


class DataError(FerlabError):
    """A dataset file, row, image or folder is missing, unreadable or malformed."""

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.row = row
        self.field = field
        where = []
        if self.path is not None:
            where.append(self.path)
        if row is not None:
            where.append(f"line {row}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {problem}" if where else problem)


class UnknownNameError(FerlabError, KeyError):
    """A name (model, detector, recipe key, ...) is not one of the known choices."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} '{name}'; known {kind}s: {', '.join(sorted(known))}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]
