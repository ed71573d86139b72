"""The training loop.

Written for small images on CPU first: the whole dataset stays in memory as uint8, an epoch is a
permutation of indices, and each step gathers one batch and augments it with a few tensor
operations (:mod:`ferlab.engine.augment`); the model runs channels-last. On CUDA the same loop
runs with AMP; under ``torchrun`` it runs data-parallel (:mod:`ferlab.engine.distributed`).

Reproducibility and resuming. All randomness of the data pipeline comes from generators seeded by
``(seed, epoch)`` (the epoch's permutation or weighted sample) and ``(seed, step)`` (the step's
augmentation and label draws); the global torch RNG (dropout, ...) is saved in every checkpoint
with the numpy and Python RNGs. A run resumed from ``last.pt`` — written every epoch, and
optionally every N minutes or steps mid-epoch — therefore continues the same permutation at the
same position with the same random numbers and ends with the same weights as a run that was never
interrupted (bit-identical on CPU at a fixed thread count; on CUDA with
``train.deterministic``).

Model selection uses the validation split only; the test split is evaluated once, at the end,
from ``best.pt``.

Time budget. With ``train.time_budget`` the schedule is laid over the number of steps expected to
fit: after the first 10 timed steps of a session (the first 2 are excluded as warm-up) the step
rate is measured and the total is set to ``steps done + remaining time × rate``, capped by
``train.epochs``. At every epoch end the estimate is repeated with the rate measured over the
whole session, which includes validation and checkpoint time. Training stops when what is left of
the budget is only enough to validate (the last validation's duration is kept in reserve), then
validates the partial epoch, selects and evaluates. Elapsed time is stored in the checkpoint and
accumulates across resumes; the final evaluation of ``best.pt`` on val and test is not counted.
With ``train.budget_clock: cpu`` the budget counts the process's CPU seconds (all threads) instead
of wall-clock seconds, so that runs sharing a busy machine get the same compute.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ferlab import __version__
from ferlab.engine import distributed as D
from ferlab.engine.augment import BatchAugment, norm_stats, normalize_batch
from ferlab.engine.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    atomic_save,
    build_model,
    file_sha256,
    remove_stale_temp_files,
)
from ferlab.engine.evaluate import confusion_matrix, metrics_from_confusion, predict_proba
from ferlab.engine.face_network import load_face_network
from ferlab.engine.finetune import load_initial_weights, read_source
from ferlab.engine.losses import batch_targets, class_balance_weights, loss_fn, target_mode
from ferlab.engine.recipe import Recipe, parse_duration, recipe_from_dict, save_recipe
from ferlab.engine.schedule import LRSchedule
from ferlab.engine.shift_augment import ShiftAugment
from ferlab.errors import DataError, FerlabError
from ferlab.inference.device import torch_device
from ferlab.inference.preprocess import Preprocess, equalize_hist

__all__ = [
    "StepInfo",
    "TrainResult",
    "check_run_folder",
    "cpu_has_native_bf16",
    "resume_recipe",
    "train",
]

_MEASURE_AFTER = 10  # timed steps before the first time-budget estimate
_WARMUP_STEPS = 2  # first steps of a session excluded from the rate (allocations, caches)

HISTORY_FIELDS = [
    "epoch",
    "steps",
    "lr",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "val_macro_f1",
    "elapsed_s",
    "img_per_s",
]


@dataclass
class StepInfo:
    """What a callback sees after every optimiser step."""

    epoch: int
    step: int
    """Global optimiser steps done so far (1 after the first step)."""
    step_in_epoch: int
    steps_per_epoch: int
    loss: float
    lr: float


@dataclass
class TrainResult:
    out_dir: Path
    metrics: dict[str, Any]
    stop_reason: str
    """``completed``, ``early_stopping``, ``time_budget`` or ``interrupted``."""

    @property
    def interrupted(self) -> bool:
        return self.stop_reason == "interrupted"


@dataclass
class _State:
    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    elapsed: float = 0.0
    cpu_time: float = 0.0
    """Process CPU seconds (all threads) spent training, across resumes."""
    total_steps: int = 0
    best_val: float = -1.0
    best_epoch: float = 0.0
    best_step: int = 0
    bad_epochs: int = 0
    history: list[dict] = field(default_factory=list)
    run_loss: float = 0.0
    run_correct: int = 0
    run_seen: int = 0
    epoch_time: float = 0.0
    val_time: float = 0.0
    """Duration of the last validation, kept in reserve at the end of a time budget."""
    stop_reason: str | None = None


def _mix(*parts: int) -> int:
    """A 63-bit seed from several integers (splitmix-style), for independent generators."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def _gen(*parts: int) -> torch.Generator:
    return torch.Generator().manual_seed(_mix(*parts))


