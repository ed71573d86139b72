"""Training throughput: ferlab's engine against a straightforward per-image PIL pipeline.

Part 1 — side by side, same model, batch (64), optimiser (SGD, momentum 0.9) and augmentation
(random 44×44 crop of the 48×48 image, horizontal flip, shift up to 10 %, rotation up to ±10°):

* **engine**: :func:`ferlab.engine.train` — the dataset in memory as uint8, one batch gathered
  per step and augmented with one ``affine_grid`` + ``grid_sample``, the model in channels-last
  layout (its default; also measured with the default NCHW layout);
* **reference**: the usual PyTorch recipe — a ``Dataset`` of PIL images whose ``__getitem__``
  rotates/translates (``Image.rotate``), crops, mirrors and converts one image at a time, batched
  by a ``DataLoader`` (torchvision is not available, so its transforms are written with PIL
  methods), with 0 and with 2 worker processes, the model in the default NCHW layout.

Throughput is images per second over ``--steps`` optimiser steps after ``--warmup`` steps, best of
``--rounds`` interleaved rounds (the machine is shared; the best round is the least disturbed).
The data pipelines alone (augmented batches per second without a model) are measured as well.

Part 2 — one training epoch (28,709 images, batch 64, the same augmentation) for every registered
model, **extrapolated** from the engine's time per step over ``--epoch-steps`` steps after one
warm-up step; validation is not included.

Images are random uint8 arrays: throughput does not depend on the content. Run::

    python benchmarks/bench_train.py     # about 15 minutes on the 2-core machine, most of it
                                         # in part 2's large networks (--skip-epochs: 5 minutes)
"""

from __future__ import annotations

import os

# What `ferlab train` does too: idle OpenMP threads sleep instead of spinning (see
# docs/training.md); it must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ferlab.data.dataset import FER2013_CLASSES, FERData
from ferlab.engine import train
from ferlab.engine.recipe import (
    AugmentSection,
    DataSection,
    EvalSection,
    ModelSection,
    OptimSection,
    Recipe,
    ScheduleSection,
    TrainSection,
)
from ferlab.engine.trainer import cpu_has_native_bf16
from ferlab.models import create_model, list_models

BATCH = 64
CROP = 44
N_TRAIN = 28709  # FER2013's training split
AUG = AugmentSection(flip=True, shift=0.1, rotate=10.0)
MEAN, STD = 0.5077, 0.2550  # FER2013 training-split statistics on the [0, 1] scale


def synthetic(n_train: int, n_val: int = 64, seed: int = 0) -> FERData:
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_val
    split = torch.zeros(n, dtype=torch.int8)
    split[n_train:] = 1
    return FERData(
        images=torch.randint(0, 256, (n, 48, 48), generator=g, dtype=torch.uint8),
        labels=torch.randint(0, 7, (n,), generator=g),
        split=split,
        classes=FER2013_CLASSES,
        source="synthetic",
    )


class _Done(Exception):
    """Raised from the step callback once enough steps are timed."""


def engine_rate(
    model: str,
    data: FERData,
    steps: int,
    warmup: int,
    channels_last: bool,
    precision: str = "fp32",
) -> float:
    """Training images per second of :func:`ferlab.engine.train` (steps after the warm-up)."""
    recipe = Recipe(
        name="bench",
        model=ModelSection(name=model),
        data=DataSection(crop=CROP, normalize="global"),
        augment=AUG,
        optim=OptimSection(name="sgd", lr=0.01, momentum=0.9),
        schedule=ScheduleSection(kind="constant"),
        train=TrainSection(
            epochs=1, batch_size=BATCH, channels_last=channels_last, precision=precision
        ),
        eval=EvalSection(plots=False),
    )
    stamps: list[float] = []

    def clock(info) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == warmup + steps + 1:
            raise _Done

    with tempfile.TemporaryDirectory() as tmp, contextlib.suppress(_Done):
        train(recipe, data=data, out_dir=Path(tmp) / "run", callbacks=[clock])
    return steps * BATCH / (stamps[-1] - stamps[warmup])


class PILFaces(Dataset):
    """The reference pipeline: one PIL image at a time through the same augmentation."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images = [Image.fromarray(img.numpy()) for img in images]
        self.labels = labels.tolist()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.images[i]
        shift = AUG.shift * 48
        img = img.rotate(
            random.uniform(-AUG.rotate, AUG.rotate),
            resample=Image.BILINEAR,
            translate=(random.uniform(-shift, shift), random.uniform(-shift, shift)),
        )
        ox, oy = random.randint(0, 48 - CROP), random.randint(0, 48 - CROP)
        img = img.crop((ox, oy, ox + CROP, oy + CROP))
        if random.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        x = (np.asarray(img, dtype=np.float32) / 255.0 - MEAN) / STD
        return torch.from_numpy(x)[None], self.labels[i]


def engine_data_rate(data: FERData, batches: int) -> float:
    """Images per second of the engine's batch preparation alone (gather, normalise, augment)."""
    from ferlab.engine.augment import BatchAugment, normalize_batch

    mean, std = torch.tensor(MEAN), torch.tensor(STD)
    aug = BatchAugment(AUG, 48, CROP)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(N_TRAIN, generator=g)
    start = time.perf_counter()
    for i in range(batches):
        idx = order[i * BATCH : (i + 1) * BATCH]
        aug.apply(normalize_batch(data.images[idx], mean, std), aug.sample(BATCH, g))
    return batches * BATCH / (time.perf_counter() - start)


