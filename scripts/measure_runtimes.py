"""Measure a shipped model on every runtime and record which may be its default.

    python scripts/measure_runtimes.py default ferplus [--data ../shared/datasets]

For each model: makes its statically quantised int8 ONNX twin
(``src/ferlab/weights/<name>.int8.onnx``, calibrated on 1,024 FER2013 Training faces), records
that file's SHA-256 in the shipped-model table, then measures FER2013 PublicTest accuracy (the
validation split; labels as the model was trained: FER2013's or FER+ majority) under PyTorch
fp32 and bf16 and ONNX Runtime fp32 and int8, without test-time augmentation and with the
model's own, and the crops per second of each runtime on one thread (no test-time
augmentation) one face per call and 256 per call, and writes them into
``src/ferlab/weights/runtimes.json``. ``load_model`` then takes a reduced precision (int8, bf16)
by default only where every accuracy is within 0.1 point of PyTorch fp32
(:mod:`ferlab.inference.runtimes`). The test split is not read. The speeds are for reading
(docs/benchmarks.md): the default order does not follow them, because the order of the runtimes
can differ between one face per call (video frames, photos) and many.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferlab.report import cpu_name  # noqa: E402

WEIGHTS = ROOT / "src" / "ferlab" / "weights"
TABLE = ROOT / "src" / "ferlab" / "inference" / "shipped.py"
RUNTIMES = (("torch", "fp32"), ("torch", "bf16"), ("onnx", "fp32"), ("onnx", "int8"))
#: Speed measurement: faces per call, faces per measurement, and rounds (every runtime and
#: batch size once per round).
SPEED_BATCHES, SPEED_FACES, SPEED_ROUNDS = (1, 256), 256, 10


def public_test(data_root: Path, label_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """PublicTest faces (uint8 N×48×48) and class ids under the model's labels."""
    from ferlab.data import load_dataset

    csv = data_root / "fer2013" / "fer2013.csv.gz"
    ferplus = data_root / "ferplus" / "fer2013new.csv" if label_mode != "fer2013" else None
    data = load_dataset(csv, ferplus=ferplus, labels=label_mode, progress=True).subset("val")
    return data.images.numpy(), data.labels.numpy()


def crops_per_second(name: str) -> dict[str, dict[str, float]]:
    """One-thread crops per second of each runtime for each batch size in
    :data:`SPEED_BATCHES` (``{"1": {"onnx-int8": ...}, ...}``). The runtimes take turns, so that
    a change in the machine's load reaches them all alike; the best round of each is kept (the
    least disturbed)."""
    from ferlab.inference import load_model

    faces = np.random.default_rng(0).integers(0, 256, (SPEED_FACES, 48, 48), dtype=np.uint8)
    models = {
        f"{r}-{p}": load_model(name, runtime=r, precision=p, device="cpu", tta="none", threads=1)
        for r, p in RUNTIMES
    }
    for model in models.values():  # warm-up: first-call allocations and kernel choices
        model.predict_proba(faces[:1])
        model.predict_proba(faces)
    best = {str(b): dict.fromkeys(models, 0.0) for b in SPEED_BATCHES}
    for _ in range(SPEED_ROUNDS):
        for key, model in models.items():
            for batch in SPEED_BATCHES:
                start = time.perf_counter()
                for lo in range(0, SPEED_FACES, batch):
                    model.predict_proba(faces[lo : lo + batch])
                rate = SPEED_FACES / (time.perf_counter() - start)
                best[str(batch)][key] = max(best[str(batch)][key], rate)
    return {b: {k: round(v, 1) for k, v in rates.items()} for b, rates in best.items()}


def record_int8_digest(name: str, path: Path) -> None:
    """Write the int8 twin's file name and SHA-256 into the model's entry of the table (and
    into the table this process has loaded, which then verifies and finds the file)."""
    from dataclasses import replace

    from ferlab.inference.shipped import SHIPPED, file_sha256

    SHIPPED[name] = replace(SHIPPED[name], int8=path.name, int8_sha256=file_sha256(path))
    text = TABLE.read_text()
    start = text.index(f'    "{name}": ShippedModel(')
    end = text.index("    ),\n", start)
    entry = re.sub(r'\n        int8(_sha256)?="[^"]*",', "", text[start:end])
    entry += f'        int8="{path.name}",\n        int8_sha256="{file_sha256(path)}",\n'
    TABLE.write_text(text[:start] + entry + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="shipped model names")
    parser.add_argument("--data", type=Path, default=ROOT / ".." / "shared" / "datasets")
    parser.add_argument(
        "--calibration-faces",
        type=int,
        default=1024,
        help="Training faces that calibrate the int8 ranges (recorded in the file)",
    )
    args = parser.parse_args()

    from ferlab.export import export_onnx
    from ferlab.inference import load_model

    record_path = WEIGHTS / "runtimes.json"
    records = json.loads(record_path.read_text()) if record_path.is_file() else {}
    for name in args.models:
        reference = load_model(name, runtime="torch")
        label_mode, own_tta = reference.meta["label_mode"], reference.tta
        int8 = WEIGHTS / f"{name}.int8.onnx"
        report = export_onnx(
            name,
            int8,
            dynamic_batch=True,
            int8="static",
            calibration=args.data / "fer2013" / "fer2013.csv.gz",
            calibration_size=args.calibration_faces,
            progress=True,
        )
        print(f"{name}: int8 twin {report['bytes'] / 1e6:.2f} MB", flush=True)
        record_int8_digest(name, int8)
        faces, labels = public_test(args.data, label_mode)
        accuracy: dict[str, dict[str, float]] = {}
        for runtime, precision in RUNTIMES:
            model = load_model(name, runtime=runtime, precision=precision, device="cpu")
            key = f"{runtime}-{precision}"
            accuracy[key] = {}
            for tta in sorted({"none", own_tta}):
                acc = 100 * model.with_tta(tta).score(faces, labels)
                accuracy[key][tta] = round(acc, 3)
                print(f"{name} {key} tta={tta}: {acc:.2f} %", flush=True)
        load = os.getloadavg()[0]
        speed = crops_per_second(name)
        for batch, rates in speed.items():
            print(f"{name} one thread, batch {batch}, crops/s: {rates}", flush=True)
        print(f"(load average {load:.1f})", flush=True)
        records[name] = {
            "split": "FER2013 PublicTest",
            "faces": int(len(labels)),
            "labels": label_mode,
            "measured": dt.date.today().isoformat(),
            "cpu": cpu_name(),
            "calibration_faces": args.calibration_faces,
            "accuracy": accuracy,
            "speed": {
                "threads": 1,
                "tta": "none",
                "load_average": round(load, 1),
                "crops_per_s_by_batch": speed,
            },
        }
        record_path.write_text(json.dumps(records, indent=1) + "\n")
    print(f"wrote {record_path.relative_to(ROOT)} and the int8 digests in {TABLE.name}")


if __name__ == "__main__":
    main()