class _Ema:
    """Exponential moving average of a model's weights (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        import copy

        self.decay = decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        # Ramp the decay up so early, untrained weights fade quickly (as in timm's ModelEmaV2).
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        # Frozen parameters (a facial-attention model's face network) are left as they are.
        pairs = [
            (e, p.detach())
            for e, p in zip(self.module.parameters(), model.parameters(), strict=True)
            if p.requires_grad
        ]
        torch._foreach_lerp_([e for e, _ in pairs], [p for _, p in pairs], 1 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {"updates": self.updates, "weights": self.module.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.module.load_state_dict(state["weights"])


def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached": float(cached),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        ("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class _StopSignal:
    """Turn the first SIGINT/SIGTERM into a flag checked between steps (a second one aborts)."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), read from /proc/cpuinfo."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False  # not Linux: stay with fp32, which is never the slow path
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return bool({"avx512_bf16", "amx_bf16"} & set(flags.split()))


def check_run_folder(out_dir: str | Path, resume: bool) -> None:
    """Refuse to start over an existing run, or to resume where there is nothing to resume."""
    out = Path(out_dir)
    if resume:
        if not (out / "last.pt").exists():
            raise DataError("nothing to resume: no last.pt in the run folder", path=out)
    elif (out / "last.pt").exists() or (out / "metrics.json").exists():
        raise DataError(
            "the run folder already holds a run; pass --resume to continue it or choose "
            "another --out",
            path=out,
        )


def resume_recipe(out_dir: str | Path) -> Recipe:
    """The recipe stored in a run's ``last.pt`` (to resume it, optionally with overrides)."""
    from ferlab.engine.checkpoint import read_checkpoint

    path = Path(out_dir) / "last.pt"
    if not path.exists():
        raise DataError("nothing to resume: no last.pt in the run folder", path=out_dir)
    ckpt = read_checkpoint(path)
    recipe = recipe_from_dict(ckpt["recipe"], where=str(path))
    recipe.name = ckpt["recipe"].get("name", "") or recipe.name
    return recipe


def train(
    recipe: Recipe | None = None,
    *,
    data: Any = None,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = False,
    callbacks: Sequence[Callable[[StepInfo], None]] = (),
    console: Any = None,
) -> TrainResult:
    """Train a model as ``recipe`` describes and write the run folder.

    Args:
        recipe: the run's configuration; with ``resume`` it may be omitted to take the one
            stored in ``out_dir/last.pt``.
        data: an in-memory :class:`~ferlab.data.FERData`; by default ``recipe.data.path`` is
            read with :func:`ferlab.data.load_dataset`.
        out_dir: run folder (default ``runs/<recipe name>``). It must not hold a run already
            unless ``resume`` is set.
        resume: continue the interrupted run in ``out_dir`` from its ``last.pt``.
        progress: show a rich progress bar per epoch (on stderr).
        callbacks: functions called with a :class:`StepInfo` after every optimiser step.
        console: a ``rich.console.Console`` for progress and messages.

    Returns:
        :class:`TrainResult`; ``metrics`` is the content of ``metrics.json``.
    """
    if recipe is None:
        if not resume or out_dir is None:
            raise FerlabError("train() needs a recipe unless it resumes a run folder")
        recipe = resume_recipe(out_dir)
    return _Trainer(recipe, data, out_dir, resume, progress, callbacks, console).run()


