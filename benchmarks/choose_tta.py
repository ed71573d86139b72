"""Choose a model's default test-time augmentation by measurement: PublicTest and the shift suite.

For the model and a baseline (the shipped ``default`` unless told otherwise), measured side by
side in the same run on the same seeded PublicTest faces, every test-time augmentation the
inference core offers (:data:`ferlab.inference.TTA_CHOICES`: ``none``, ``flip``, ``ten_crop``)
is scored on the plain faces and under every shift of :mod:`ferlab.engine.shifts`. A TTA
*raises the shift suite* when its suite mean beats the same model's ``none`` with the 95 %
paired bootstrap interval of the difference (over faces) above zero. Of the TTAs that raise it,
the choice is the cheapest (fewest network inputs per face) whose suite mean is not measurably
below the best one's (the paired interval of its difference to the best reaches zero); if none
raises it, ``none`` (one view per face). Plain PublicTest accuracy is
shown beside it, and a choice that lowers it is flagged. PrivateTest is never read here:
selection happens on PublicTest only (issue 18, part 3).

Writes into ``--out`` (default ``benchmarks/results/choose_tta/<model>``): ``choose_tta.json``
(every number), ``choose_tta.md`` (the table and the decision) and ``choose_tta.png`` (accuracy
per shift, one bar per model and TTA); ``--write`` puts the figure into
``docs/img/benchmarks/choose_tta_<model>.png`` instead and the table into the "Default
test-time augmentation" section of ``docs/benchmarks.md``.

Usage: ``python benchmarks/choose_tta.py MODEL [--baseline default] [--limit N] [--seed 0]``
(``MODEL``: a shipped name or a checkpoint such as ``checkpoints/default_robust/best.pt``;
``--baseline none`` measures the model alone). Cost, measured: 300 faces took 9.3 minutes for
the three TTAs of one model (ten-crop 81 % of it) on one thread of the 2-core Intel Xeon
(AVX-512 BF16) with other jobs running (load average 9); the time grows with the faces.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import torch
from doc_section import machine, write_doc_section
from shift_suite import DATA, SHIFTED, paired_interval, per_face_scores, sample

import ferlab
from ferlab.data import load_dataset
from ferlab.engine.shifts import SHIFT_NAMES, plot_results, run_shift_suite
from ferlab.inference import TTA_CHOICES, TTA_VIEWS

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Default test-time augmentation"


def compare(results: dict[str, dict[str, dict]], seed: int) -> dict[str, dict[str, dict]]:
    """For each model and TTA: clean and suite mean, their differences to ``none``, and the
    interval of its suite-mean difference to each other TTA of the same model."""
    out: dict[str, dict[str, dict]] = {}
    for model, by_tta in results.items():
        scores = {tta: per_face_scores(r) for tta, r in by_tta.items()}
        ref_clean, ref_shift = scores["none"]
        out[model] = {}
        for tta, r in by_tta.items():
            clean, shifted = scores[tta]
            out[model][tta] = {
                "views": TTA_VIEWS.get(tta),
                "clean": float(clean.mean()),
                "mean": float(shifted.mean()),
                "shifts": {n: r["shifts"][n]["accuracy"] for n in SHIFT_NAMES},
                "found": r["shifts"]["frame"].get("found"),
                "clean_vs_none": float((clean - ref_clean).mean()),
                "clean_vs_none_ci": paired_interval(clean - ref_clean, seed),
                "mean_vs_none": float((shifted - ref_shift).mean()),
                "mean_vs_none_ci": paired_interval(shifted - ref_shift, seed),
                "mean_vs_ci": {
                    other: paired_interval(shifted - s[1], seed)
                    for other, s in scores.items()
                    if other != tta
                },
                "seconds": r["seconds"],
            }
    return out


def choose(rows: dict[str, dict]) -> dict[str, Any]:
    """The cheapest TTA that raises the suite mean over ``none`` (interval above zero) and is
    not measurably below the one that raises it most; ``none`` if no TTA raises it."""
    raising = [t for t, r in rows.items() if t != "none" and r["mean_vs_none_ci"][0] > 0]
    tta = "none"
    if raising:
        best = max(raising, key=lambda t: rows[t]["mean"])
        # A TTA as good as the best within noise costs fewer views: take the cheapest such.
        as_good = [t for t in raising if t == best or rows[t]["mean_vs_ci"][best][1] >= 0]
        tta = min(as_good, key=lambda t: (rows[t]["views"], -rows[t]["mean"]))
    r = rows[tta]
    if tta == "none":
        why = (
            "no TTA raises the shift-suite mean over `none` beyond noise (95 % paired bootstrap "
            "interval above zero), so the cheapest, `none`, is the default"
        )
    else:
        lo, hi = (100 * v for v in r["mean_vs_none_ci"])
        why = (
            f"`{tta}` raises the shift-suite mean by {100 * r['mean_vs_none']:+.2f} points over "
            f"`none` (95 % interval {lo:+.2f} … {hi:+.2f}) at {r['views']}× the cost per face"
        )
        if tta != best:
            d = 100 * (r["mean"] - rows[best]["mean"])
            why += f", within noise of `{best}` ({d:+.2f} points) at fewer views"
    lowers_clean = r["clean_vs_none_ci"][1] < 0
    if lowers_clean:
        why += "; it lowers plain PublicTest accuracy beyond noise"
    return {"tta": tta, "why": why, "lowers_clean": lowers_clean}


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f}"


def diff(v: float, ci: tuple[float, float], tta: str) -> str:
    if tta == "none":
        return "–"
    return f"{100 * v:+.2f} [{100 * ci[0]:+.2f}, {100 * ci[1]:+.2f}]"


def table(summary: dict[str, dict[str, dict]]) -> list[str]:
    """Markdown: one row per model and TTA, then each model's row difference to the baseline."""
    lines = [
        "| model | TTA | views | PublicTest | Δ vs none [95 %] | **shift mean** | "
        "Δ vs none [95 %] | " + " | ".join(SHIFTED) + " |",
        "|---|---|---:|---:|---|---:|---|" + "---:|" * len(SHIFTED),
    ]
    for model, rows in summary.items():
        for tta, r in rows.items():
            cells = [
                model,
                f"`{tta}`",
                str(r["views"]),
                pct(r["clean"]),
                diff(r["clean_vs_none"], r["clean_vs_none_ci"], tta),
                f"**{pct(r['mean'])}**",
                diff(r["mean_vs_none"], r["mean_vs_none_ci"], tta),
                *[pct(r["shifts"][n]) for n in SHIFTED],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    models = list(summary)
    if len(models) == 2:
        model, base = models
        for tta in [t for t in summary[model] if t in summary[base]]:
            a, b = summary[model][tta], summary[base][tta]
            cells = [
                f"{model} − {base}",
                f"`{tta}`",
                "",
                f"{100 * (a['clean'] - b['clean']):+.2f}",
                "",
                f"**{100 * (a['mean'] - b['mean']):+.2f}**",
                "",
                *[f"{100 * (a['shifts'][n] - b['shifts'][n]):+.2f}" for n in SHIFTED],
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def label_of(spec: str) -> str:
    """A short name for a model: a shipped name, or the checkpoint's folder and file stem."""
    path = Path(spec)
    if path.suffix:
        return f"{path.parent.name}/{path.stem}" if path.parent.name else path.stem
    return spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="shipped name or checkpoint (.pt / .onnx)")
    parser.add_argument("--baseline", default="default", help="'none' for no baseline")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--ferplus",
        type=Path,
        default=None,
        help="FER+ votes (fer2013new.csv): score FER+ majority labels, for 8-class models",
    )
    parser.add_argument("--limit", type=int, default=None, help="PublicTest faces (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tta", nargs="+", default=list(TTA_CHOICES), choices=TTA_CHOICES)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if "none" not in args.tta:
        parser.error("--tta must include none: every TTA is compared with it")
    if args.limit is not None and args.limit < 2:
        parser.error("--limit must be at least 2 faces")
    load = os.getloadavg()[0]
    torch.set_num_threads(args.torch_threads)
    labels = "fer2013" if args.ferplus is None else "ferplus-majority"
    data = load_dataset(args.data, ferplus=args.ferplus, labels=labels, progress=False)
    args.labels = "FER2013" if args.ferplus is None else "FER+ (majority labels)"
    part = sample(data.subset("val"), args.limit, args.seed)  # PublicTest only, never test
    specs = [args.model] + ([] if args.baseline == "none" else [args.baseline])
    results: dict[str, dict[str, dict]] = {}
    for spec in specs:
        base = ferlab.load_model(spec, runtime="torch")
        label = label_of(spec) + (" (baseline)" if label_of(spec) in results else "")
        results[label] = {}
        for tta in args.tta:
            start = time.perf_counter()
            r = run_shift_suite(
                base.with_tta(tta),
                part.images,
                part.labels,
                data.classes,
                seed=args.seed,
                progress=True,
                per_face=True,
            )
            r["seconds"] = round(time.perf_counter() - start, 1)
            results[label][tta] = r
            print(f"{label} ({tta}): PublicTest {r['clean']:.2%}, shift mean {r['mean']:.2%}")
    summary = compare(results, args.seed)
    decisions = {model: choose(rows) for model, rows in summary.items()}
    name = slug(label_of(args.model))
    out = args.out or REPO / "benchmarks" / "results" / "choose_tta" / name
    out.mkdir(parents=True, exist_ok=True)
    # With --write the figure goes where docs/benchmarks.md's pictures live.
    img = REPO / "docs" / "img" / "benchmarks" / f"choose_tta_{name}.png"
    figure = plot_results(
        {f"{m} ({t})": results[m][t] for m in results for t in results[m]},
        img if args.write else out / "choose_tta.png",
        f"Shift suite by test-time augmentation, {args.labels} PublicTest ({len(part)} faces)",
    )
    command = "python benchmarks/choose_tta.py " + " ".join(
        [args.model, f"--baseline {args.baseline}", f"--seed {args.seed}"]
        + ([f"--limit {args.limit}"] if args.limit else [])
        + ([f"--ferplus {args.ferplus}"] if args.ferplus else [])
    )
    doc = report(args, summary, decisions, command, len(part), load, figure)
    record = {
        "command": command,
        "split": "val (PublicTest)",
        "n": len(part),
        "seed": args.seed,
        "machine": machine(load),
        "date": dt.date.today().isoformat(),
        "models": summary,
        "decision": decisions,
    }
    (out / "choose_tta.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    (out / "choose_tta.md").write_text("\n".join(doc) + "\n", encoding="utf-8")
    print("\n".join(doc))
    print(f"\nwritten: {out}/choose_tta.{{json,md}}, {figure}")
    if args.write:
        write_doc_section(doc)


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def report(args, summary, decisions, command, n, load, figure: Path) -> list[str]:
    """The markdown section: what was run, the table, the figure and the decision per model."""
    try:
        shown = figure.resolve().relative_to((REPO / "docs").resolve())
    except ValueError:
        shown = Path(os.path.relpath(figure.resolve(), (REPO / "docs").resolve()))
    lines = [
        SECTION,
        "",
        f"Script: `{command}`. Measured {dt.date.today().isoformat()} on {machine(load)}, "
        f"{args.torch_threads} torch thread(s). {args.labels} PublicTest, {n} faces "
        "(PrivateTest is not read); accuracy in %, every model and TTA on the same seeded "
        "faces and shifted images. *shift mean*: mean over the twelve shifted columns of the suite "
        "(`src/ferlab/engine/shifts.py`); Δ vs none: the same model without TTA, with the 95 % "
        "paired bootstrap interval over faces; views: network inputs per face.",
        "",
        *table(summary),
        "",
        f"![choose_tta]({shown.as_posix()})",
        "",
    ]
    for model, d in decisions.items():
        lines.append(f"- **{model}**: default TTA **`{d['tta']}`**: {d['why']}.")
    return lines


if __name__ == "__main__":
    main()
