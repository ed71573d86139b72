"""``ferlab models``: the model zoo with each model's size, cost, input size and paper.

Every registered model is built in its default configuration and measured by
:func:`ferlab.models._info.model_info`: parameters (frozen ones included) and MFLOPs, counted as
millions of multiply-accumulates of the convolutions, linear layers and matrix products for one
sample (one MAC counts as one FLOP). Nothing is cached, so the list always matches the installed
code.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    app.command("models")(models)


def shipped_rows() -> list[dict]:
    """The trained models inside this install: name, architecture, labels, accuracy, size."""
    from ferlab.engine.checkpoint import read_checkpoint
    from ferlab.inference import shipped_models

    rows = []
    for name, path in shipped_models().items():
        ckpt = read_checkpoint(path)
        metrics = ckpt.get("metrics") or {}
        rows.append(
            {
                "name": name,
                "architecture": ckpt["model"]["name"],
                "labels": list(ckpt["classes"]),
                "val_accuracy": (metrics.get("val") or {}).get("accuracy"),
                "test_accuracy": (metrics.get("test") or {}).get("accuracy"),
                "tta": ckpt.get("tta", "none"),
                "bytes": path.stat().st_size,
                "path": str(path),
            }
        )
    return rows


def _print_shipped(as_json: bool) -> None:
    import json

    from rich.table import Table

    from ferlab.cli.console import CliConsole

    rows = shipped_rows()
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="shipped models", caption="accuracy with the model's own TTA")
    for column in ("name", "architecture", "classes", "val", "test", "TTA", "size"):
        table.add_column(column, justify="right" if column in ("val", "test", "size") else "left")
    for r in rows:
        pct = [("—" if r[k] is None else f"{r[k]:.2%}") for k in ("val_accuracy", "test_accuracy")]
        size = f"{r['bytes'] / 1e6:.1f} MB"
        table.add_row(r["name"], r["architecture"], str(len(r["labels"])), *pct, r["tta"], size)
    CliConsole().print(table if rows else "no shipped models in this install (ferlab/weights/)")


def models(
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Print a JSON list of {name, params, mflops, input_size, source} instead of a table.",
    ),
    shipped: bool = typer.Option(
        False,
        "--shipped",
        help="List the trained models inside this install (default, ferplus) with their "
        "accuracy instead of the architectures.",
    ),
) -> None:
    """List every registered model with its parameters, MFLOPs (1 MAC = 1 FLOP) and paper."""
    import json

    if shipped:
        _print_shipped(as_json)
        return
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ferlab.cli.console import CliConsole
    from ferlab.models import list_models
    from ferlab.models._info import model_info

    names = list_models()
    # Progress goes to stderr so that --json output stays machine-readable.
    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("measuring models", total=len(names))
        rows = []
        for name in names:
            progress.update(task, description=f"measuring {name}")
            rows.append(model_info(name))
            progress.advance(task)

    if as_json:
        typer.echo(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    table = Table(
        title="ferlab model zoo", caption="MFLOPs: millions of multiply-accumulates per image"
    )
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("params", justify="right")
    table.add_column("MFLOPs", justify="right")
    table.add_column("input (C×H×W)", justify="right", no_wrap=True)
    table.add_column("paper")
    for row in rows:
        table.add_row(
            row.name,
            f"{row.params / 1e6:.2f} M",
            f"{row.mflops:,.1f}",
            "×".join(str(v) for v in row.input_size),
            row.source,
        )
    CliConsole().print(table)
