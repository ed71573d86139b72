"""The shift suite, side by side: accuracy of several models under each shift of real inputs.

Runs :func:`ferlab.engine.shifts.run_shift_suite` for every model given (the first is the
reference every other row is compared with) on the same seeded faces, and writes:

* ``benchmarks/results/shift_suite/<split>.json``: every model's full result;
* ``docs/img/benchmarks/shift_suite_<split>.png``: the bar chart, and
  ``docs/img/benchmarks/shift_examples.png``: one example row per shift;
* with ``--write``, the "Shift suite" section of ``docs/benchmarks.md``.

A model is ``NAME_OR_CHECKPOINT[:TTA]`` (``default:ten_crop``, ``default:none``,
``checkpoints/run/best.pt``); without ``:TTA`` the model's own test-time augmentation is used.
Selection work runs on PublicTest (``--split val``, the default). PrivateTest (``--split test``)
is for the one final, side-by-side evaluation of the shipped candidate and needs ``--final``.

Usage: ``python benchmarks/shift_suite.py default:ten_crop default:none [--max-images N]
[--seed 0] [--write]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from doc_section import machine, write_doc_section

import ferlab
from ferlab.data import FERData, load_dataset
from ferlab.engine.shifts import (
    SHIFT_NAMES,
    SHIFTS,
    plot_examples,
    plot_results,
    run_shift_suite,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"
SECTION = "## Shift suite"
SHIFTED = [n for n in SHIFT_NAMES if n != "clean"]


def parse_model(spec: str) -> tuple[str, str | None]:
    name, _, tta = spec.partition(":")
    return name, (tta or None)


def per_face_scores(result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per face: correct on the plain face (0/1), and the share of the shifted columns it is
    classified correctly in (whose mean over faces is the suite's mean)."""
    cols = result["shifts"]
    clean = cols["clean"]["correct"].astype(np.float64)
    shifted = np.mean([cols[n]["correct"] for n in SHIFTED], axis=0)
    return clean, shifted


def paired_interval(diff: np.ndarray, seed: int, rounds: int = 2000) -> tuple[float, float]:
    """95 % bootstrap interval of the mean of per-face differences (faces resampled)."""
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), (rounds, len(diff)))].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def versus_reference(results: dict[str, dict], seed: int) -> None:
    """Give every model after the first (the reference) ``vs_reference``: per column and for the
    mean, its accuracy difference to the reference and the 95 % paired bootstrap interval of
    it over faces; then drop the per-face arrays (not JSON)."""
    ref = next(iter(results.values()))
    ref_shifted = per_face_scores(ref)[1]
    for r in list(results.values())[1:]:
        vs = {}
        for name in SHIFT_NAMES:
            d = r["shifts"][name]["correct"].astype(np.float64) - ref["shifts"][name]["correct"]
            vs[name] = {"diff": float(d.mean()), "ci": paired_interval(d, seed)}
        d = per_face_scores(r)[1] - ref_shifted
        vs["mean"] = {"diff": float(d.mean()), "ci": paired_interval(d, seed)}
        r["vs_reference"] = vs
    for r in results.values():
        for column in r["shifts"].values():
            column.pop("correct", None)


def sample(part: FERData, limit: int | None, seed: int) -> FERData:
    """At most ``limit`` faces of ``part``, drawn by ``seed``, in their original order (the same
    faces for every model and every script that uses the same seed)."""
    if limit is None or len(part) <= limit:
        return part
    pick = torch.randperm(len(part), generator=torch.Generator().manual_seed(seed))
    return part.select(pick[:limit].sort().values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "models", nargs="+", help="NAME_OR_CHECKPOINT[:TTA]; the first is the reference"
    )
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--final", action="store_true", help="allow --split test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-images", type=int, default=None)
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if args.split == "test" and not args.final:
        parser.error("PrivateTest is evaluated once, at the end: pass --final with --split test")
    load = os.getloadavg()[0]
    torch.set_num_threads(args.torch_threads)
    data = load_dataset(args.data, progress=False)
    part, classes = sample(data.subset(args.split), args.max_images, args.seed), data.classes
    results: dict[str, dict] = {}
    for spec in args.models:
        name, tta = parse_model(spec)
        model = ferlab.load_model(name, tta=tta)
        label = f"{name} ({model.tta})"
        start = time.perf_counter()
        r = run_shift_suite(
            model, part.images, part.labels, classes, seed=args.seed, progress=True, per_face=True
        )
        r["seconds"] = round(time.perf_counter() - start, 1)
        r["tta"] = model.tta
        results[label] = r
        print(
            f"{label}: clean {r['clean']:.2%}, mean over shifts {r['mean']:.2%} ({r['seconds']} s)"
        )
    versus_reference(results, args.seed)
    out = REPO / "benchmarks" / "results" / "shift_suite"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.split}.json").write_text(json.dumps(results, indent=2) + "\n")
    img = REPO / "docs" / "img" / "benchmarks"
    split_name = {"val": "PublicTest", "test": "PrivateTest"}[args.split]
    plot_results(
        results, img / f"shift_suite_{args.split}.png", f"Shift suite on FER2013 {split_name}"
    )
    if args.split == "val":  # the example figure shows PublicTest faces only
        plot_examples(part.images[:8], img / "shift_examples.png", seed=args.seed)
    lines = table(results)
    print("\n".join(lines))
    if args.write:
        write_section(args, results, lines, split_name, load)