class _Trainer:
    def __init__(
        self,
        recipe: Recipe,
        data: Any,
        out_dir: str | Path | None,
        resume: bool,
        progress: bool,
        callbacks: Sequence[Callable[[StepInfo], None]],
        console: Any,
    ) -> None:
        self.r = recipe
        self.out = Path(out_dir) if out_dir is not None else Path("runs") / (recipe.name or "run")
        self.resume = resume
        self._best_ckpt: dict | None = None
        self.show_progress = progress
        self.callbacks = list(callbacks)
        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.data = data

    # ------------------------------------------------------------------ setup
    def _setup_device(self) -> None:
        t = self.r.train
        use_cuda = torch_device(t.device).startswith("cuda")
        self.dist = D.setup(use_cuda)
        self.is_main = self.dist.is_main
        if use_cuda:
            self.device = torch.device("cuda", self.dist.local_rank if self.dist.enabled else 0)
        else:
            self.device = torch.device("cpu")
            per_proc = max(1, (os.cpu_count() or 1) // max(1, self._local_world()))
            torch.set_num_threads(t.num_threads or per_proc)
        prec = t.precision
        if prec == "auto":
            # CPU bf16 autocast is 5-9x slower than fp32 without native bf16 arithmetic (AVX2)
            # and about 2x faster with it (AVX-512 BF16 / AMX): docs/training.md.
            cuda_amp = "bf16" if use_cuda and torch.cuda.is_bf16_supported() else "fp16"
            prec = cuda_amp if use_cuda else ("bf16" if cpu_has_native_bf16() else "fp32")
        if prec == "fp16" and not use_cuda:
            raise FerlabError("precision fp16 needs CUDA; use fp32 or bf16 on CPU")
        self.precision = prec
        self.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(prec)
        self.channels_last = t.channels_last
        if use_cuda:
            # CPU kernels are already deterministic at a fixed thread count; asking PyTorch
            # for deterministic algorithms there only costs a multi-second import.
            if t.deterministic:
                torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = not t.deterministic

    def _local_world(self) -> int:
        return int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))

    def _load_data(self) -> Any:
        if self.data is not None:
            return self.data
        d = self.r.data
        if not d.path:
            raise FerlabError("no data: pass --data PATH or set data.path in the recipe")
        from ferlab.data import load_dataset

        return load_dataset(
            d.path,
            ferplus=d.ferplus,
            labels=d.labels,
            cache_dir=d.cache_dir,
            skip_bad=d.skip_bad,
            val_fraction=d.val_fraction,
            seed=self.r.train.seed,
            progress=self.show_progress and self.is_main,
            ferplus_weight=d.ferplus_weight,
        )

    def _setup_data(self, ckpt: dict | None) -> None:
        data = self._load_data()
        r = self.r
        seed = r.train.seed
        self.classes = tuple(data.classes)
        self.num_classes = len(self.classes)
        self.label_mode = getattr(data, "label_mode", "fer2013")
        self.mode = target_mode(self.label_mode, data.targets is not None)
        parts = {}
        for i, name in enumerate(("train", "val", "test")):
            part = data.subset(name)
            limit = r.data.max_train if name == "train" else r.data.max_eval
            if limit is not None and len(part) > limit:
                pick = torch.randperm(len(part), generator=_gen(seed, 3, i))[:limit]
                part = part.select(pick.sort().values)
            parts[name] = part
        if len(parts["train"]) == 0:
            raise DataError("the data has no training images", path=data.source or None)
        if len(parts["val"]) == 0:
            raise DataError(
                "the data has no validation images; set data.val_fraction (--val-fraction) "
                "to hold some training images out",
                path=data.source or None,
            )
        if ckpt is not None and tuple(ckpt["classes"]) != self.classes:
            raise DataError(
                f"the data's classes {list(self.classes)} differ from the run's "
                f"{list(ckpt['classes'])}",
                path=self.out / "last.pt",
            )
        self.distill = self._distill(parts["train"], ckpt)
        if self.distill is not None:
            parts["train"] = replace(parts["train"], targets=self.distill.pop("targets"))
            self.mode = "crossentropy"  # the teacher's targets are distributions
        size = int(parts["train"].images.shape[-1])
        crop = r.data.crop or size
        if crop > size:
            raise DataError(f"data.crop {crop} is larger than the {size}×{size} images")
        for name, part in parts.items():
            imgs = part.images
            if r.data.hist_eq:
                imgs = torch.from_numpy(equalize_hist(imgs.numpy()))
            parts[name] = (imgs, part.labels.clone(), part.targets)
        self.train_images, self.train_labels, self.train_soft = parts["train"]
        self.val_images, self.val_labels, _ = parts["val"]
        self.test_images, self.test_labels, _ = parts["test"]
        self.init_source = None
        if ckpt is not None:
            self.pre = Preprocess.from_dict(ckpt["preprocess"])
        elif r.model.init_from:
            # Fine-tuning keeps the source's input statistics: its filters were learnt on them.
            self.init_source = read_source(r.model.init_from)
            self.pre = Preprocess.from_dict(self.init_source[1]["preprocess"])
            if (self.pre.image_size, self.pre.crop, self.pre.hist_eq) != (
                size,
                crop,
                r.data.hist_eq,
            ):
                raise DataError(
                    f"model.init_from was trained on {self.pre.image_size}px images, crop "
                    f"{self.pre.crop}, hist_eq {self.pre.hist_eq}; this run has {size}px, "
                    f"crop {crop}, hist_eq {r.data.hist_eq}",
                    path=self.init_source[0],
                )
        else:
            mean, std = norm_stats(self.train_images, r.data.normalize)
            self.pre = Preprocess(
                image_size=size, crop=crop, hist_eq=r.data.hist_eq, mean=mean, std=std
            )
        self.aug = BatchAugment(r.augment, size, crop)
        shift_aug = ShiftAugment(r.shift_augment)
        self.shift_aug = shift_aug if shift_aug.enabled else None
        if self.device.type == "cuda":
            # 35k×48×48 uint8 is 80 MB: keep it on the GPU and gather batches there.
            self.train_images = self.train_images.to(self.device)
        self.norm_dev = (
            torch.from_numpy(self.pre.mean).to(self.device),
            torch.from_numpy(self.pre.std).to(self.device),
        )
        b = r.train.batch_size
        if b % self.dist.world:
            raise FerlabError(
                f"batch size {b} does not split evenly over {self.dist.world} processes"
            )
        self.local_batch = b // self.dist.world
        n = len(self.train_labels)
        if self.dist.enabled and n < b:
            raise DataError(f"{n} training images are fewer than one global batch of {b}")
        # Incomplete last batches are dropped: every step sees a full batch (batch norm and
        # DDP shards stay well defined) and the next epoch's permutation covers them.
        self.steps_per_epoch = max(1, n // b)
        self.class_weights = (
            class_balance_weights(self.train_labels, self.num_classes, r.train.class_balance)
            if r.train.class_balance
            else None
        )
        if r.train.balanced_sampling:
            counts = torch.bincount(self.train_labels, minlength=self.num_classes).double()
            self.sample_weights = (1.0 / counts.clamp(min=1))[self.train_labels]
        else:
            self.sample_weights = None

    def _distill(self, train: Any, ckpt: dict | None) -> dict[str, Any] | None:
        """Teacher targets for the training images (``targets``) and their provenance."""
        d = self.r.distill
        if not d.teacher:
            return None
        if train.targets is not None:
            raise DataError(
                f"distillation replaces the targets; data.labels '{self.label_mode}' has soft "
                "targets of its own: use fer2013 labels with distill.teacher"
            )
        from ferlab.engine.distill import distill_targets, teacher_probabilities

        before = None if ckpt is None else ckpt.get("distill")
        teacher = teacher_probabilities(
            d.teacher,
            train.images,
            self.classes,
            tta=d.tta,
            cache_dir=self.r.data.cache_dir,
            precision="bf16" if cpu_has_native_bf16() else "fp32",
            expect=before,
            progress=self.show_progress and self.is_main,
        )
        targets = distill_targets(teacher.probs, train.labels, d.weight, d.temperature)
        return {**teacher.meta, "targets": targets}

    def _setup_model(self, ckpt: dict | None) -> None:
        r = self.r
        torch.manual_seed(r.train.seed)
        if ckpt is not None:
            self.model_kwargs = dict(ckpt["model"]["kwargs"])
        else:
            self.model_kwargs = {
                **r.model.kwargs,
                "num_classes": self.num_classes,
                "in_chans": 1,
                "input_size": self.pre.crop,
            }
        model = build_model(r.model.name, self.model_kwargs)
        # The frozen face network's provenance; its weights are in the model's state_dict.
        self.face_network = None if ckpt is None else ckpt.get("face_network")
        if r.model.face_checkpoint and ckpt is None:
            self.face_network = load_face_network(model, r.model.face_checkpoint, self.pre)
        self.init_from = None if ckpt is None else ckpt.get("init_from")
        if self.init_source is not None:
            self.init_from = load_initial_weights(
                model, r.model.name, self.model_kwargs, *self.init_source
            )
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        self.model = model
        self.n_params = sum(p.numel() for p in model.parameters())
        o = r.optim
        params: list = [p for p in model.parameters() if p.requires_grad]
        if o.weight_decay_on is not None:
            # An L2 term on some layers only (Jahromi & Fyshe's fully connected ones).
            named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
            on = [p for n, p in named if n.startswith(tuple(o.weight_decay_on))]
            if not on:
                raise FerlabError(
                    f"optim.weight_decay_on {o.weight_decay_on}: no parameter of "
                    f"{r.model.name} starts with these names"
                )
            ids = {id(p) for p in on}
            off = [p for _, p in named if id(p) not in ids]
            params = [{"params": on}, {"params": off, "weight_decay": 0.0}]
        if o.nesterov and (o.name != "sgd" or o.momentum <= 0):
            raise FerlabError("optim.nesterov needs optim.name sgd with a positive momentum")
        if o.name == "sgd":
            self.opt = torch.optim.SGD(
                params,
                lr=o.lr,
                momentum=o.momentum,
                nesterov=o.nesterov,
                weight_decay=o.weight_decay,
            )
        elif o.name == "adam":
            self.opt = torch.optim.Adam(
                params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
            )
        else:
            self.opt = torch.optim.AdamW(
                params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
            )
        self.sched = LRSchedule(r.schedule, o.lr, self.steps_per_epoch)
        self.ema = _Ema(model, r.train.ema) if r.train.ema else None
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        if self.dist.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        else:
            self.ddp = model
        self.forward = torch.compile(self.ddp) if r.train.compile else self.ddp

    def _restore(self, ckpt: dict) -> None:
        ts = ckpt["train_state"]
        self.model.load_state_dict(ts.get("model_raw", ckpt["state_dict"]))
        self.opt.load_state_dict(ts["optimizer"])
        self.sched.load_state_dict(ts["schedule"])
        if self.ema is not None and ts.get("ema") is not None:
            self.ema.load_state_dict({"weights": ckpt["state_dict"], **ts["ema"]})
        best_path = self.out / "best.pt"
        if ts.get("best") is not None and not best_path.exists() and self.is_main:
            atomic_save(ts["best"], best_path)
        if best_path.exists():
            from ferlab.engine.checkpoint import read_checkpoint

            self._best_ckpt = read_checkpoint(best_path)
        if self.scaler is not None and ts.get("scaler") is not None:
            self.scaler.load_state_dict(ts["scaler"])
        s = self.state
        for key in (
            "epoch",
            "step_in_epoch",
            "global_step",
            "total_steps",
            "best_step",
            "bad_epochs",
            "run_correct",
            "run_seen",
        ):
            setattr(s, key, int(ts[key]))
        for key in (
            "elapsed",
            "cpu_time",
            "best_val",
            "best_epoch",
            "run_loss",
            "epoch_time",
            "val_time",
        ):
            setattr(s, key, float(ts.get(key, 0.0)))
        s.history = list(ts["history"])
        _set_rng_state(ts["rng"])
        if not self.is_main:
            # Running sums are stored globally reduced; only one process may carry them.
            s.run_loss, s.run_correct, s.run_seen = 0.0, 0, 0

    # ------------------------------------------------------------- checkpoints
    def _meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "ferlab_version": __version__,
            "model": {"name": self.r.model.name, "kwargs": self.model_kwargs},
            "classes": list(self.classes),
            "label_mode": self.label_mode,
            "input_size": (1, self.pre.crop, self.pre.crop),
            # Statistics as tensors, as the checkpoint's other numbers: its digest covers them.
            "preprocess": {
                **self.pre.to_dict(),
                "mean": torch.tensor(self.pre.mean),
                "std": torch.tensor(self.pre.std),
            },
            "recipe": self.r.to_dict(),
            **({"face_network": self.face_network} if self.face_network else {}),
            **({"init_from": self.init_from} if self.init_from else {}),
            **({"distill": self.distill} if self.distill else {}),
        }

    def _usable_weights(self) -> dict[str, torch.Tensor]:
        src = self.ema.module if self.ema is not None else self.model
        return {k: v.detach().cpu().clone() for k, v in src.state_dict().items()}

    def _save_last(self) -> None:
        s = self.state
        ts: dict[str, Any] = {
            "optimizer": self.opt.state_dict(),
            "schedule": self.sched.state_dict(),
            # The EMA weights are the checkpoint's state_dict already; store only the counter.
            "ema": None if self.ema is None else {"updates": self.ema.updates},
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": _rng_state(),
            "history": s.history,
            "world_size": self.dist.world,
        }
        for key in (
            "epoch",
            "step_in_epoch",
            "global_step",
            "total_steps",
            "best_val",
            "best_epoch",
            "best_step",
            "bad_epochs",
            "epoch_time",
            "val_time",
        ):
            ts[key] = getattr(s, key)
        ts["elapsed"] = self._elapsed()
        ts["cpu_time"] = self._cpu_time()
        # A copy of best.pt makes last.pt alone enough to resume, e.g. on another machine.
        ts["best"] = self._best_ckpt
        loss, correct, seen = self._reduced_running()
        ts["run_loss"], ts["run_correct"], ts["run_seen"] = loss, correct, seen
        if self.ema is not None:
            ts["model_raw"] = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        if not self.is_main:
            return
        ckpt = {
            **self._meta(),
            "state_dict": self._usable_weights(),
            "metrics": {"best_val_accuracy": s.best_val, "best_epoch": s.best_epoch},
            "epoch": s.epoch,
            "step": s.global_step,
            "train_state": ts,
        }
        atomic_save(ckpt, self.out / "last.pt")

    def _save_best(self, val: dict) -> None:
        if not self.is_main:
            return
        ckpt = {
            **self._meta(),
            "state_dict": self._usable_weights(),
            "metrics": {"val": {k: val[k] for k in ("accuracy", "macro_f1", "per_class", "n")}},
            "epoch": self.state.best_epoch,
            "step": self.state.global_step,
        }
        atomic_save(ckpt, self.out / "best.pt")
        self._best_ckpt = ckpt

    def _write_history(self) -> None:
        if not self.is_main:
            return
        tmp = self.out / ".history.csv.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=HISTORY_FIELDS)
            w.writeheader()
            w.writerows(self.state.history)
        os.replace(tmp, self.out / "history.csv")

    # ------------------------------------------------------------------- steps
    def _elapsed(self) -> float:
        return self.elapsed_before + (time.perf_counter() - self.session_start)

    def _cpu_time(self) -> float:
        return self.cpu_before + (time.process_time() - self.cpu_start)

    def _clock(self) -> float:
        """The time budget's clock: wall-clock or process CPU seconds."""
        return time.process_time() if self.cpu_clock else time.perf_counter()

    def _used(self) -> float:
        """Budget spent so far, on the budget's clock."""
        return self._cpu_time() if self.cpu_clock else self._elapsed()

    def _reduced_running(self) -> tuple[float, int, int]:
        s = self.state
        t = torch.tensor(
            [s.run_loss, float(s.run_correct), float(s.run_seen)],
            dtype=torch.float64,
            device=self._sync_device(),
        )
        D.all_reduce_sum(t, self.dist)
        return float(t[0]), int(t[1]), int(t[2])

    def _sync_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        g = _gen(self.r.train.seed, 1, epoch)
        n = len(self.train_labels)
        if self.sample_weights is not None:
            return torch.multinomial(self.sample_weights, n, replacement=True, generator=g)
        return torch.randperm(n, generator=g)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _step(self, batch_idx: torch.Tensor, step: int, lr: float) -> tuple[torch.Tensor, int]:
        g = _gen(self.r.train.seed, 2, step)
        params = self.aug.sample(len(batch_idx), g)
        # Targets and augmentation parameters are drawn for the whole global batch, then each
        # process takes its slice: N processes then see exactly what one process would.
        soft = None if self.train_soft is None else self.train_soft[batch_idx]
        target_all = batch_targets(
            self.mode, self.train_labels[batch_idx], soft, self.num_classes, g
        )
        lo = self.dist.rank * self.local_batch
        hi = lo + self.local_batch if self.dist.enabled else len(batch_idx)
        idx = batch_idx[lo:hi]
        p = {k: v.to(self.device) for k, v in BatchAugment.slice(params, lo, hi).items()}
        images = self.train_images[idx.to(self.train_images.device)]
        if self.shift_aug is not None:
            # Its own generator: recipes without it keep their random streams. Drawn per
            # process (photometric shifts need no global-batch agreement).
            images = self.shift_aug(images.cpu(), _gen(self.r.train.seed, 4, step, lo))
        images = images.to(self.device)
        x = self.aug.apply(normalize_batch(images, *self.norm_dev), p)
        x, target = self.aug.mix(x, target_all[lo:hi].to(self.device), g)
        labels = self.train_labels[idx].to(self.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.model.train()
        with self._autocast():
            logits = self.forward(x)
            loss = loss_fn(
                logits, target, self.mode, self.r.train.label_smoothing, self.class_weights
            )
        self.opt.zero_grad(set_to_none=True)
        clip = self.r.optim.grad_clip
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            if clip:
                self.scaler.unscale_(self.opt)
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.scaler.step(self.opt)
            self.scaler.update()
        else:
            loss.backward()
            if clip:
                nn.utils.clip_grad_norm_(self.model.parameters(), clip)
            self.opt.step()
        if self.ema is not None:
            self.ema.update(self.model)
        correct = int((logits.detach().argmax(1) == labels).sum())
        return loss.detach(), correct

    # -------------------------------------------------------------- evaluation
    def _eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    def _validate(self) -> dict:
        """Validation metrics and loss, sharded over processes and summed."""
        model = self._eval_model()
        shard = torch.arange(self.dist.rank, len(self.val_labels), self.dist.world)
        probs = predict_proba(
            model,
            self.val_images[shard],
            self.pre,
            batch_size=self.r.train.eval_batch_size,
            device=self.device,
            equalized=True,
            channels_last=self.channels_last,
        )
        labels = self.val_labels[shard]
        cm = confusion_matrix(labels, probs.argmax(1), self.num_classes).to(self._sync_device())
        nll = -torch.log(probs.gather(1, labels[:, None]).clamp(min=1e-12)).sum()
        loss_sum = torch.tensor([float(nll)], dtype=torch.float64, device=self._sync_device())
        D.all_reduce_sum(cm, self.dist)
        D.all_reduce_sum(loss_sum, self.dist)
        out = metrics_from_confusion(cm.cpu(), self.classes)
        out["loss"] = float(loss_sum) / max(1, out["n"])
        return out

    # --------------------------------------------------------------- decisions
    def _estimate_total(self, rate: float) -> None:
        """Lay the schedule over the steps expected to fit the remaining time budget."""
        s = self.state
        cap = self.r.train.epochs * self.steps_per_epoch
        if self.budget is None or rate <= 0:
            s.total_steps = cap
            return
        remaining = max(0.0, self.budget - self._used())
        est = s.global_step + int(remaining * rate)
        t = torch.tensor([min(cap, max(est, s.global_step + 1))], device=self._sync_device())
        s.total_steps = int(D.broadcast(t, self.dist))

    def _decide(self, stop_signal: _StopSignal) -> tuple[bool, bool, bool]:
        """(stop for signal, stop for time, write a mid-epoch checkpoint), agreed by all ranks."""
        t = self.r.train
        s = self.state
        by_signal = stop_signal.requested
        # Stop early enough to validate the partial epoch within the budget.
        by_time = self.budget is not None and self._used() + s.val_time >= self.budget
        every = t.checkpoint_every_minutes
        ckpt = bool(t.checkpoint_every_steps) and s.global_step % t.checkpoint_every_steps == 0
        if every is not None and time.perf_counter() - self.last_ckpt_time >= 60 * every:
            ckpt = True
        flags = torch.tensor(
            [by_signal, by_time, ckpt], dtype=torch.int32, device=self._sync_device()
        )
        D.broadcast(flags, self.dist)
        return bool(flags[0]), bool(flags[1]), bool(flags[2])

    # --------------------------------------------------------------------- run
    def run(self) -> TrainResult:
        self._setup_device()
        try:
            result = self._run()
        except BaseException:
            D.teardown(self.dist)
            raise
        D.teardown(self.dist, wait=True)
        return result

    def _prepare_out(self) -> dict | None:
        from ferlab.engine.checkpoint import read_checkpoint

        check_run_folder(self.out, self.resume)
        return read_checkpoint(self.out / "last.pt") if self.resume else None

    def _run(self) -> TrainResult:
        ckpt = self._prepare_out()
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            remove_stale_temp_files(self.out)
        r = self.r
        self.budget = (
            parse_duration(r.train.time_budget, where="train.time_budget")
            if r.train.time_budget
            else None
        )
        self._setup_data(ckpt)
        self._setup_model(ckpt)
        self.state = _State()
        if ckpt is not None:
            self._restore(ckpt)
            del ckpt
        else:
            torch.manual_seed(r.train.seed)
            np.random.seed(r.train.seed % 2**32)
            random.seed(r.train.seed)
        if self.is_main:
            save_recipe(r, self.out / "config.yaml")
        self.elapsed_before, self.cpu_before = self.state.elapsed, self.state.cpu_time
        if self.resume and self.budget is not None and self.is_main:
            used = self.cpu_before if r.train.budget_clock == "cpu" else self.elapsed_before
            self.console.print(
                f"resuming with {used:.0f} s of the {r.train.time_budget} time budget used: the "
                "budget is the whole run's, across resumes"
                + (
                    "; nothing is left, give a larger one to train on"
                    if used >= self.budget
                    else ""
                ),
                highlight=False,
                markup=False,
            )
        self.session_start, self.cpu_start = time.perf_counter(), time.process_time()
        self.cpu_clock = r.train.budget_clock == "cpu"
        clock_start = self._clock()
        self.last_ckpt_time = self.session_start
        if not self.state.total_steps or self.budget is None:
            self._estimate_total(0.0)
        with _StopSignal() as stop_signal:
            self._loop(stop_signal, clock_start)
        s = self.state
        if s.stop_reason == "interrupted":
            self._save_last()
            return TrainResult(self.out, {}, "interrupted")
        return TrainResult(self.out, self._finish(), s.stop_reason or "completed")

    def _loop(self, stop_signal: _StopSignal, clock_start: float) -> None:
        r, s = self.r, self.state
        b, spe = r.train.batch_size, self.steps_per_epoch
        session_steps = 0
        rate_start: float | None = None
        progress = self._progress()
        with progress:
            while s.epoch < r.train.epochs:
                if self.budget is not None and self._used() >= self.budget:
                    s.stop_reason = "time_budget"
                    return
                if (
                    r.train.early_stopping
                    and s.bad_epochs >= r.train.early_stopping
                    and s.epoch >= (r.train.min_epochs or 0)
                ):
                    s.stop_reason = "early_stopping"
                    return
                order = self._epoch_order(s.epoch)
                task = progress.add_task(
                    f"epoch {s.epoch + 1}/{r.train.epochs}",
                    total=spe,
                    completed=s.step_in_epoch,
                    loss=float("nan"),
                    acc=float("nan"),
                    ips=0.0,
                )
                epoch_t0 = time.perf_counter() - s.epoch_time
                while s.step_in_epoch < spe:
                    i = s.step_in_epoch
                    batch_idx = order[i * b : (i + 1) * b]
                    lr = self.sched.lr(s.global_step, s.total_steps)
                    loss, correct = self._step(batch_idx, s.global_step, lr)
                    s.global_step += 1
                    s.step_in_epoch += 1
                    session_steps += 1
                    loss_v = float(loss)
                    s.run_loss += loss_v * self.local_batch
                    s.run_correct += correct
                    s.run_seen += self.local_batch
                    s.epoch_time = time.perf_counter() - epoch_t0
                    if session_steps == _WARMUP_STEPS:
                        rate_start = self._clock()
                    elif session_steps == _WARMUP_STEPS + _MEASURE_AFTER and self.budget:
                        rate = _MEASURE_AFTER / max(1e-9, self._clock() - rate_start)
                        if not s.val_time:
                            # Until a validation is timed, assume that a forward pass costs
                            # half a training step per image (measured 0.3-0.65 in the zoo).
                            s.val_time = 0.5 * len(self.val_labels) / (rate * b)
                        self._estimate_total(rate)
                    if s.step_in_epoch % 5 == 0 or s.step_in_epoch == spe:
                        progress.update(
                            task,
                            completed=s.step_in_epoch,
                            loss=s.run_loss / max(1, s.run_seen),
                            acc=s.run_correct / max(1, s.run_seen),
                            ips=s.step_in_epoch * b / max(1e-9, s.epoch_time),
                        )
                    by_signal, by_time, ckpt_due = self._decide(stop_signal)
                    if by_signal:
                        s.stop_reason = "interrupted"
                        return
                    if ckpt_due and s.step_in_epoch < spe:
                        self._save_last()
                        self.last_ckpt_time = time.perf_counter()
                    info = StepInfo(s.epoch, s.global_step, s.step_in_epoch, spe, loss_v, lr)
                    for cb in self.callbacks:
                        cb(info)
                    if by_time:
                        s.stop_reason = "time_budget"
                        break
                progress.remove_task(task)
                self._end_epoch(partial=s.step_in_epoch < spe)
                if s.stop_reason:
                    return
                if self.budget is not None:
                    rate = session_steps / max(1e-9, self._clock() - clock_start)
                    self._estimate_total(rate)

    def _end_epoch(self, partial: bool) -> None:
        s, spe = self.state, self.steps_per_epoch
        t0 = self._clock()
        val = self._validate()
        s.val_time = self._clock() - t0
        loss, correct, seen = self._reduced_running()
        epoch_pos = s.epoch + s.step_in_epoch / spe
        row = {
            "epoch": round(epoch_pos, 4),
            "steps": s.global_step,
            "lr": self.opt.param_groups[0]["lr"],
            "train_loss": loss / max(1, seen),
            "train_acc": correct / max(1, seen),
            "val_loss": val["loss"],
            "val_acc": val["accuracy"],
            "val_macro_f1": val["macro_f1"],
            "elapsed_s": round(self._elapsed(), 2),
            "img_per_s": round(seen / max(1e-9, s.epoch_time), 1),
        }
        s.history.append(row)
        if not partial:
            self.sched.epoch_end(val["accuracy"])
        if val["accuracy"] > s.best_val:
            s.best_val, s.best_epoch, s.best_step = val["accuracy"], epoch_pos, s.global_step
            s.bad_epochs = 0
            self._save_best(val)
        elif not partial:
            s.bad_epochs += 1
        if self.show_progress and self.is_main:
            self.console.print(
                f"epoch {epoch_pos:g}: train loss {row['train_loss']:.4f} "
                f"acc {row['train_acc']:.2%} | val loss {val['loss']:.4f} "
                f"acc {val['accuracy']:.2%} (best {s.best_val:.2%}) | lr {row['lr']:.3g} | "
                f"{row['img_per_s']:.0f} img/s",
                highlight=False,
            )
        if not partial:
            s.epoch += 1
            s.step_in_epoch = 0
        s.run_loss, s.run_correct, s.run_seen, s.epoch_time = 0.0, 0, 0, 0.0
        self._write_history()
        self._save_last()
        self.last_ckpt_time = time.perf_counter()

    def _progress(self) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        return Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.3f} acc {task.fields[acc]:.1%}"),
            TextColumn("{task.fields[ips]:.0f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=not (self.show_progress and self.is_main),
            transient=True,
        )

    # ------------------------------------------------------------------ finish
    def _finish(self) -> dict[str, Any]:
        """Evaluate ``best.pt`` once on val and test (rank 0), write metrics.json and plots."""
        s, r = self.state, self.r
        train_time = self._elapsed()
        metrics: dict[str, Any] = {}
        if self.is_main:
            from ferlab.engine import plots
            from ferlab.engine.checkpoint import read_checkpoint

            best = read_checkpoint(self.out / "best.pt")
            model = build_model(r.model.name, self.model_kwargs)
            model.load_state_dict(best["state_dict"])
            model.to(self.device).eval()
            if self.channels_last:
                model.to(memory_format=torch.channels_last)
            tta = r.eval.tta
            results = {}
            for split, images, labels in (
                ("val", self.val_images, self.val_labels),
                ("test", self.test_images, self.test_labels),
            ):
                if len(labels) == 0:
                    results[split] = None
                    continue
                probs = predict_proba(
                    model,
                    images,
                    self.pre,
                    tta=tta,
                    batch_size=r.train.eval_batch_size,
                    device=self.device,
                    equalized=True,
                    channels_last=self.channels_last,
                )
                pred = probs.argmax(1)
                cm = confusion_matrix(labels, pred, self.num_classes)
                results[split] = metrics_from_confusion(cm, self.classes)
                if r.eval.plots:
                    path = self.out / f"confusion_{split}.png"
                    plots.confusion(results[split]["confusion"], self.classes, path, split)
                if r.eval.plots and split == "test":
                    path = self.out / "misclassified_test.png"
                    plots.misclassified(images, labels, pred, self.classes, path)
            if r.eval.plots and s.history:
                plots.curves(s.history, self.out / "curves.png")
            metrics = {
                "name": r.name,
                "model": r.model.name,
                "model_kwargs": self.model_kwargs,
                "params": self.n_params,
                "classes": list(self.classes),
                "label_mode": self.label_mode,
                "stop_reason": s.stop_reason or "completed",
                "epochs": round(s.epoch + s.step_in_epoch / self.steps_per_epoch, 4),
                "steps": s.global_step,
                "train_time_s": round(train_time, 2),
                "cpu_time_s": round(self._cpu_time(), 2),
                "time_budget": r.train.time_budget,
                "budget_clock": r.train.budget_clock,
                "best_epoch": s.best_epoch,
                "tta": tta,
                "val": results["val"],
                "test": results["test"],
                "paper": dict(r.paper.__dict__),
                "device": str(self.device),
                "precision": self.precision,
                "world_size": self.dist.world,
                "ferlab_version": __version__,
            }
            if self.face_network:
                # Which frozen face network this run attended with, checkable without its weights.
                metrics["face_network"] = {k: self.face_network[k] for k in ("path", "sha256")}
            best["metrics"] = {**best["metrics"], "test": _brief(results["test"]), "tta": tta}
            atomic_save(best, self.out / "best.pt")
            # Lets a later run that loads these weights (a face network) be matched to this run.
            metrics["best_sha256"] = file_sha256(self.out / "best.pt")
            tmp = self.out / ".metrics.json.tmp"
            tmp.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, self.out / "metrics.json")
        D.barrier(self.dist)
        return metrics


def _brief(m: dict | None) -> dict | None:
    return None if m is None else {k: m[k] for k in ("accuracy", "macro_f1", "per_class", "n")}
