"""``ferlab export``: a model as an ONNX file for ONNX Runtime and other ONNX runtimes.

The file carries the label names, input size, preprocessing and default test-time augmentation
as ONNX metadata; ``ferlab.load_model("model.onnx")`` and ``ferlab predict -m model.onnx`` run it
without PyTorch. See ``docs/export.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ferlab.cli.console import CliConsole, escape

_out = CliConsole()
_err = CliConsole(stderr=True)

FORMATS = ("onnx",)


def register(app: typer.Typer) -> None:
    """Add ``export`` to the ``ferlab`` command."""
    app.command("export")(export)


def export(
    model: Annotated[
        str,
        typer.Argument(
            metavar="MODEL_OR_CHECKPOINT",
            help="A shipped model (default, ferplus), a checkpoint (.pt) or a registered "
            "architecture (exported untrained; see `ferlab models`).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", metavar="FILE.onnx", help="The ONNX file to write.", show_default=False
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", help="Export format (onnx).")] = "onnx",
    dynamic_batch: Annotated[
        bool,
        typer.Option(
            "--dynamic-batch", help="Accept any number of faces per run (default: exactly one)."
        ),
    ] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="Quantise weights and activations to int8.")
    ] = False,
    int8_mode: Annotated[
        str,
        typer.Option(
            "--int8-mode",
            metavar="MODE",
            help="static (activation ranges calibrated on Training faces; needs --calibration) "
            "or dynamic (no data needed).",
        ),
    ] = "static",
    calibration: Annotated[
        Path | None,
        typer.Option(
            "--calibration",
            metavar="DATA",
            help="FER2013 data (e.g. fer2013.csv.gz) whose Training split calibrates static "
            "int8 and checks the export.",
        ),
    ] = None,
    calibration_size: Annotated[
        int,
        typer.Option("--calibration-size", metavar="N", min=32, help="Calibration faces."),
    ] = 1024,
    opset: Annotated[
        int | None,
        typer.Option(
            "--opset", metavar="N", min=16, help="ONNX opset (default: 17, or 20 with an STN)."
        ),
    ] = None,
    tta: Annotated[
        str | None,
        typer.Option(
            "--tta",
            metavar="MODE",
            help="Default test-time augmentation recorded in the file: none, flip or ten_crop "
            "(default: the model's).",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Export a model to ONNX, optionally int8-quantised, and check it against PyTorch."""
    from ferlab.errors import UnknownNameError
    from ferlab.export.onnx_export import export_onnx

    if fmt not in FORMATS:
        raise UnknownNameError("export format", fmt, list(FORMATS))
    report = export_onnx(
        model,
        out,
        dynamic_batch=dynamic_batch,
        int8=int8_mode if int8 else None,
        calibration=calibration,
        calibration_size=calibration_size,
        opset=opset,
        tta=tta,
        progress=not json_out,
    )
    if report["weights"] == "untrained":
        _err.print(
            f"[yellow]warning:[/] '{escape(model)}' is an architecture, exported with untrained "
            "weights; export a checkpoint for real predictions"
        )
    if json_out:
        typer.echo(json.dumps(report))
        return
    _print_report(report)


def _print_report(r: dict[str, Any]) -> None:
    check = r["check"]
    batch = "any batch size" if r["dynamic_batch"] else "one face view per run"
    precision = "float32" if r["quantization"] == "none" else r["quantization"]
    _out.print(f"wrote [bold]{escape(r['out'])}[/] ({r['bytes'] / 1e6:.1f} MB)")
    _out.print(
        f"  {r['model']} from {escape(r['source'])} ({r['weights']}), {precision}, "
        f"opset {r['opset']}, {batch}"
    )
    _out.print(
        f"  input float32 {'×'.join(str(v) for v in r['input_size'])}, default TTA {r['tta']}, "
        f"labels: {', '.join(r['labels'])}"
    )
    # Without calibration data the check runs on seeded noise images, not on faces: say so.
    of = check["of"]
    if of == "random pixels":
        of = "images of seeded random pixels (noise, not faces)"
    _out.print(
        f"  checked against PyTorch on {check['faces']} {of}: max |Δp| "
        f"{check['max_abs_diff']:.1e}, top-1 agreement {check['top1_agreement']:.1%}"
    )