def table(results: dict[str, dict]) -> list[str]:
    """Markdown rows: accuracy per shift and mean, then each model's difference to the first."""
    names = [s.name for s in SHIFTS]
    lines = [
        "| model | " + " | ".join(names) + " | **mean** |",
        "|---|" + "---:|" * (len(names) + 1),
    ]

    def row(label: str, values: list[float]) -> str:
        return f"| {label} | " + " | ".join(values[:-1]) + f" | **{values[-1]}** |"

    def accs(r: dict) -> list[float]:
        return [r["shifts"][n]["accuracy"] for n in names] + [r["mean"]]

    ref_label, ref = next(iter(results.items()))
    for label, r in results.items():
        lines.append(row(label, [f"{100 * a:.2f}" for a in accs(r)]))
    for label, r in list(results.items())[1:]:
        diff = [100 * (a - b) for a, b in zip(accs(r), accs(ref), strict=True)]
        vs = r.get("vs_reference", {})
        # *: the paired interval over faces excludes zero (a difference beyond noise).
        marks = [
            "*" if c in vs and (vs[c]["ci"][0] > 0 or vs[c]["ci"][1] < 0) else ""
            for c in [*names, "mean"]
        ]
        cells = [f"{d:+.2f}{m}" for d, m in zip(diff, marks, strict=True)]
        lines.append(row(f"{label} − {ref_label}", cells))
    return lines


def write_section(args, results, lines, split_name, load) -> None:
    ref_label = next(iter(results))
    n = next(iter(results.values()))["n"]
    frame = {k: r["shifts"]["frame"].get("found") for k, r in results.items()}
    # PrivateTest (--final) gets its own section: the PublicTest one is where selection happened.
    heading = SECTION if args.split == "val" else f"{SECTION} on PrivateTest (evaluated once)"
    doc = [
        heading,
        "",
        f"Script: `benchmarks/shift_suite.py {' '.join(args.models)} --seed {args.seed}"
        + (f" --max-images {args.max_images}" if args.max_images else "")
        + (" --split test --final" if args.split == "test" else "")
        + f"`. Measured {dt.date.today().isoformat()} on {machine(load)}, "
        f"{args.torch_threads} torch thread(s). FER2013 {split_name}, {n} faces; accuracy in %, "
        f"every model on the same seeded images; the reference row is `{ref_label}`.",
        "",
        *lines,
        "",
        f"![shift suite](img/benchmarks/shift_suite_{args.split}.png)",
        "",
        "What each column does (`src/ferlab/engine/shifts.py`), one example row each:",
        "",
        "| column | shift |",
        "|---|---|",
        *[f"| {s.name} | {s.description} |" for s in SHIFTS],
        "",
        "![the shifts](img/benchmarks/shift_examples.png)",
        "",
        "`frame`: each face is magnified 3× and pasted into a 320×240 frame with a textured "
        "background; the public `ferlab.Recognizer` (its detector, eye alignment and crop) finds "
        "it, and a face it does not find counts as wrong. Faces found: "
        + ", ".join(f"{k}: {v} of {n}" for k, v in frame.items())
        + ". The mean is over the twelve shifted columns (`clean` excluded). A difference "
        "marked * lies beyond noise: its 95 % paired bootstrap interval over faces excludes "
        "zero (`vs_reference` in the JSON file holds every interval).",
    ]
    write_doc_section(doc)


if __name__ == "__main__":
    main()
