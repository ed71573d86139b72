"""Benchmark of the plain install: its size and ``ferlab predict``'s start-up, against a reference.

Two fresh virtual environments side by side, each made with the README's main command
(``pip install -e .``): one of the reference source (``--reference``, a git revision; by default
the last one before the inference core, when PyTorch was a dependency) and one of this working
tree. Measured in each:

* the size of the environment on disk (``du`` of the venv folder; editable installs keep the
  package source outside it, the shipped weights included, so the two differ by dependencies);
* ``ferlab predict examples/astronaut.jpg`` wall time, process start to exit, median of
  ``--runs`` runs after one warm-up run, alternating between the two environments so that both
  share whatever load other work puts on the machine.

Ratios are this tree against the reference, measured in the same run. Writes the section
"Install size and start-up" of docs/benchmarks.md.

Usage: ``python benchmarks/bench_install.py [--reference REV] [--runs 7] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from doc_section import machine, write_doc_section

REPO = Path(__file__).resolve().parents[1]
#: The last revision with PyTorch as a dependency of the plain install.
REFERENCE = "119f16d"


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kwargs)


def _venv(source: Path, venv: Path) -> None:
    _run([sys.executable, "-m", "venv", str(venv)])
    _run([str(venv / "bin" / "pip"), "install", "-q", "-e", str(source)])


def _size(path: Path) -> int:
    return int(_run(["du", "-sb", str(path)]).stdout.split()[0])


def _predict_seconds(venv: Path, cwd: Path) -> float:
    start = time.perf_counter()
    _run([str(venv / "bin" / "ferlab"), "predict", "examples/astronaut.jpg", "--json"], cwd=cwd)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--keep", type=Path, help="make the environments here and keep them")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    work = args.keep or Path(tempfile.mkdtemp(prefix="ferlab-install-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        ref_src = work / "reference-src"
        if not ref_src.exists():
            ref_src.mkdir()
            archive = subprocess.run(
                ["git", "-C", str(REPO), "archive", args.reference],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", str(ref_src)], input=archive, check=True)
        trees = {"reference": ref_src, "this tree": REPO}
        venvs = {name: work / f"venv-{i}" for i, name in enumerate(trees)}
        for name, source in trees.items():
            if not venvs[name].exists():
                print(f"installing {name} ...", flush=True)
                _venv(source, venvs[name])
        sizes = {name: _size(v) for name, v in venvs.items()}
        has_torch = {
            name: (next(v.glob("lib/python*/site-packages/torch"), None) is not None)
            for name, v in venvs.items()
        }
        times: dict[str, list[float]] = {name: [] for name in venvs}
        for name, v in venvs.items():  # warm-up: first imports compile bytecode
            _predict_seconds(v, trees[name])
        for _ in range(args.runs):
            for name, v in venvs.items():
                times[name].append(_predict_seconds(v, trees[name]))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    med = {name: statistics.median(t) for name, t in times.items()}
    ref, new = "reference", "this tree"
    lines = [
        "## Install size and start-up",
        "",
        f"Measured {dt.date.today().isoformat()} on {machine(load)} by "
        f"`benchmarks/bench_install.py`: two fresh environments made side by side with "
        f"`pip install -e .`, the reference at revision `{args.reference}` (PyTorch a "
        "dependency) and this tree (ONNX Runtime; PyTorch only in `ferlab[train]`). Start-up: "
        f"`ferlab predict examples/astronaut.jpg --json`, process start to exit, median of "
        f"{args.runs} runs after a warm-up, the two environments alternating.",
        "",
        "| install | PyTorch installed | environment size | `ferlab predict` one photo |",
        "|---|---|---:|---:|",
    ]
    for name in (ref, new):
        lines.append(
            f"| {name} | {'yes' if has_torch[name] else 'no'} | {sizes[name] / 1e6:,.0f} MB | "
            f"{med[name]:.2f} s |"
        )
    lines += [
        f"| **ratio** (this tree / reference) | | **{sizes[new] / sizes[ref]:.2f}×** | "
        f"**{med[new] / med[ref]:.2f}×** |",
        "",
    ]
    write_doc_section(lines)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
