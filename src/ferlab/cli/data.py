"""``ferlab data``: summarise (``info``) and validate (``check``) a dataset of any form."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from ferlab.cli.options import (
    CacheDirOption,
    DataPathArgument,
    FerplusOption,
    LabelsOption,
    SeedOption,
    SkipBadOption,
    ValFractionOption,
    load_from_cli,
    print_warnings,
)

#: At most this many problems are listed by ``check``; the rest are counted.
MAX_LISTED = 50

data_app = typer.Typer(
    help="Inspect and validate datasets (challenge CSV, image folders, zips, FER+).",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``data`` verbs to the ``ferlab`` command."""
    app.add_typer(data_app, name="data")


def info_payload(data: Any) -> dict[str, Any]:
    """The ``data info --json`` document for a :class:`~ferlab.data.FERData`."""
    return {
        "format": data.format,
        "splits": data.counts(),
        "source": data.source,
        "classes": list(data.classes),
        "label_mode": data.label_mode,
        "total": len(data),
        "skipped": list(data.skipped),
        "dropped": dict(data.dropped),
    }


@data_app.command("info")
def info(
    path: DataPathArgument,
    ferplus: FerplusOption = None,
    labels: LabelsOption = "fer2013",
    cache_dir: CacheDirOption = None,
    skip_bad: SkipBadOption = False,
    val_fraction: ValFractionOption = 0.1,
    seed: SeedOption = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Counts per split and class."""
    data = load_from_cli(path, ferplus, labels, cache_dir, skip_bad, val_fraction, seed)
    payload = info_payload(data)
    if as_json:
        typer.echo(json.dumps(payload, indent=2))
        return
    from rich.table import Table

    from ferlab.cli.console import CliConsole

    splits = payload["splits"]
    table = Table(title=f"{data.source}\n{data.format}, labels: {data.label_mode}")
    table.add_column("class")
    for name in (*splits, "total"):
        table.add_column(name, justify="right")
    for cls in data.classes:
        per = [splits[s]["per_class"][cls] for s in splits]
        table.add_row(cls, *(f"{n:,}" for n in per), f"{sum(per):,}")
    table.add_section()
    totals = [splits[s]["total"] for s in splits]
    table.add_row("total", *(f"{n:,}" for n in totals), f"{sum(totals):,}")
    console = CliConsole()
    console.print(table)
    if data.dropped:
        from ferlab.data.ferplus import DROP_REASONS

        for reason, n in data.dropped.items():
            console.print(f"dropped by the FER+ rules: {n:,} ({DROP_REASONS[reason]})")


@data_app.command("check")
def check(
    path: DataPathArgument,
    ferplus: FerplusOption = None,
    labels: LabelsOption = "fer2013",
    cache_dir: Annotated[
        Path | None,
        typer.Option("--cache-dir", hidden=True, help="Accepted like info's; check never caches."),
    ] = None,
    skip_bad: Annotated[
        bool,
        typer.Option(
            "--skip-bad",
            help="Succeed when every problem is a bad row/image that --skip-bad would drop.",
        ),
    ] = False,
    val_fraction: ValFractionOption = 0.1,
    seed: SeedOption = 0,
) -> None:
    """Validate every row / image; exit 1 and list the problems when there are any."""
    from ferlab.cli.console import CliConsole, escape
    from ferlab.data import check_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = check_dataset(
            path, ferplus=ferplus, labels=labels, val_fraction=val_fraction, seed=seed
        )
    print_warnings(caught)
    console = CliConsole()
    if report.data is not None:
        counts = report.data.counts()
        shown = ", ".join(f"{s} {c['total']:,}" for s, c in counts.items())
        console.print(
            f"{escape(str(report.data.source))}: {report.data.format}, "
            f"{len(report.data):,} good ({shown})"
        )
    problems = report.problems
    if not problems:
        console.print("[green]OK[/]: no problems found")
        return
    console.print(f"[red]{len(problems)} problem{'s' * (len(problems) > 1)}:[/]")
    for problem in problems[:MAX_LISTED]:
        console.print(f"  {problem}", markup=False)
    if len(problems) > MAX_LISTED:
        console.print(f"  ... and {len(problems) - MAX_LISTED} more")
    if skip_bad and report.fatal is None:
        console.print("all of them are bad rows/images that --skip-bad leaves out")
        return
    # SystemExit, not typer.Exit: click in non-standalone mode turns Exit into a return value,
    # which would lose the status on the way out of ``ferlab.cli.app.main``.
    raise SystemExit(1)
