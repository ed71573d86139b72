"""Faithfulness of the heat maps at scale: the deletion test on real PublicTest faces.

For each Grad-CAM family method, deletes the input pixels in the order the method's map ranks
them, and in random orders measured side by side on the same faces (random regions as smooth
as the maps, ``blobs``, and scattered random pixels, ``pixels``), and reports the deletion score
(area under the explained class's probability as pixels are deleted; lower is faster) and the
share of faces on which the map's order wins. See ``ferlab.explain.faithfulness``.

Writes ``benchmarks/results/deletion_test.json``, ``docs/img/benchmarks/deletion_curves.png``
and, with ``--write``, the "Explanation faithfulness" section of ``docs/benchmarks.md``.

Usage: ``python benchmarks/deletion_test.py [--model default] [--faces 200] [--write]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from doc_section import machine, write_doc_section

import ferlab
from ferlab.data import load_dataset
from ferlab.explain import CAM_METHODS
from ferlab.explain.faithfulness import BASELINES, FRACTIONS, deletion_test

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"
SECTION = "## Explanation faithfulness (deletion test)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--faces", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="random orders per face")
    parser.add_argument("--methods", nargs="+", default=list(CAM_METHODS), choices=CAM_METHODS)
    parser.add_argument(
        "--pixels",
        nargs="*",
        default=None,
        help="methods also run against scattered pixels (default: all)",
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    torch.set_num_threads(args.torch_threads)
    part = load_dataset(args.data, progress=False).subset("val")
    pick = torch.randperm(len(part), generator=torch.Generator().manual_seed(args.seed))
    faces = part.images[pick[: args.faces].sort().values].numpy()
    model = ferlab.load_model(args.model, tta="none", device="cpu")
    rows, curves = [], {}
    pixels = args.methods if args.pixels is None else args.pixels
    for method in args.methods:
        for baseline in BASELINES:
            if baseline == "pixels" and method not in pixels:
                continue
            start = time.perf_counter()
            r = deletion_test(
                model, faces, method, baseline=baseline, repeats=args.repeats, seed=args.seed
            )
            rows.append(
                {
                    "method": method,
                    "baseline": baseline,
                    "map_score": float(r.map_score.mean()),
                    "random_score": float(r.random_score.mean()),
                    "gap": r.gap,
                    "faster": r.faster,
                    "seconds": round(time.perf_counter() - start, 1),
                }
            )
            curves[method] = r.map_curve.mean(0).tolist()
            # The random orders are the same for every method (same seed, same faces).
            curves[f"random {baseline}"] = r.random_curve.mean(0).tolist()
            print(rows[-1])
    out = REPO / "benchmarks" / "results" / "deletion_test.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "curves": curves, "fractions": FRACTIONS}, indent=2))
    figure = plot(curves, REPO / "docs" / "img" / "benchmarks" / "deletion_curves.png", args)
    lines = table(rows)
    print("\n".join(lines))
    if args.write:
        write_doc_section(
            [
                SECTION,
                "",
                f"Script: `benchmarks/deletion_test.py --model {args.model} --faces {args.faces} "
                f"--seed {args.seed} --repeats {args.repeats}"
                + (f" --pixels {' '.join(args.pixels)}" if args.pixels is not None else "")
                + f"`. Measured {dt.date.today().isoformat()} on {machine(load)}, "
                f"{args.torch_threads} torch thread(s). Model: `{args.model}`, centre view, "
                f"no TTA; {args.faces} seeded PublicTest faces; maps explain the predicted class.",
                "",
                "Deleted pixels take the face's mean input value. Deletion score: the area under "
                "the explained class's probability as 0-50 % of the input pixels are deleted "
                "(lower = fell faster). The reference is a random order measured on the same "
                "faces in the same run: `blobs` (random maps as smooth as the method's, so both "
                "delete compact regions) and `pixels` (scattered pixels). Ratio = map score / "
                "random score (below 1: the map is the better guide to the evidence).",
                "",
                *lines,
                "",
                f"![deletion curves](img/benchmarks/{figure.name})",
            ]
        )


def table(rows: list[dict]) -> list[str]:
    lines = [
        "| method | random reference | map score | random score | ratio "
        "| faces where the map is faster |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['baseline']} | {r['map_score']:.3f} | {r['random_score']:.3f} "
            f"| {r['map_score'] / r['random_score']:.2f} | {100 * r['faster']:.0f} % |"
        )
    return lines


def plot(curves: dict[str, list[float]], path: Path, args) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = 100 * np.asarray(FRACTIONS)
    for name, c in curves.items():
        style = "--" if name.startswith("random") else "-"
        ax.plot(x, c, style, marker="o", markersize=3, label=name)
    ax.set_xlabel("input pixels deleted (%)")
    ax.set_ylabel("probability of the explained class")
    ax.set_title(f"Deletion curves: {args.model}, {args.faces} PublicTest faces")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
