"""Collecting every problem of a source in one pass.

Readers do not stop at the first bad row or image: they record each one here, so that
``ferlab data check`` can list them all, ``skip_bad`` can drop exactly those rows, and a plain
load can still fail with the first problem plus a count of the others.
"""

from __future__ import annotations

from pathlib import Path

from ferlab.errors import DataError


class Problems:
    """An ordered list of :class:`DataError` found while reading one source."""

    def __init__(self) -> None:
        self.items: list[DataError] = []

    def add(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        row: int | None = None,
        field: str | None = None,
    ) -> None:
        self.items.append(DataError(problem, path=path, row=row, field=field))

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_first(self) -> None:
        """Raise the first problem, saying how many more there are."""
        if not self.items:
            return
        first = self.items[0]
        more = len(self.items) - 1
        problem = first.problem
        if more:
            problem += (
                f" ({more} more problem{'s' if more > 1 else ''}; `ferlab data check` lists "
                "them all, `--skip-bad` / skip_bad=True drops the bad rows)"
            )
        raise DataError(problem, path=first.path, row=first.row, field=first.field)
