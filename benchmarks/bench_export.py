"""Benchmark of the ONNX export: PyTorch eager against ONNX Runtime float32 and int8 on the CPU.

For each model (the shipped ``default`` model, or ``--checkpoint``, or FerlabNet with random
weights when neither exists; and ``deep_emotion`` and ``vgg19`` with random weights, whose speed
does not depend on the values of the weights), three runtimes run the same prepared inputs
(centre crops, normalised), side by side in one process with the same number of threads:

* PyTorch eager (``torch.inference_mode``, NCHW): the reference;
* PyTorch channels-last (as ``ferlab.load_model`` runs it), in fp32 and under bf16 autocast
  (``precision="bf16"``);
* ONNX Runtime float32 (the ``ferlab export --dynamic-batch`` graph);
* ONNX Runtime int8 (static QDQ quantisation calibrated on 1,024 FER2013 Training faces, or
  dynamic quantisation when the dataset is not found).

Idle worker threads of both runtimes wait passively (``OMP_WAIT_POLICY=PASSIVE`` for PyTorch,
``session.intra_op.allow_spinning=0`` for ONNX Runtime): on a machine shared with other work,
spinning threads compete with it and the timings measure the contention rather than the runtime
(measured here with a training run beside it: 500 ms for one Deep-Emotion face in spinning
PyTorch, against about 1 ms without the other work).

Measured per model: the per-face latency at batch 1 (median of ``--repeat`` calls) and the
throughput at batch 256 (median of ``--rounds`` calls), the three runtimes' calls interleaved
round by round so that they share whatever load other work puts on the machine. Ratios are
against eager PyTorch measured in the same rounds.

For the trained model the script also reports accuracy on FER2013 PublicTest and PrivateTest,
with the model's own test-time augmentation, for each runtime, and the int8 model's top-1
agreement with float32.

Usage: ``python benchmarks/bench_export.py [--threads 2] [--checkpoint best.pt]
[--datasets DIR] [--repeat 200] [--rounds 7] [--no-accuracy]``
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from doc_section import machine

# Before torch is imported: OpenMP reads it once.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

REPO = Path(__file__).resolve().parents[1]
NO_SPIN = {"session.intra_op.allow_spinning": "0"}


def interleaved(fns: dict[str, Callable[[], Any]], calls: int) -> dict[str, float]:
    """Median seconds per call of each function, calling them in turn ``calls`` times."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(calls):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def speed(
    source: str, data: Any, threads: int, repeat: int, rounds: int, batch: int, tmp: Path
) -> dict[str, dict[str, float]]:
    """Median seconds per call at batch 1 (``latency``) and at ``batch`` (``throughput``) of each
    runtime; leaves ``float.onnx`` and ``int8.onnx`` in ``tmp``."""
    import torch

    from ferlab.export import export_onnx
    from ferlab.export.onnx_export import load_source
    from ferlab.inference.onnx_backend import load_onnx

    network, _ = load_source(source)
    export_onnx(source, tmp / "float.onnx", dynamic_batch=True)
    mode = "static" if data is not None else "dynamic"
    export_onnx(source, tmp / "int8.onnx", dynamic_batch=True, int8=mode, calibration=data)
    fp32, int8 = (
        load_onnx(tmp / f"{name}.onnx", device="cpu", threads=threads) for name in ("float", "int8")
    )
    if data is not None:
        faces = data.subset("val").images[:batch].numpy()
    else:
        faces = np.random.default_rng(0).integers(0, 256, (batch, 48, 48), dtype=np.uint8)
    x = fp32.meta["preprocess"](faces)[0]

    nchw, nhwc = torch.contiguous_format, torch.channels_last
    # One copy of the weights per layout: converting them between calls would be timed too.
    networks = {nchw: network, nhwc: copy.deepcopy(network).to(memory_format=nhwc)}

    def eager(inputs: torch.Tensor, layout: torch.memory_format, bf16: bool) -> Callable[[], Any]:
        net, inputs = networks[layout], inputs.contiguous(memory_format=layout)

        def run() -> Any:
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                return net(inputs)

        return run

    results = {}
    for label, inputs, calls in (("latency", x[:1], repeat), ("throughput", x, rounds)):
        t = torch.from_numpy(inputs)
        fns = {
            "PyTorch eager": eager(t, nchw, False),
            "PyTorch channels-last (load_model)": eager(t, nhwc, False),
            "PyTorch channels-last bf16 (precision='bf16')": eager(t, nhwc, True),
            "ONNX Runtime fp32": lambda inputs=inputs: fp32.backend.logits(inputs),
            f"ONNX Runtime int8 ({mode})": lambda inputs=inputs: int8.backend.logits(inputs),
        }
        for fn in fns.values():  # warm-up: first calls allocate and pick kernels
            fn()
        results[label] = interleaved(fns, calls)
    return results


