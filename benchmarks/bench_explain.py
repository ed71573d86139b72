"""Benchmark of ``ferlab.explain``: what each explanation costs, and where heat maps point.

**Cost.** Milliseconds per face for one face at a time (as ``ferlab explain`` and the web page's
"explain" request use them), on the default model's architecture (FerlabNet; the shipped
``default`` weights when installed, else random weights: the cost does not depend on them), best
of ``--repeat`` rounds of ``--faces`` faces, against the **reference**: the plain prediction
(one forward pass without gradients) of the same faces. Filter images (``filter_images``: 8
filters, ``--steps`` steps) are timed once per round against the same reference.

**Localisation.** Two zoo architectures are trained (60 Adam steps, a few seconds) on a
synthetic task whose class only one 16×16 region (11 % of the image) decides (see
``tests/explain/explain_helpers.py``); for 64 new faces each heat-map method reports the median
share of the heat inside the region (reference: 11 %, its share of the area) and how often the
map's peak lies in it. ``ferlab_net`` (shrunk) pools globally before its classifier;
``deep_emotion_nostn`` classifies a flattened 9×9 map with fully connected layers.

Usage: ``python benchmarks/bench_explain.py [--faces N] [--repeat N] [--steps N] [--write]``
(``--write`` replaces or appends the "Explanations" section of ``docs/benchmarks.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the synthetic task lives with the tests

from doc_section import machine, write_doc_section  # noqa: E402

import ferlab  # noqa: E402
from ferlab.explain import (  # noqa: E402
    CAM_METHODS,
    class_activation_maps,
    filter_images,
    se_channel_weights,
)
from ferlab.explain._subject import Subject  # noqa: E402
from tests.explain.explain_helpers import (  # noqa: E402
    heat_in_region,
    region_task,
    train_on_region_task,
)

SECTION = "## Explanations"


def load_model() -> tuple[object, str]:
    try:
        return ferlab.load_model("default", device="cpu"), "the shipped default model"
    except ferlab.FerlabError:
        network = ferlab.create_model("ferlab_net").eval()
        return network, "randomly initialised FerlabNet (no shipped weights yet), 44×44 input"


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def cost(model: object, faces: np.ndarray, repeat: int, steps: int) -> dict[str, float]:
    """Milliseconds per face of each explanation, and seconds of one filter-image run."""
    subject = Subject(model)

    def predict() -> None:
        with torch.no_grad():
            for face in faces:
                subject.network(subject.to_input(face[None]))

    def each(method: str) -> Callable[[], None]:
        return lambda: [class_activation_maps(model, face, method) for face in faces]

    subject.network.eval()
    ms = {"prediction (reference)": best_of(repeat, predict) * 1000 / len(faces)}
    for method in CAM_METHODS:
        ms[method] = best_of(repeat, each(method)) * 1000 / len(faces)
    ms["se"] = best_of(repeat, lambda: [se_channel_weights(model, f) for f in faces])
    ms["se"] *= 1000 / len(faces)
    ms["filters"] = best_of(1, lambda: filter_images(model, count=8, steps=steps)) * 1000
    return ms


def localisation() -> list[tuple[str, str, float, float, float, int]]:
    rows = []
    faces, labels = region_task(64, seed=1)
    for name, kwargs in (
        ("ferlab_net", {"stages": ((8,), (16,), (32,)), "se_stages": ()}),
        ("deep_emotion_nostn", {}),
    ):
        model = train_on_region_task(name, **kwargs)
        for method in CAM_METHODS:
            result = class_activation_maps(model, faces, method)
            inside, near = heat_in_region(result.maps)
            accuracy = float((result.targets == labels).mean())
            empty = int((result.maps.max(axis=(1, 2)) == 0).sum())
            rows.append(
                (name, method, accuracy, float(np.median(inside)), float(near.mean()), empty)
            )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=128, help="filter-image steps")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]  # before this benchmark adds its own
    torch.set_num_threads(args.torch_threads)

    model, described = load_model()
    faces = region_task(args.faces, seed=7)[0]  # face-sized noise: the cost ignores content
    ms = cost(model, faces, args.repeat, args.steps)
    ref = ms["prediction (reference)"]
    for name, value in ms.items():
        unit = "ms (8 images)" if name == "filters" else "ms/face"
        print(f"{name:24s} {value:10.1f} {unit}  {value / ref:8.1f}× the prediction")
    rows = localisation()
    for name, method, acc, inside, near, empty in rows:
        print(
            f"{name:20s} {method:10s} acc {acc:.2f} heat in region {inside:.2f} "
            f"peak {near:.2f} empty maps {empty}"
        )
    if args.write:
        write_section(args, described, ms, rows)


def write_section(args, described: str, ms: dict, rows: list) -> None:  # noqa: ANN001
    ref = ms["prediction (reference)"]
    lines = [
        SECTION,
        "",
        f"Script: `benchmarks/bench_explain.py --faces {args.faces} --repeat {args.repeat} "
        f"--steps {args.steps}`. Measured {dt.date.today().isoformat()} on {machine(args.load)}, "
        f"{args.torch_threads} torch thread(s). Model: {described}. One face at a time, best of "
        f"{args.repeat} rounds.",
        "",
        "| explanation | ms per face | × the prediction |",
        "|---|---:|---:|",
    ]
    for name, value in ms.items():
        if name == "filters":
            continue
        lines.append(f"| {name} | {value:.1f} | {value / ref:.1f}× |")
    lines += [
        f"| filter images (8 filters, {args.steps} steps; per run) | {ms['filters']:.0f} | "
        f"{ms['filters'] / ref:.0f}× |",
        "",
        "Localisation on the synthetic one-region task (the region is 11 % of the image, so 0.11 "
        "is chance; 64 test faces; an empty map, all zero, counts as 0 heat in the region):",
        "",
        "| model (head) | method | accuracy | median heat in region | peak in region "
        "| empty maps |",
        "|---|---|---:|---:|---:|---:|",
    ]
    heads = {"ferlab_net": "global pooling", "deep_emotion_nostn": "fully connected"}
    for name, method, acc, inside, near, empty in rows:
        lines.append(
            f"| {name} ({heads[name]}) | {method} | {acc:.2f} | {inside:.2f} | {near:.2f} "
            f"| {empty} |"
        )
    write_doc_section(lines)


if __name__ == "__main__":
    main()
