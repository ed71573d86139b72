"""Rewriting one section of a Markdown document, leaving the others as they are.

Benchmarks write their results into ``docs/benchmarks.md`` and ``scripts/release_model.py`` the
shipped models' card this way: each rewrites only its own ``## `` section.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["write_section"]


def write_section(lines: list[str], doc: str | Path) -> None:
    """Replace the section that ``lines`` heads (``lines[0]``, a ``## `` heading) or append it.

    Other sections keep their place and text.
    """
    doc = Path(doc)
    section = lines[0]
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = "\n".join(lines).rstrip("\n") + "\n"
    if section in text:
        head, rest = text.split(section, 1)
        tail = rest[rest.find("\n## ") + 1 :] if "\n## " in rest else ""
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    doc.write_text(text)