def accuracy(
    source: str, data: Any, tmp: Path, tta: str | None
) -> list[tuple[str, str, float, float]]:
    """(split, runtime, accuracy, top-1 agreement with PyTorch) on PublicTest and PrivateTest,
    with test-time augmentation ``tta`` (default: the model's)."""
    import ferlab
    from ferlab.inference.onnx_backend import load_onnx

    models = {
        "PyTorch eager": ferlab.load_model(source, device="cpu", runtime="torch", tta=tta),
        "PyTorch bf16": ferlab.load_model(
            source, device="cpu", runtime="torch", tta=tta, precision="bf16"
        ),
        "ONNX Runtime fp32": load_onnx(tmp / "float.onnx", tta=tta, config=NO_SPIN),
        "ONNX Runtime int8": load_onnx(tmp / "int8.onnx", tta=tta, config=NO_SPIN),
    }
    used = models["PyTorch eager"].tta
    rows = []
    for split, name in (("val", "PublicTest"), ("test", "PrivateTest")):
        part = data.subset(split)
        labels = part.labels.numpy()
        reference = None
        for runtime, model in models.items():
            pred = model.predict_proba(part.images.numpy()).argmax(1)
            reference = pred if reference is None else reference
            agree = float((pred == reference).mean())
            rows.append((f"{name} ({used})", runtime, float((pred == labels).mean()), agree))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="threads of every runtime")
    parser.add_argument("--checkpoint", help="trained model to use instead of 'default'")
    parser.add_argument("--datasets", type=Path, default=REPO / ".." / "shared" / "datasets")
    parser.add_argument("--repeat", type=int, default=200, help="batch-1 calls per runtime")
    parser.add_argument("--rounds", type=int, default=7, help="batch-256 calls per runtime")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--models", nargs="*", default=["deep_emotion", "vgg19"])
    parser.add_argument("--no-accuracy", action="store_true")
    parser.add_argument("--tta", help="test-time augmentation of the accuracy rows")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]  # before this benchmark adds its own

    import tempfile

    import torch
    from rich.console import Console

    from ferlab.inference import shipped_models

    torch.set_num_threads(args.threads)
    csv = args.datasets / "fer2013" / "fer2013.csv.gz"
    data = None
    if csv.exists():
        from ferlab.data import load_dataset

        data = load_dataset(csv, progress=True)
    if args.checkpoint:
        trained, trained_label = args.checkpoint, Path(args.checkpoint).name
    elif "default" in shipped_models():
        trained, trained_label = "default", "default (shipped)"
    else:
        trained, trained_label = None, None
    sources = [(trained or "ferlab_net", trained_label or "ferlab_net (random weights)")]
    sources += [(name, f"{name} (random weights)") for name in args.models]

    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"Measured {dt.date.today().isoformat()} on {machine(args.load)}; {args.threads} "
        f"threads per runtime; torch {torch.__version__}, onnxruntime "
        f"{__import__('onnxruntime').__version__}."
    )
    lines = [
        "| model | runtime | batch 1: ms/face | speed-up | batch "
        f"{args.batch}: faces/s | speed-up |",
        "|---|---|---:|---:|---:|---:|",
    ]
    acc_rows: list[tuple[str, str, float, float]] = []
    for source, label in sources:
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            results = speed(source, data, args.threads, args.repeat, args.rounds, args.batch, tmp)
            lat, thr = results["latency"], results["throughput"]
            base_lat, base_thr = lat["PyTorch eager"], thr["PyTorch eager"]
            for runtime in lat:
                lines.append(
                    f"| {label} | {runtime} | {lat[runtime] * 1e3:.2f} | "
                    f"{base_lat / lat[runtime]:.2f}× | {args.batch / thr[runtime]:,.0f} | "
                    f"{base_thr / thr[runtime]:.2f}× |"
                )
            console.print("\n".join(lines[-len(lat) :]))
            if source == trained and data is not None and not args.no_accuracy:
                acc_rows = accuracy(source, data, tmp, args.tta)
    console.print("\n" + "\n".join(lines))
    if acc_rows:
        console.print(
            f"\nAccuracy of {trained_label} (test-time augmentation in brackets):\n\n"
            "| split | runtime | accuracy | top-1 agreement with PyTorch |\n|---|---|---:|---:|"
        )
        for split, runtime, acc, agree in acc_rows:
            console.print(f"| {split} | {runtime} | {acc:.2%} | {agree:.2%} |")


if __name__ == "__main__":
    main()
