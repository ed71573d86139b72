"""Run folders as the report reads them, and the machine record the runner writes into them."""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from ferlab.engine.recipe import Recipe, recipe_from_dict
from ferlab.errors import DataError

__all__ = [
    "MACHINE_FILE",
    "RunRecord",
    "cpu_name",
    "epoch_seconds",
    "folder_runs",
    "pace",
    "protocol_difference",
    "read_run",
    "record_machine",
    "shown_path",
]

T = TypeVar("T")

MACHINE_FILE = "machine.json"
"""Written into a run folder by the runner, one entry per training session."""


@dataclass
class RunRecord:
    """What the report needs from one run folder."""

    path: Path
    name: str
    seed: int
    recipe: Recipe
    """The run's resolved recipe (``config.yaml``)."""
    finished: bool
    public: float | None = None
    """Accuracy (0–1) on the validation split: FER2013 PublicTest, where the model was selected."""
    private: float | None = None
    """Accuracy (0–1) on the test split: FER2013 PrivateTest, evaluated once."""
    epochs: float | None = None
    """Epochs trained (finished runs), or the last epoch in ``history.csv``."""
    cpu_time_s: float | None = None
    train_time_s: float | None = None
    params: int | None = None
    device: str = ""
    precision: str = ""
    """``fp32``/``bf16``/``fp16`` as trained (``metrics.json``), else the recipe's setting."""
    stop_reason: str = ""
    best_epoch: float | None = None
    label_mode: str = ""
    majority: float | None = None
    """Share (0–1) of PrivateTest predictions falling on the most predicted class."""
    public_correct: tuple[int, ...] = ()
    """PublicTest images predicted right, per class (the validation confusion's diagonal)."""
    machine: str = ""
    best_sha256: str = ""
    """SHA-256 of the run's ``best.pt`` (runs since ferlab recorded it), so that runs loading
    these weights can be matched to this run."""
    face_sha256: str = ""
    """SHA-256 of the face network's ``best.pt`` a facial-attention run loaded, where recorded."""
    history: tuple[dict[str, float], ...] = ()
    """``history.csv``: one row per validation (epoch, lr, train_acc, val_acc, elapsed_s...)."""

    @property
    def budget(self) -> tuple[str | None, str]:
        return self.recipe.train.time_budget, self.recipe.train.budget_clock

    def stopped_before(self, min_epochs: int | None) -> bool:
        """Whether early stopping ended the run before ``min_epochs`` (a recipe's minimum, which
        only delays early stopping: a run that went past it is the same run)."""
        return (
            bool(min_epochs)
            and self.stop_reason == "early_stopping"
            and (self.epochs or 0) < min_epochs
        )

    @property
    def final_train_acc(self) -> float | None:
        """Training accuracy (0–1) over the last epoch in ``history.csv``."""
        return self.history[-1].get("train_acc") if self.history else None

    @property
    def seconds_per_epoch(self) -> float | None:
        """Training wall-clock seconds per epoch (validation included)."""
        if self.history:
            last = self.history[-1]
            if last.get("epoch") and last.get("elapsed_s"):
                return last["elapsed_s"] / last["epoch"]
        if self.train_time_s and self.epochs:
            return self.train_time_s / self.epochs
        return None


def epoch_seconds(runs: Iterable[RunRecord]) -> dict[tuple[str, str], float]:
    """Measured training seconds per epoch of each (recipe name, precision as trained) among
    ``runs``, finished or not: the fastest of its runs (the least shared CPU). Kept apart by
    precision: on one CPU fp32 and bf16 autocast train at different speeds."""
    out: dict[tuple[str, str], float] = {}
    for run in runs:
        if run.seconds_per_epoch:
            key = (run.name, run.precision)
            out[key] = min(out.get(key, run.seconds_per_epoch), run.seconds_per_epoch)
    return out


def pace(timings: Mapping[tuple[str, str], T], name: str, precision: str) -> tuple[T, str] | None:
    """``timings`` of recipe ``name`` in ``precision``, else in another precision, with the
    precision it was measured in (so that an estimate can say it was timed otherwise). A recipe
    left to the CPU (``auto``) trains in whatever its runs trained in: any of them is its own."""
    if (name, precision) in timings:
        return timings[(name, precision)], precision
    other = sorted(p for n, p in timings if n == name)
    if not other:
        return None
    return timings[(name, other[0])], precision if precision == "auto" else other[0]


def folder_runs(folder: str | Path | None) -> list[RunRecord]:
    """The readable run folders directly under ``folder`` (none when it does not exist)."""
    runs = []
    folder = None if folder is None else Path(folder)
    for config in sorted(folder.glob("*/config.yaml")) if folder and folder.is_dir() else []:
        try:
            runs.append(read_run(config.parent))
        except DataError:
            continue
    return runs


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON ({exc.msg})", path=path, row=exc.lineno) from None


