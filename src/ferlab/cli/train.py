"""``ferlab train``, ``ferlab evaluate`` and ``ferlab compare``: the training engine's verbs.

Heavy imports (torch, the engine) happen inside the commands so ``ferlab --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import typer

from ferlab.cli.options import (
    CacheDirOption,
    FerplusOption,
    LabelsOption,
    SkipBadOption,
    ValFractionOption,
    check_choice,
    load_from_cli,
    passive_openmp,
)
from ferlab.errors import DataError, FerlabError
from ferlab.inference.device import check_device, torch_device
from ferlab.inference.preprocess import check_tta, resolve_tta


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("compare")(compare_cmd)


_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def _resolve_recipe(spec: str) -> Any:
    """A recipe from a YAML path, ``face`` (Meen et al.'s face / non-face network), or the
    default recipe of a registered model name."""
    from ferlab.engine.recipe import default_recipe, load_recipe
    from ferlab.models import list_models

    path = Path(spec)
    if path.is_file():
        return load_recipe(path)
    if spec == "face":
        from ferlab.engine.face_network import face_recipe

        return face_recipe()
    if path.suffix.lower() in (".yaml", ".yml") or path.parent != Path("."):
        raise DataError("recipe file not found", path=path)
    names = list_models()
    if spec not in names:
        raise FerlabError(
            f"'{spec}' is neither a recipe file nor a registered model; models: {', '.join(names)}"
            " (or face: the face / non-face network)"
        )
    return default_recipe(spec)


def train_cmd(
    recipe_or_model: str = typer.Argument(
        ...,
        metavar="RECIPE_OR_MODEL",
        help="A recipe YAML file, a registered model name, or face (the face / non-face "
        "network of the facial-attention models).",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset path (default: the recipe's data.path)."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Run folder (default: runs/<recipe or model name>)."
    ),
    epochs: int | None = typer.Option(None, "--epochs", min=1, help="Override train.epochs."),
    time_budget: str | None = typer.Option(
        None,
        "--time-budget",
        help="Stop after this much training time, e.g. 90s, 30m, 2h; the whole run's total, "
        "counted across --resume.",
    ),
    budget_clock: str | None = typer.Option(
        None,
        "--budget-clock",
        help="What --time-budget counts: wall (clock time) or cpu (process CPU time, fair "
        "between runs sharing a busy machine).",
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Continue the interrupted run in --out from its last.pt."
    ),
    seed: int | None = typer.Option(
        None, "--seed", min=0, help="Override train.seed (also seeds a held-out val split)."
    ),
    batch_size: int | None = typer.Option(None, "--batch-size", min=1, help="Global batch size."),
    lr: float | None = typer.Option(None, "--lr", help="Override optim.lr."),
    device: str | None = typer.Option(None, "--device", help="auto, cpu or cuda."),
    precision: str | None = typer.Option(
        None,
        "--precision",
        help="auto (AMP on CUDA; bf16 on CPUs with native bf16, else fp32), fp32, bf16 or fp16.",
    ),
    init_from: str | None = typer.Option(
        None,
        "--init-from",
        help="Fine-tune: start from this checkpoint or shipped model (default); layers that "
        "do not fit, such as another label set's classifier, start fresh.",
    ),
    ferplus: FerplusOption = None,
    labels: LabelsOption = None,
    cache_dir: CacheDirOption = None,
    skip_bad: SkipBadOption = False,
    val_fraction: ValFractionOption = None,
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout at the end."),
) -> None:
    """Train a model from a recipe (or a model's default recipe) into a run folder.

    Writes config.yaml, history.csv, last.pt, best.pt (selected on val), metrics.json and plots.

    Options override the recipe's fields. Ctrl-C saves last.pt; add --resume to continue.
    """
    passive_openmp()
    from rich.console import Console

    from ferlab.engine.recipe import apply_overrides
    from ferlab.engine.trainer import check_run_folder, resume_recipe, train

    if device is not None:
        check_device(device)
    check_choice(precision, _PRECISIONS, "--precision")
    check_choice(budget_clock, ("wall", "cpu"), "--budget-clock")
    recipe = _resolve_recipe(recipe_or_model)
    out_dir = out if out is not None else Path("runs") / recipe.name
    check_run_folder(out_dir, resume)
    if resume:
        stored = resume_recipe(out_dir)
        stored.name = stored.name or recipe.name
        recipe = stored
    overrides = {
        "data.path": None if data is None else str(data),
        "data.ferplus": None if ferplus is None else str(ferplus),
        "data.labels": labels,
        "data.cache_dir": None if cache_dir is None else str(cache_dir),
        "data.skip_bad": skip_bad or None,
        "data.val_fraction": val_fraction,
        "train.epochs": epochs,
        "train.time_budget": time_budget,
        "train.budget_clock": budget_clock,
        "train.seed": seed,
        "train.batch_size": batch_size,
        "train.device": device,
        "train.precision": precision,
        "optim.lr": lr,
        "model.init_from": init_from,
    }
    recipe = apply_overrides(recipe, overrides, where="command-line options")
    d = recipe.data
    if not d.path:
        raise FerlabError("no data: pass --data PATH or set data.path in the recipe")
    dataset = None
    # Under torchrun every process needs the data; only the first shows progress and warnings.
    if int(os.environ.get("RANK", "0")) == 0:
        dataset = load_from_cli(
            Path(d.path),
            None if d.ferplus is None else Path(d.ferplus),
            d.labels,
            None if d.cache_dir is None else Path(d.cache_dir),
            d.skip_bad,
            d.val_fraction,
            recipe.train.seed,
            d.ferplus_weight,
        )
    console = Console(stderr=True)
    result = train(
        recipe, data=dataset, out_dir=out_dir, resume=resume, progress=True, console=console
    )
    if result.interrupted:
        console.print(
            f"[yellow]interrupted[/]: saved {out_dir / 'last.pt'}; continue with\n"
            f"  ferlab train {recipe_or_model} --out {out_dir} --resume",
            highlight=False,
        )
        raise typer.Exit(130)
    m = result.metrics
    if as_json:
        typer.echo(json.dumps(m, indent=2))
        return
    test = m.get("test") or {}
    console.print(
        f"[bold]{m['name']}[/] ({m['stop_reason']}, {m['epochs']:g} epochs, "
        f"{_duration(m['train_time_s'])}): val {m['val']['accuracy']:.2%}"
        + (f", test {test['accuracy']:.2%} (tta {m['tta']})" if test else "")
        + f" → {result.out_dir}",
        highlight=False,
    )


def evaluate_cmd(
    model: str = typer.Argument(
        ...,
        metavar="CHECKPOINT",
        help="A checkpoint written by ferlab train (best.pt) or a shipped model: default, ferplus.",
    ),
    data: Path | None = typer.Option(
        None, "--data", help="Dataset path (default: the path the model was trained on)."
    ),
    split: str = typer.Option("test", "--split", help="val or test."),
    tta: str | None = typer.Option(
        None,
        "--tta",
        help="Test-time augmentation: none, flip, ten_crop (default: a shipped model's own, "
        "else none).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Also write confusion and misclassified-example PNGs here."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(512, "--batch-size", min=1, help="Images per forward pass."),
    ferplus: FerplusOption = None,
    labels: LabelsOption = None,
    cache_dir: CacheDirOption = None,
    skip_bad: SkipBadOption = False,
    val_fraction: ValFractionOption = None,
    as_json: bool = typer.Option(
        False, "--json", help="Print {accuracy, per_class, macro_f1, confusion, n, ...} as JSON."
    ),
    suite: str | None = typer.Option(
        None,
        "--suite",
        help="shifts: accuracy under each shift of real inputs (crops, detector, rotation, "
        "blur, JPEG, light, noise, occlusion) and their mean; --out gets its pictures.",
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="--suite shifts: the suite's seed."),
    max_images: int | None = typer.Option(
        None, "--max-images", min=1, help="--suite shifts: a seeded subset of this many faces."
    ),
) -> None:
    """Evaluate a checkpoint on the val or test split: accuracy, per-class accuracy, macro-F1.

    Data options left out default to those the model was trained with.
    """
    check_choice(split, ("val", "test"), "--split")
    check_choice(suite, ("shifts",), "--suite")
    if tta is not None:
        check_tta(tta)
    check_device(device)
    passive_openmp()
    from rich.table import Table

    from ferlab.cli.console import CliConsole
    from ferlab.engine.checkpoint import read_checkpoint
    from ferlab.engine.evaluate import evaluate_checkpoint
    from ferlab.inference import model_file

    dev = torch_device(device)
    checkpoint = model_file(model)
    if checkpoint.suffix.lower() == ".onnx":
        raise DataError("ferlab evaluate needs a PyTorch checkpoint (.pt)", path=checkpoint)
    stored = read_checkpoint(checkpoint)
    # A released model records the test-time augmentation it is meant to be used with.
    tta = resolve_tta(tta, stored.get("tta"))
    rd = stored["recipe"]
    trained = rd["data"]
    path = data if data is not None else trained.get("path")
    if not path:
        raise FerlabError("no data: pass --data PATH")
    use_labels = labels if labels is not None else trained["labels"]
    fp = ferplus if ferplus is not None else trained.get("ferplus")
    dataset = load_from_cli(
        Path(path),
        None if use_labels == "fer2013" or fp is None else Path(fp),
        use_labels,
        cache_dir if cache_dir is not None else trained.get("cache_dir"),
        skip_bad or trained["skip_bad"],
        val_fraction if val_fraction is not None else trained["val_fraction"],
        int(rd["train"]["seed"]),
    )
    if suite == "shifts":
        from ferlab.cli.shift_suite import run_suite_cmd

        run_suite_cmd(
            checkpoint,
            dataset,
            split=split,
            tta=tta,
            device=dev,
            out=out,
            seed=seed,
            max_images=max_images,
            as_json=as_json,
        )
        return
    result = evaluate_checkpoint(
        checkpoint, dataset, split=split, tta=tta, batch_size=batch_size, device=dev, out_dir=out
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table(
        title=f"{model} on {split} ({result['n']} images, tta {tta})",
        caption=f"accuracy {result['accuracy']:.2%} · macro-F1 {result['macro_f1']:.4f}",
    )
    table.add_column("class")
    table.add_column("accuracy", justify="right")
    for name, acc in result["per_class"].items():
        table.add_row(name, f"{acc:.2%}")
    CliConsole().print(table)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


def _unfinished_row(run_dir: Path) -> dict[str, Any]:
    """An unfinished run without its checkpoint (the small files kept in git): from config.yaml
    and history.csv."""
    from ferlab.report import read_run

    run = read_run(run_dir)
    last = run.history[-1] if run.history else {}
    return {
        "run": str(run_dir),
        "model": run.recipe.model.name,
        "params": None,
        "train_time_s": last.get("elapsed_s"),
        "epochs": run.epochs or 0,
        "status": "unfinished",
        "val_accuracy": max((h["val_acc"] for h in run.history if "val_acc" in h), default=None),
        "test_accuracy": None,
        "tta": None,
        "paper_accuracy": run.recipe.paper.reported_accuracy,
        "paper_source": run.recipe.paper.source,
    }


def _run_row(run_dir: Path) -> dict[str, Any]:
    """One run's summary from metrics.json, or from last.pt while it is unfinished."""
    from ferlab.engine.checkpoint import read_checkpoint

    metrics_path = run_dir / "metrics.json"
    if metrics_path.is_file():
        try:
            m = json.loads(metrics_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            msg = f"not valid JSON ({exc.msg})"
            raise DataError(msg, path=metrics_path, row=exc.lineno) from None
        test = m.get("test") or {}
        return {
            "run": str(run_dir),
            "model": m["model"],
            "params": m["params"],
            "train_time_s": m["train_time_s"],
            "epochs": m["epochs"],
            "status": m["stop_reason"],
            "val_accuracy": m["val"]["accuracy"],
            "test_accuracy": test.get("accuracy"),
            "tta": m.get("tta"),
            "paper_accuracy": m.get("paper", {}).get("reported_accuracy"),
            "paper_source": m.get("paper", {}).get("source", ""),
        }
    last = run_dir / "last.pt"
    if not last.is_file():
        if (run_dir / "config.yaml").is_file():
            return _unfinished_row(run_dir)
        raise DataError("not a run folder (no metrics.json, last.pt or config.yaml)", path=run_dir)
    ckpt = read_checkpoint(last)
    ts = ckpt["train_state"]
    paper = ckpt["recipe"].get("paper", {})
    n_params = sum(v.numel() for v in ckpt["state_dict"].values() if v.is_floating_point())
    return {
        "run": str(run_dir),
        "model": ckpt["model"]["name"],
        "params": n_params,
        "train_time_s": ts["elapsed"],
        "epochs": ts["epoch"],
        "status": "unfinished",
        "val_accuracy": ts["best_val"] if ts["best_val"] >= 0 else None,
        "test_accuracy": None,
        "tta": None,
        "paper_accuracy": paper.get("reported_accuracy"),
        "paper_source": paper.get("source", ""),
    }


def _millions(n: int | None) -> str:
    return "—" if n is None else f"{n / 1e6:.2f} M"


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def compare_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="Run folders written by ferlab train."),
    json_out: Path | None = typer.Option(
        None, "--json-out", help="Also write the rows as a JSON list to this file."
    ),
    report: Path | None = typer.Option(
        None,
        "--report",
        help="Also write the reproduction report (Markdown, e.g. docs/reproduction.md): one row "
        "per configuration of the papers' tables, the runs' mean ± s.d. over seeds beside the "
        "paper's number, and conclusions computed from the runs.",
    ),
    figures: Path | None = typer.Option(
        None, "--figures", help="Folder of the report's figures (default: figures/ beside it)."
    ),
    plan: Path = typer.Option(
        Path("benchmarks/reproduction.yaml"),
        "--plan",
        help="The report's configurations, schedules and side checks.",
    ),
    schedule: str | None = typer.Option(
        None,
        "--schedule",
        help="Which of the plan's schedules the runs follow (default: the plan's, 'paper').",
    ),
    embed: list[Path] = typer.Option(
        [],
        "--embed",
        help="A doc whose <!-- reproduction: PAPER --> blocks get the same paper sections "
        "(repeatable), e.g. docs/facial_attention.md.",
    ),
) -> None:
    """Compare runs as a Markdown table: model, parameters, time, val/test and paper accuracy.

    Unfinished runs show their best validation accuracy so far. With --report, also write the
    reproduction report (see docs/training.md, "Reproduction report").
    """
    rows = [_run_row(Path(d)) for d in run_dirs]
    lines = [
        "| run | model | params | training time | epochs | val acc % | test acc % | paper % |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        status = "" if r["status"] in ("completed", "early_stopping") else f" ({r['status']})"
        paper = "—" if r["paper_accuracy"] is None else f"{r['paper_accuracy']:.2f}"
        if r["paper_source"]:
            paper += f" ({r['paper_source']})"
        lines.append(
            f"| {Path(r['run']).name}{status} | {r['model']} | {_millions(r['params'])} | "
            f"{_duration(r['train_time_s'])} | {r['epochs']:g} | {_pct(r['val_accuracy'])} | "
            f"{_pct(r['test_accuracy'])} | {paper} |"
        )
    typer.echo("\n".join(lines))
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    if report is not None:
        from ferlab.report import write_report

        write_report(run_dirs, plan, report, figures, schedule=schedule, embed=embed)
        typer.echo(f"wrote {report}", err=True)
