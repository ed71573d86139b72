"""Batch inference: the local engine against Ray Data with 1 and 2 CPUs, in the same run.

A folder of ``--photos`` JPEG photos (default 2,000) is generated from FER2013 Training faces
pasted at 80-200 px into 640×480 scenes (a gradient with noise; one face per photo), then
recognised with the shipped default model (ONNX Runtime, the photos' own ten-crop TTA) by:

* the local engine, ``Recognizer.run`` over the folder as ``ferlab predict`` does, with ONNX
  Runtime's default threads and with one thread (its best is the reference);
* ``ferlab.batch.predict(engine="ray")`` on a local Ray with 1 CPU (one actor: the per-worker
  rate, from which a cluster's throughput follows) and with 2 CPUs (two actors).

Ray's times exclude starting Ray (once per cluster, reported apart) and include the job's own
start (actors loading the model). The rows of every run are checked to be the same.

    python benchmarks/bench_batch.py --photos 2000 --json out.json --doc
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FER_CSV = ROOT / ".." / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"


def make_photos(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """``count`` 640×480 JPEG scenes, each with one FER2013 Training face (reused if present)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"photo{i:05d}.jpg" for i in range(count)]
    if all(p.is_file() for p in paths):
        return paths
    rng = np.random.default_rng(seed)
    with gzip.open(FER_CSV, "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        faces = [
            np.array(row[1].split(), dtype=np.uint8).reshape(48, 48)
            for row, _ in zip(reader, range(count), strict=False)
        ]
    yy, xx = np.mgrid[0:480, 0:640]
    for i, path in enumerate(paths):
        base = 60 + 120 * xx / 640 + rng.normal(0, 8, (480, 640))
        gray = np.clip(base, 0, 255).astype(np.uint8)
        size = int(rng.integers(80, 201))
        x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
        gray[y : y + size, x : x + size] = cv2.resize(
            faces[i % len(faces)], (size, size), interpolation=cv2.INTER_CUBIC
        )
        cv2.imwrite(str(path), cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))
    return paths


def run_local(folder: Path, threads: int | None) -> tuple[float, list]:
    from ferlab.inference import load_model
    from ferlab.recognize import Recognizer

    model = load_model("default", runtime="onnx", threads=threads)
    start = time.perf_counter()
    results = Recognizer(model=model).run(str(folder), errors="collect")
    seconds = time.perf_counter() - start
    return seconds, [(f.source, f.box, f.label) for f in results]


def run_ray(folder: Path, cpus: int) -> tuple[float, float, list]:
    import ray

    from ferlab import batch

    start = time.perf_counter()
    ray.init(
        "local", num_cpus=cpus, include_dashboard=False, log_to_driver=False, logging_level="ERROR"
    )
    started = time.perf_counter() - start
    try:
        start = time.perf_counter()
        df = batch.predict([folder], engine="ray", workers=cpus)
        seconds = time.perf_counter() - start
    finally:
        ray.shutdown()
    faces = df[df["label"].notna()]
    rows = [
        (s, (int(x), int(y), int(w), int(h)), label)
        for s, x, y, w, h, label in faces[["source", "x", "y", "w", "h", "label"]].itertuples(
            index=False
        )
    ]
    return started, seconds, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/ferlab-bench-batch"))
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--doc", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from doc_section import machine, write_doc_section

    load = os.getloadavg()[0]
    paths = make_photos(args.folder, args.photos)
    n = len(paths)
    runs: dict[str, dict] = {}
    reference = None
    for name, threads in (("local, ONNX Runtime default threads", None), ("local, 1 thread", 1)):
        seconds, rows = run_local(args.folder, threads)
        runs[name] = {"seconds": seconds, "images_per_s": n / seconds, "faces": len(rows)}
        reference = reference or rows
        assert rows == reference, f"{name}: rows differ"
        print(f"{name}: {seconds:.1f} s, {n / seconds:.1f} images/s", flush=True)
    for cpus in (1, 2):
        started, seconds, rows = run_ray(args.folder, cpus)
        name = f"ray, {cpus} CPU{'s' * (cpus > 1)}"
        runs[name] = {
            "seconds": seconds,
            "images_per_s": n / seconds,
            "ray_start_s": started,
            "faces": len(rows),
        }
        assert rows == reference, f"{name}: rows differ from the local engine's"
        print(
            f"{name}: {seconds:.1f} s (+{started:.1f} s starting Ray), {n / seconds:.1f} images/s",
            flush=True,
        )
    best = max(v["images_per_s"] for k, v in runs.items() if k.startswith("local"))
    for value in runs.values():
        value["ratio_to_local_best"] = value["images_per_s"] / best
    result = {
        "photos": n,
        "machine": machine(load),
        "load_at_end": os.getloadavg()[0],
        "runs": runs,
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.doc:
        write_doc_section(doc_lines(result))


def doc_lines(result: dict) -> list[str]:
    runs = result["runs"]
    lines = [
        "## Batch inference (Ray Data)",
        "",
        f"Script: `benchmarks/bench_batch.py --photos {result['photos']} --doc`. Measured "
        f"{time.strftime('%Y-%m-%d')} on {result['machine']}; load average "
        f"{result['load_at_end']:.1f} at the end. {result['photos']:,} generated 640×480 JPEG "
        "photos, each with one FER2013 Training face pasted at 80–200 px; shipped default model "
        "on ONNX Runtime with its ten-crop TTA; every run found the same faces with the same "
        "boxes and labels. Ray's times exclude starting Ray (a cluster starts once) and include "
        "the actors loading the model. One run each (docs/scale.md has the details).",
        "",
        "| engine | seconds | images / s | × local best |",
        "|---|---:|---:|---:|",
    ]
    for name, v in runs.items():
        lines.append(
            f"| {name} | {v['seconds']:.1f} | {v['images_per_s']:.1f} | "
            f"{v['ratio_to_local_best']:.2f} |"
        )
    return lines


if __name__ == "__main__":
    main()
