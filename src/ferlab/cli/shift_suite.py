"""``ferlab evaluate ... --suite shifts``: the shift suite's command-line face.

Kept apart from ``ferlab evaluate``'s plain evaluation so that the command only branches here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from ferlab.errors import DataError

__all__ = ["run_suite_cmd"]


def run_suite_cmd(
    checkpoint: Path,
    dataset: Any,
    *,
    split: str,
    tta: str,
    device: str,
    out: Path | None,
    seed: int,
    max_images: int | None,
    as_json: bool,
) -> None:
    """Run the suite on one split of ``dataset`` and print a table or JSON; ``out`` gets the
    example picture, the bar chart and ``shifts.json``."""
    import torch
    from rich.console import Console
    from rich.table import Table

    from ferlab.engine.shifts import SHIFTS, plot_examples, plot_results, run_shift_suite
    from ferlab.inference import load_model

    part = dataset.subset(split)
    if len(part) == 0:
        raise DataError(f"the data has no '{split}' images", path=dataset.source or None)
    if max_images is not None and len(part) > max_images:
        # A seeded subset, the same for every model (the suite's seed picks it).
        pick = torch.randperm(len(part), generator=torch.Generator().manual_seed(seed))
        part = part.select(pick[:max_images].sort().values)
    model = load_model(str(checkpoint), tta=tta, device=device)
    result = run_shift_suite(
        model, part.images, part.labels, dataset.classes, seed=seed, progress=not as_json
    )
    result.update(checkpoint=str(checkpoint), split=split, tta=tta)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        name = f"{model.name} ({tta})"
        plot_results({name: result}, out / "shifts.png", f"{name} on {split}")
        plot_examples(part.images[:8], out / "shift_examples.png", seed=seed)
        (out / "shifts.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(
        title=f"{checkpoint.name} on {split}, shift suite ({result['n']} faces, tta {tta})",
        caption=f"mean over shifts {result['mean']:.2%} · clean {result['clean']:.2%}",
    )
    table.add_column("shift")
    table.add_column("what")
    table.add_column("accuracy", justify="right")
    for s in SHIFTS:
        row = result["shifts"][s.name]
        found = f" ({row['found']} found)" if "found" in row else ""
        table.add_row(s.name, s.description, f"{row['accuracy']:.2%}{found}")
    Console().print(table)
