"""Benchmark of the data layer: first parse, cached loads, image folders, and a plain reference.

Measures on the real data in ``<repo>/../shared/datasets`` (or ``--datasets``):

* first parse of ``fer2013.csv.gz`` with an empty cache (decompression + bulk numpy parse +
  cache write), and the decompression alone;
* cached loads of the same file, with FER2013 labels and with FER+ majority labels;
* first and cached loads of the 448-image Kaggle zip sample and the 3,000-image face/non-face
  folder;
* two straightforward references: the ``csv`` module with ``int()`` per pixel, and
  ``np.array(pixels.split(), dtype=np.uint8)`` per row. They and ferlab's parser run on the same
  first ``--reference-rows`` rows held in memory, repeats interleaved, which gives the ratio; the
  references' whole-file time is extrapolated linearly (all rows have the same size) plus the
  measured decompression.

Prints a table; with ``--write`` it also replaces (or appends) the "Data loading" section of
``docs/benchmarks.md``. Each timed step runs ``--repeat`` times and the best time is kept, which
is the least disturbed by other work on a shared machine.

Usage: ``python benchmarks/bench_data.py [--datasets DIR] [--repeat N] [--write]``
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import io
import os
import tempfile
import time
from collections.abc import Callable
from itertools import islice
from pathlib import Path

import numpy as np
from doc_section import DOC, machine, write_doc_section
from rich.console import Console
from rich.table import Table

from ferlab.data import load_dataset
from ferlab.data._problems import Problems
from ferlab.data.fer2013_csv import parse_fer2013_csv, read_source_bytes

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Data loading"
N_ROWS = 35_887


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def reference_csv_int(text: str) -> None:
    """The csv module and int() per pixel."""
    for row in csv.DictReader(io.StringIO(text, newline="")):
        np.array([int(v) for v in row["pixels"].split()], dtype=np.uint8).reshape(48, 48)
        int(row["emotion"])


def reference_np_split(text: str) -> None:
    """The csv module and ``np.array(str.split(), dtype=np.uint8)`` per row."""
    for row in csv.DictReader(io.StringIO(text, newline="")):
        np.array(row["pixels"].split(), dtype=np.uint8).reshape(48, 48)
        int(row["emotion"])


def compare_on_rows(csv_gz: Path, n: int, repeat: int) -> dict[str, float]:
    """Parse-only seconds of ferlab and the two references on the same first ``n`` rows.

    All three read the same decompressed text held in memory, and the repeats are interleaved
    so that all three see the same load from other work on the machine.
    """
    with gzip.open(csv_gz, "rt", newline="") as fh:
        text = "".join(islice(fh, n + 1))
    data = text.encode()
    runs = {
        "ferlab": lambda: parse_fer2013_csv(data, csv_gz, Problems()),
        "csv_int": lambda: reference_csv_int(text),
        "np_split": lambda: reference_np_split(text),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, fn in runs.items():
            best[name] = min(best[name], best_of(1, fn))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=REPO / ".." / "shared" / "datasets")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--reference-rows", type=int, default=3000)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]  # before this benchmark adds its own
    root = args.datasets.resolve()
    csv_gz = root / "fer2013" / "fer2013.csv.gz"
    ferplus = root / "ferplus" / "fer2013new.csv"
    zip_sample = root / "fer2013-images" / "fer2013-images-sample.zip"
    folder = root / "face-nonface"
    for path in (csv_gz, ferplus, zip_sample, folder):
        if not path.exists():
            raise SystemExit(f"missing {path}; pass --datasets")

    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:

        def fresh(path: Path, **kw: object) -> Callable[[], object]:
            def run() -> object:
                cache = Path(tempfile.mkdtemp(dir=tmp))
                return load_dataset(path, cache_dir=cache, progress=False, **kw)

            return run

        def cached(path: Path, **kw: object) -> Callable[[], object]:
            return lambda: load_dataset(path, cache_dir=Path(tmp), progress=False, **kw)

        first = best_of(args.repeat, fresh(csv_gz))
        rows.append(("fer2013.csv.gz, first parse (empty cache)", first, "target < 60 s"))
        inflate = best_of(args.repeat, lambda: read_source_bytes(csv_gz))
        rows.append(("  of which gzip decompression (301 MB)", inflate, ""))
        cached(csv_gz)()  # fill the cache
        rows.append(
            ("fer2013.csv.gz, cached load", best_of(args.repeat, cached(csv_gz)), "target < 2 s")
        )
        fp = cached(csv_gz, ferplus=ferplus, labels="ferplus-majority")
        rows.append(("fer2013.csv.gz + FER+ majority, cached", best_of(args.repeat, fp), ""))
        rows.append(
            ("zip sample (448 JPEG), first load", best_of(args.repeat, fresh(zip_sample)), "")
        )
        cached(zip_sample)()
        rows.append(("zip sample, cached load", best_of(args.repeat, cached(zip_sample)), ""))
        rows.append(
            ("face-nonface (3,000 PNG), first load", best_of(args.repeat, fresh(folder)), "")
        )
        cached(folder)()
        rows.append(("face-nonface, cached load", best_of(args.repeat, cached(folder)), ""))

    n = args.reference_rows
    scale = N_ROWS / n
    same = compare_on_rows(csv_gz, n, args.repeat)
    rows.append((f"parse only, first {n:,} rows: ferlab", same["ferlab"], ""))
    rows.append((f"parse only, first {n:,} rows: csv + int() per pixel", same["csv_int"], ""))
    rows.append((f"parse only, first {n:,} rows: np.array(str.split())", same["np_split"], ""))
    for key, label in (("csv_int", "csv + int() per pixel"), ("np_split", "np.array(str.split())")):
        estimate = same[key] * scale + inflate
        rows.append((f"reference {label}, whole file (estimate)", estimate, f"x{scale:.1f} + gzip"))

    table = Table(title="Data loading")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("note")
    for name, seconds, note in rows:
        table.add_row(name, f"{seconds:.2f}", note)
    console = Console()
    console.print(table)
    ratios = (
        f"on the same rows, ferlab parses {same['csv_int'] / same['ferlab']:.1f}x faster than "
        f"csv + int() and {same['np_split'] / same['ferlab']:.1f}x faster than "
        "np.array(str.split())"
    )
    console.print(ratios)
    if args.write:
        write_section(rows, ratios, args)
        console.print(f"updated {DOC}")


def write_section(
    rows: list[tuple[str, float, str]], ratios: str, args: argparse.Namespace
) -> None:
    lines = [
        SECTION,
        "",
        f"Script: `benchmarks/bench_data.py --repeat {args.repeat} --reference-rows "
        f"{args.reference_rows}`. Measured {dt.date.today().isoformat()} on {machine(args.load)}. "
        f"Best of {args.repeat} runs per step. The parse-only rows compare ferlab's parser "
        f"with two straightforward readers on the same first {args.reference_rows:,} rows, "
        "decompressed in memory, with interleaved repeats; the whole-file estimates scale those "
        f"to {N_ROWS:,} rows and add the measured decompression time.",
        "",
        "| step | seconds | note |",
        "|---|---:|---|",
        *(f"| {name.strip()} | {seconds:.2f} | {note} |" for name, seconds, note in rows),
        "",
        f"Ratio: {ratios}.",
        "",
    ]
    write_doc_section(lines)


if __name__ == "__main__":
    main()
