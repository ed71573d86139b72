"""Rich progress bars for long reads, drawn on stderr so that ``--json`` output stays clean."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def progress_bar(
    description: str, total: float, enabled: bool
) -> Iterator[Callable[[float], None]]:
    """Yield ``update(completed)``; a no-op when ``enabled`` is false.

    ``update`` takes the absolute amount done (bytes read, rows parsed), which suits readers
    that know their position better than their increments.
    """
    if not enabled:
        yield lambda completed: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda completed: bar.update(task, completed=completed)