def _machine_text(sessions: Sequence[dict]) -> str:
    """``AMD EPYC, 2 threads, shared (load 6.1)`` from the runner's session records."""
    cpus = sorted({str(s.get("cpu", "?")) for s in sessions})
    threads = sorted({int(s["threads"]) for s in sessions if s.get("threads")})
    parts = [" / ".join(cpus)]
    if threads:
        parts.append(f"{'/'.join(map(str, threads))} thread{'s' if threads[-1] > 1 else ''}")
    loads = [float(s["load_1m"]) for s in sessions if s.get("load_1m") is not None]
    cores = max((int(s.get("logical_cpus") or 0) for s in sessions), default=0)
    if loads and cores and max(loads) > 0.5 * cores:
        parts.append(f"shared (load {max(loads):.1f} on {cores} cores)")
    return ", ".join(parts)


def _history(path: Path) -> tuple[dict[str, float], ...]:
    """``history.csv`` as numbers; a missing or unreadable file gives none."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            return tuple(
                {k: float(v) for k, v in row.items() if k and v not in (None, "")}
                for row in csv.DictReader(f)
            )
    except (OSError, TypeError, ValueError):
        return ()


def read_run(run_dir: str | Path) -> RunRecord:
    """One run folder: its resolved recipe, its history, and its results once it has finished."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise DataError("not a run folder (no config.yaml)", path=run_dir)
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        raise DataError("not valid YAML", path=config_path) from None
    if not isinstance(raw, dict):
        raise DataError("not a recipe mapping", path=config_path)
    recipe = recipe_from_dict(raw, where=str(config_path))
    record = RunRecord(
        path=run_dir,
        name=recipe.name or run_dir.name,
        seed=recipe.train.seed,
        recipe=recipe,
        finished=False,
        precision=recipe.train.precision,
        history=_history(run_dir / "history.csv"),
    )
    if record.history:
        record.epochs = record.history[-1].get("epoch")
    machine_path = run_dir / MACHINE_FILE
    if machine_path.is_file():
        sessions = _read_json(machine_path).get("sessions") or []
        record.machine = _machine_text(sessions) if sessions else ""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        return record
    m = _read_json(metrics_path)
    try:
        record.finished = True
        record.public = (m.get("val") or {}).get("accuracy")
        test = m.get("test") or {}
        record.private = test.get("accuracy")
        confusion = test.get("confusion")
        if confusion:
            predicted = [sum(col) for col in zip(*confusion, strict=True)]
            record.majority = max(predicted) / max(1, sum(predicted))
        val_confusion = (m.get("val") or {}).get("confusion") or []
        record.public_correct = tuple(int(row[i]) for i, row in enumerate(val_confusion))
        record.epochs = float(m["epochs"])
        record.cpu_time_s = m.get("cpu_time_s")
        record.train_time_s = m.get("train_time_s")
        record.params = m.get("params")
        record.device = str(m.get("device", ""))
        record.precision = str(m.get("precision") or record.precision)
        record.stop_reason = str(m.get("stop_reason", ""))
        record.best_epoch = m.get("best_epoch")
        record.label_mode = str(m.get("label_mode", ""))
        record.best_sha256 = str(m.get("best_sha256", ""))
        record.face_sha256 = str((m.get("face_network") or {}).get("sha256", ""))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"unexpected content ({exc})", path=metrics_path) from None
    record.machine = record.machine or record.device
    return record


def shown_path(path: str | Path) -> str:
    """``path`` relative to the working directory when it lies below it (as a report shows it)."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def record_machine(run_dir: str | Path, threads: int | None) -> None:
    """Append this machine to ``run_dir/machine.json`` (a run may span sessions and machines).

    ``threads`` is the number of CPU threads the run uses; the 1-minute load average says whether
    other jobs shared the CPU (its wall-clock time then says little about the network's speed).
    """
    run_dir = Path(run_dir)
    path = run_dir / MACHINE_FILE
    sessions = _read_json(path).get("sessions", []) if path.is_file() else []
    sessions.append(
        {
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu_name(),
            "logical_cpus": os.cpu_count(),
            "threads": threads or os.cpu_count(),
            "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(),
        }
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sessions": sessions}, indent=2) + "\n", encoding="utf-8")


# Fields that do not change what a run measures: where things are, how fast, which seed/budget.
# Precision is compared separately (a schedule may fix it).
_NOT_PROTOCOL = {
    "model": {"face_checkpoint"},
    "data": {"path", "ferplus", "cache_dir", "skip_bad"},
    "train": {
        "min_epochs",  # compared on the run's stop instead (report.build._matches)
        "time_budget",
        "budget_clock",
        "seed",
        "device",
        "precision",
        "channels_last",
        "compile",
        "num_threads",
        "eval_batch_size",
        "checkpoint_every_minutes",
        "checkpoint_every_steps",
        "deterministic",
    },
    "eval": {"plots"},
}


def protocol_difference(run: Recipe, recipe: Recipe) -> str | None:
    """The first protocol field in which a run's recipe differs from the recipe file, or None."""
    a, b = run.to_dict(), recipe.to_dict()
    for section, values in b.items():
        if section in ("paper", "name") or not isinstance(values, dict):
            continue
        for key, value in values.items():
            if key in _NOT_PROTOCOL.get(section, ()):
                continue
            if a[section].get(key) != value:
                return f"{section}.{key} is {a[section].get(key)!r}, the recipe's is {value!r}"
    return None