def reference_data_rate(dataset: PILFaces, batches: int) -> float:
    """Images per second of the PIL Dataset + DataLoader alone (no workers)."""
    loader = DataLoader(dataset, batch_size=BATCH, shuffle=True, drop_last=True)
    start = time.perf_counter()
    for i, _ in enumerate(loader):
        if i + 1 == batches:
            break
    return batches * BATCH / (time.perf_counter() - start)


def reference_rate(model: str, dataset: PILFaces, steps: int, warmup: int, workers: int) -> float:
    torch.manual_seed(0)
    net = create_model(model, num_classes=7, in_chans=1, input_size=CROP)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    loader = DataLoader(
        dataset,
        batch_size=BATCH,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        persistent_workers=False,
    )
    net.train()
    start = None
    for i, (x, y) in enumerate(loader):
        loss = torch.nn.functional.cross_entropy(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i + 1 == warmup:
            start = time.perf_counter()
        if i + 1 == warmup + steps:
            break
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["deep_emotion", "medium_cnn"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epoch-steps", type=int, default=2, help="timed steps per model, part 2")
    ap.add_argument("--skip-epochs", action="store_true", help="only part 1")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    random.seed(0)
    data = synthetic(N_TRAIN)
    pil = PILFaces(data.images[:N_TRAIN], data.labels[:N_TRAIN])
    print(f"# torch {torch.__version__}, {os.cpu_count()} CPU threads, batch {BATCH}, crop {CROP}")
    print("\n## Part 1: training images/s, best of rounds\n")
    # fp32 throughout is the like-for-like comparison; bf16 is the engine's default on CPUs with
    # native bf16 (train.precision auto), shown when this CPU has it.
    bf16 = cpu_has_native_bf16()
    print(
        "| model | engine | engine, NCHW | reference, 0 workers | reference, 2 workers "
        "| engine / best reference |" + (" engine bf16 | bf16 engine / reference |" if bf16 else "")
    )
    print("|---|---:|---:|---:|---:|---:|" + ("---:|---:|" if bf16 else ""))
    for model in args.models:
        runs = {
            "eng": lambda m=model: engine_rate(m, data, args.steps, args.warmup, True),
            "ref0": lambda m=model: reference_rate(m, pil, args.steps, args.warmup, 0),
            "eng_nchw": lambda m=model: engine_rate(m, data, args.steps, args.warmup, False),
            "ref2": lambda m=model: reference_rate(m, pil, args.steps, args.warmup, 2),
        }
        if bf16:
            runs["bf16"] = lambda m=model: engine_rate(
                m, data, args.steps, args.warmup, True, "bf16"
            )
        best = dict.fromkeys(runs, 0.0)
        for _ in range(args.rounds):
            for key, run in runs.items():
                best[key] = max(best[key], run())
        ref = max(best["ref0"], best["ref2"])
        extra = f" {best['bf16']:.0f} | {best['bf16'] / ref:.2f}× |" if bf16 else ""
        print(
            f"| {model} | {best['eng']:.0f} | {best['eng_nchw']:.0f} | {best['ref0']:.0f} | "
            f"{best['ref2']:.0f} | {best['eng'] / ref:.2f}× |{extra}",
            flush=True,
        )
    eng_data = max(engine_data_rate(data, 40) for _ in range(args.rounds))
    ref_data = max(reference_data_rate(pil, 40) for _ in range(args.rounds))
    print("\n## Data pipeline alone: augmented images/s (no model)\n")
    print("| engine (batched tensors) | reference (PIL per image, 0 workers) | ratio |")
    print("|---:|---:|---:|")
    print(f"| {eng_data:.0f} | {ref_data:.0f} | {eng_data / ref_data:.1f}× |", flush=True)
    if args.skip_epochs:
        return
    print(
        f"\n## Part 2: one epoch ({N_TRAIN} images), extrapolated from {args.epoch_steps} steps\n"
    )
    print("| model | params | images/s | epoch (extrapolated) |")
    print("|---|---:|---:|---:|")
    steps_per_epoch = N_TRAIN // BATCH
    for model in list_models():
        net = create_model(model, num_classes=7, in_chans=1, input_size=CROP)
        params = sum(p.numel() for p in net.parameters())
        rate = engine_rate(model, data, args.epoch_steps, 1, True)
        epoch_s = steps_per_epoch * BATCH / rate
        print(
            f"| {model} | {params / 1e6:.2f} M | {rate:.0f} | {epoch_s / 60:.1f} min |", flush=True
        )


if __name__ == "__main__":
    main()
