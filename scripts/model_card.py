"""Write a model's robustness card into ``docs/models.md`` from recorded files, not typed numbers.

    python scripts/model_card.py default --shifts benchmarks/results/shift_suite/val.json
    python scripts/model_card.py default --shifts runs/shifts_test/shifts.json \\
        --note "the default shipped since issue 18"

Reads the checkpoint's recorded metrics (accuracy, per-class recall and the confusion matrix of
each split it was evaluated on), its training record (steps, time, precision, hardware: the
``training`` entry a shipped model carries, else the ``metrics.json`` beside a run's
checkpoint) and a shift-suite result (``ferlab evaluate MODEL --suite shifts --out DIR`` writes
``DIR/shifts.json``; ``benchmarks/shift_suite.py`` writes several models into one file: pick one
with ``FILE:LABEL``, the first by default). The section ``## Robustness card: `NAME``` holds
per class, per shift and per shift and class tables, the failure modes those numbers show
(weakest classes and what they are taken for, the shifts that cost most, the class each shift
hurts most) and the training cost and hardware. Nothing is measured here: rerun the measurement,
then this script.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferlab.markdown import write_section  # noqa: E402

CARD = ROOT / "docs" / "models.md"
SPLITS = {"val": "PublicTest", "test": "PrivateTest"}


def pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}"


def read_shifts(spec: str) -> tuple[str, dict[str, Any]]:
    """A shift-suite result from ``FILE`` or ``FILE:LABEL``, and the label it is shown under."""
    path, _, label = spec.partition(":") if not Path(spec).is_file() else (spec, "", "")
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "shifts" in data:  # one model: ``ferlab evaluate --suite shifts`` output
        return label or f"{Path(data.get('checkpoint', path)).name} ({data.get('tta')})", data
    if not data:
        raise SystemExit(f"{path}: holds no shift-suite result")
    label = label or next(iter(data))
    if label not in data:
        raise SystemExit(f"{path}: no result '{label}'; it holds {', '.join(data)}")
    # benchmarks/shift_suite.py names its files after the split (val.json, test.json).
    split = Path(path).stem if Path(path).stem in SPLITS else None
    return label, {"split": split, **data[label]}


def per_class_rows(metrics: dict[str, Any]) -> list[str]:
    """Recall and precision of each class on each recorded split, and its commonest mistake."""
    splits = [s for s in SPLITS if s in metrics]
    classes = list(metrics[splits[0]]["per_class"])
    head = ["class"]
    for s in splits:
        head += [f"{SPLITS[s]} recall", f"{SPLITS[s]} precision"]
    head.append(f"most often taken for ({SPLITS[splits[-1]]})")
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (2 * len(splits)) + "---|"]
    for k, c in enumerate(classes):
        cells = [c]
        for s in splits:
            cm = metrics[s].get("confusion")
            column = sum(row[k] for row in cm) if cm else 0
            cells += [pct(metrics[s]["per_class"][c]), pct(cm[k][k] / column if column else None)]
        name, share = top_confusion(metrics[splits[-1]].get("confusion"), classes, k)
        cells.append(f"{name} ({pct(share)} %)" if name else "–")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def top_confusion(
    cm: list[list[int]] | None, classes: list[str], k: int
) -> tuple[str | None, float]:
    """The class most faces of class ``k`` are wrongly called, and the share of them (none
    without a recorded confusion matrix)."""
    if not cm:
        return None, 0.0
    row = cm[k]
    wrong = [(n, j) for j, n in enumerate(row) if j != k]
    n, j = max(wrong) if wrong else (0, -1)
    total = sum(row)
    return (classes[j], n / total) if n and total else (None, 0.0)


def shift_rows(result: dict[str, Any], classes: list[str]) -> list[str]:
    """Per shift: accuracy, change from the plain faces, and recall of every class."""
    clean = result["shifts"]["clean"]
    lines = [
        "| shift | accuracy | Δ vs clean | " + " | ".join(classes) + " |",
        "|---|---:|---:|" + "---:|" * len(classes),
    ]
    for name, row in result["shifts"].items():
        found = f" ({row['found']} of {row['n']} found)" if "found" in row else ""
        delta = "" if name == "clean" else f"{100 * (row['accuracy'] - clean['accuracy']):+.1f}"
        cells = [name + found, pct(row["accuracy"]), delta]
        cells += [pct(row["per_class"].get(c)) for c in classes]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"| **mean of the shifted columns** | **{pct(result['mean'])}** |"
        + " |" * (1 + len(classes))
    )
    return lines


def failure_modes(metrics: dict[str, Any], result: dict[str, Any] | None) -> list[str]:
    """Sentences read off the numbers: weakest classes, costliest shifts, most-hurt classes."""
    split = "test" if "test" in metrics else "val"
    m = metrics[split]
    classes = list(m["per_class"])
    out = []
    for c in sorted(classes, key=lambda c: m["per_class"][c])[:3]:
        name, share = top_confusion(m.get("confusion"), classes, classes.index(c))
        taken = f"; {pct(share)} % of its faces are called *{name}*" if name else ""
        out.append(f"- *{c}*: {pct(m['per_class'][c])} % recall on {SPLITS[split]}{taken}.")
    if result is None:
        return out
    clean = result["shifts"]["clean"]
    shifted = {n: r for n, r in result["shifts"].items() if n != "clean"}
    for n in sorted(shifted, key=lambda n: shifted[n]["accuracy"])[:3]:
        r = shifted[n]
        drops = {
            c: clean["per_class"][c] - r["per_class"][c]
            for c in classes
            if r["per_class"].get(c) is not None and clean["per_class"].get(c) is not None
        }
        worst = max(drops, key=drops.get) if drops else None
        hurt = (
            f"; *{worst}* suffers most ({pct(clean['per_class'][worst])} → "
            f"{pct(r['per_class'][worst])} %)"
            if worst
            else ""
        )
        out.append(
            f"- Under *{n}* accuracy falls to {pct(r['accuracy'])} % "
            f"({100 * (r['accuracy'] - clean['accuracy']):+.1f} points){hurt}."
        )
    if "frame" in shifted and "found" in shifted["frame"]:
        f = shifted["frame"]
        out.append(
            f"- In larger frames the recognizer's detector finds {f['found']} of {f['n']} faces; "
            "the others count as wrong."
        )
    return out


def training_lines(ckpt: dict[str, Any], path: Path, params: int) -> list[str]:
    """Training cost and hardware, from the checkpoint's record or the run's metrics.json."""
    t = dict(ckpt.get("training") or {})
    run_metrics = path.parent / "metrics.json"
    if not t and run_metrics.is_file():
        t = json.loads(run_metrics.read_text(encoding="utf-8"))
    sizes = [f"`{path.name}` {path.stat().st_size / 1e6:.1f} MB"]
    twin = path.with_suffix(".onnx")
    if twin.is_file():
        sizes.append(f"`{twin.name}` {twin.stat().st_size / 1e6:.1f} MB")
    init = ckpt.get("init_from")
    rows = [
        ("recipe", f"`{(ckpt.get('recipe') or {}).get('name', '–')}`"),
        (
            "started from",
            f"`{Path(init['path']).name}` (SHA-256 {init['sha256'][:12]}…)" if init else "scratch",
        ),
        (
            "epochs (best)",
            f"{t['epochs']:.4g} (best {t.get('best_epoch', float('nan')):.4g})"
            if "epochs" in t
            else "–",
        ),
        ("optimiser steps", f"{t['steps']:,}" if "steps" in t else "–"),
        (
            "wall-clock training time",
            f"{t['train_time_s'] / 3600:.2f} h" if "train_time_s" in t else "–",
        ),
        (
            "CPU time of the training process",
            f"{t['cpu_time_s'] / 3600:.2f} h" if "cpu_time_s" in t else "–",
        ),
        ("precision", str(t.get("precision", "–"))),
        ("hardware", str(t.get("hardware", "not recorded"))),
        ("parameters", f"{params:,}"),
        ("weights", ", ".join(sizes)),
    ]
    return ["| | |", "|---|---|", *[f"| {k} | {v} |" for k, v in rows]]


def card(name: str, note: str, shifts: str | None, command: str) -> list[str]:
    from ferlab.engine.checkpoint import load_checkpoint
    from ferlab.inference import model_file
    from ferlab.labels import canonical_metrics

    path = model_file(name)
    network, ckpt = load_checkpoint(path)
    params = sum(p.numel() for p in network.parameters())
    metrics = {k: v for k, v in (ckpt.get("metrics") or {}).items() if k in SPLITS}
    # A run's checkpoints leave the confusion matrices to the run's metrics.json beside them.
    run_metrics = path.parent / "metrics.json"
    if run_metrics.is_file() and not all("confusion" in m for m in metrics.values()):
        recorded = canonical_metrics(json.loads(run_metrics.read_text(encoding="utf-8")))
        metrics = {k: recorded[k] for k in SPLITS if "confusion" in recorded.get(k, {})} or metrics
    if not metrics:
        raise SystemExit(f"{path}: records no evaluated split (metrics val/test)")
    label, result = read_shifts(shifts) if shifts else (None, None)
    classes = list(next(iter(metrics.values()))["per_class"])
    lines = [
        f"## Robustness card: `{name}`",
        "",
        f"*{note}.* Generated by `{command}` from the checkpoint's recorded metrics"
        + (f" and the shift-suite result `{shifts}`" if shifts else "")
        + "; rerun it after measuring again.",
        "",
        "Per class ("
        + ", ".join(f"{SPLITS[k]} {m['n']} faces" for k, m in metrics.items() if "n" in m)
        + "; recall: share of the class's faces called right; precision: share of the faces "
        f"called this class that are; TTA `{ckpt.get('tta', 'none')}`; %):",
        "",
        *per_class_rows(metrics),
        "",
    ]
    if result is not None:
        split = result.get("split")
        where = f"FER2013 {SPLITS.get(split, split)}" if split else "FER2013 (split not recorded)"
        lines += [
            f"Per shift ({where}, {result['n']} faces, seed {result['seed']}, `{label}`; "
            "accuracy and per-class recall in %; a rare class's recall, disgust's above all, "
            "rests on few faces):",
            "",
            *shift_rows(result, classes),
            "",
        ]
    lines += [
        "Failure modes the numbers show:",
        "",
        *failure_modes(metrics, result),
        "",
        "Training cost and hardware:",
        "",
        *training_lines(ckpt, path, params),
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="shipped model name or checkpoint path")
    parser.add_argument("--shifts", help="shift-suite JSON, FILE or FILE:LABEL")
    parser.add_argument("--note", default="Measured from the files named below")
    parser.add_argument("--card", type=Path, default=CARD)
    args = parser.parse_args(argv)
    command = shlex.join(
        ["python", "scripts/model_card.py", args.model]
        + (["--shifts", args.shifts] if args.shifts else [])
        + (["--note", args.note] if args.note != parser.get_default("note") else [])
    )
    lines = card(args.model, args.note, args.shifts, command)
    write_section(lines, args.card)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
