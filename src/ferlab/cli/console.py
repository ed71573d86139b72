"""The Rich consoles of the ``ferlab`` command, which print the user's text as typed."""

from __future__ import annotations

from rich.console import Console, ConsoleDimensions
from rich.markup import escape

__all__ = ["CliConsole", "escape"]

#: Line width off a terminal: wide enough that no table row or path is wrapped or cut.
PIPE_WIDTH = 10_000


class CliConsole(Console):
    """A console without emoji codes and, when not writing to a terminal, without wrapping.

    User text (paths, camera names, error messages) goes through :func:`escape` for Rich markup,
    and emoji codes are off, so ``--camera -1`` prints ``camera:-1:`` and not an emoji. A pipe or
    a file gets whole lines instead of tables folded at 80 columns with broken paths.
    """

    def __init__(self, *, stderr: bool = False) -> None:
        super().__init__(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)

    @property
    def size(self) -> ConsoleDimensions:
        size = super().size
        return size if self.is_terminal else ConsoleDimensions(PIPE_WIDTH, size.height)
