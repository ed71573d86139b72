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


#: Faces classified per speed measurement: a few batches' worth, about a second per model.
SPEED_FACES = 256


def faces_per_second(name: str) -> dict:
    """Classify random faces with a shipped model as a user gets it (its default runtime and
    test-time augmentation) on this machine, after one warm-up call: faces and crops per second.
    """
    import time

    import numpy as np

    from ferlab.inference import TTA_VIEWS, load_model

    model = load_model(name)
    faces = np.random.default_rng(0).integers(0, 256, (SPEED_FACES, 48, 48), dtype=np.uint8)
    model.predict_proba(faces[:16])
    start = time.perf_counter()
    model.predict_proba(faces)
    rate = SPEED_FACES / (time.perf_counter() - start)
    return {
        "runtime": f"{model.runtime}-{model.precision}",
        "faces_per_s": round(rate, 1),
        "crops_per_s": round(rate * TTA_VIEWS[model.tta], 1),
    }


def shipped_rows(*, speed: bool = False) -> list[dict]:
    """The trained models inside this install: name, architecture, labels, accuracy, size, and
    with ``speed`` their measured faces per second here (:func:`faces_per_second`)."""
    from ferlab.engine.checkpoint import read_checkpoint
    from ferlab.inference import shipped_models

    rows = []
    for name, path in shipped_models().items():
        ckpt = read_checkpoint(path)
        metrics = ckpt.get("metrics") or {}
        row = {
            "name": name,
            "architecture": ckpt["model"]["name"],
            "labels": list(ckpt["classes"]),
            "val_accuracy": (metrics.get("val") or {}).get("accuracy"),
            "test_accuracy": (metrics.get("test") or {}).get("accuracy"),
            "tta": ckpt.get("tta", "none"),
            "bytes": path.stat().st_size,
            "path": str(path),
        }
        rows.append(row | (faces_per_second(name) if speed else {}))
    return rows


def _print_shipped(as_json: bool, speed: bool) -> None:
    import json

    from rich.table import Table

    from ferlab.cli.console import CliConsole

    rows = shipped_rows(speed=speed)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    caption = "accuracy with the model's own TTA"
    if speed:
        caption += f"; speed measured now, {SPEED_FACES} faces, default runtime and TTA"
    table = Table(title="shipped models", caption=caption)
    columns = ["name", "architecture", "classes", "val", "test", "TTA", "size"]
    columns += ["runtime", "faces/s", "crops/s"] if speed else []
    numeric = {"val", "test", "size", "faces/s", "crops/s"}
    for column in columns:
        table.add_column(column, justify="right" if column in numeric else "left")
    for r in rows:
        pct = [("—" if r[k] is None else f"{r[k]:.2%}") for k in ("val_accuracy", "test_accuracy")]
        cells = [r["name"], r["architecture"], str(len(r["labels"])), *pct, r["tta"]]
        cells.append(f"{r['bytes'] / 1e6:.1f} MB")
        if speed:
            cells += [r["runtime"], f"{r['faces_per_s']:,.0f}", f"{r['crops_per_s']:,.0f}"]
        table.add_row(*cells)
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
        help="List the trained models inside this install (default, ferplus, fast) with their "
        "accuracy and their speed on this machine instead of the architectures.",
    ),
    speed: bool = typer.Option(
        True,
        "--speed/--no-speed",
        help="With --shipped: measure each model's faces/s here (about a second per model).",
    ),
) -> None:
    """List every registered model with its parameters, MFLOPs (1 MAC = 1 FLOP) and paper."""
    import json

    if shipped:
        _print_shipped(as_json, speed)
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
