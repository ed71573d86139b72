"""matplotlib for every figure ferlab draws, without a display.

:func:`pyplot` selects the non-interactive Agg backend before importing ``matplotlib.pyplot``,
so figures render to files on servers and in CI alike.
"""

from __future__ import annotations

from typing import Any

__all__ = ["pyplot"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (imported on first use: it is slow to load)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt
