"""Writing a benchmark's results into its section of ``docs/benchmarks.md``."""

from __future__ import annotations

import os
from pathlib import Path

from ferlab.markdown import write_section
from ferlab.report import cpu_name

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_doc_section(lines: list[str], doc: Path = DOC) -> None:
    """Replace the section that ``lines`` heads (``lines[0]``, a ``## `` heading) or append it;
    the other sections keep their place and text."""
    write_section(lines, doc)


def machine(load: float | None = None) -> str:
    """The CPU, its logical CPUs and the 1-minute load average (``load``: sampled before the
    benchmark started; now by default), saying so when other jobs were using the CPU."""
    if load is None:
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    busy = " (other jobs were using the CPU)" if load >= 1.0 else ""
    return f"{cpu_name()}, {os.cpu_count()} logical CPUs, load average {load:.1f}{busy}"
