"""The reproduction report: every configuration of the papers' tables beside ferlab's runs.

``ferlab compare RUN_DIR... --report FILE`` and ``benchmarks/reproduce.py`` build it from two
inputs: run folders written by :func:`ferlab.engine.train` (``metrics.json``, ``config.yaml``, and
``machine.json`` where the runner wrote one) and a plan, ``benchmarks/reproduction.yaml``, which
lists the papers' configurations in the order of their tables with the recipe behind each one and
holds the hand-written parts (notes, conclusions, the configurations a CPU cannot run). No number
of the report's tables is typed by hand.

How runs become rows. A run belongs to the configurations whose recipe has the run's name (the
recipe file's stem, which ``train`` stores in ``config.yaml``). It counts towards a row when

* its resolved recipe (``config.yaml``) matches the recipe file in every field that defines the
  protocol: model, data preparation, augmentation, optimiser, schedule, epochs, batch size and the
  other training choices, test-time augmentation. Seed, budget, paths, device and threads may
  differ. Otherwise it is listed under "Runs not counted" with the first differing field;
* it trained with the report's budget on the report's clock and from the row's CPU recipe, else
  it is summarised under "Other runs of these configurations" (a full-protocol GPU run, a smoke
  test, the paper's full-size network);
* it finished (``metrics.json``). Unfinished runs are mentioned in the row's note.

Two runs of a row with the same seed are not independent samples: the second is not counted.
Accuracies are the mean over seeds ± the sample standard deviation (n − 1 in the denominator).
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
import os
import platform
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferlab.engine.recipe import Recipe, load_recipe, parse_duration, recipe_from_dict
from ferlab.errors import DataError, FerlabError

__all__ = [
    "MACHINE_FILE",
    "Comparison",
    "Configuration",
    "cpu_name",
    "GpuOnly",
    "OtherGroup",
    "Paper",
    "Report",
    "ReproductionSpec",
    "Row",
    "RunRecord",
    "Stat",
    "build_report",
    "compare_rows",
    "draw_figures",
    "load_spec",
    "mean_sd",
    "protocol_difference",
    "protocol_text",
    "read_run",
    "record_machine",
    "render_markdown",
    "write_report",
]

MACHINE_FILE = "machine.json"
"""Written into a run folder by the runner, one entry per training session."""


# ---------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class Configuration:
    """One row of a paper's table and the recipe ferlab runs for it."""

    id: str
    paper: str
    label: str
    recipe: str
    """The paper's configuration (its accuracy and protocol): ``recipes/<recipe>.yaml``."""
    cpu_recipe: str
    """What is trained on the CPU for it (the recipe itself, or a smaller-backbone variant)."""
    seeds: int
    paper_accuracy: float | None = None
    reported_on: str = ""
    note: str = ""
    baseline: str | None = None
    """The row (id) this one adds ``change`` to."""
    change: str = ""
    run_on_cpu: bool = True
    """False for a network the CPU cannot train meaningfully even at the equal budget and that has
    no smaller variant: the runner skips it and the row points to the GPU section."""


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    hardware: str
    configurations: tuple[Configuration, ...]


@dataclass(frozen=True)
class GpuOnly:
    """A paper's full protocol that a CPU cannot run in reasonable time."""

    configuration: str
    why: str
    commands: str
    expected_time: str


@dataclass(frozen=True)
class ReproductionSpec:
    path: Path
    recipes_dir: Path
    budget: str | None
    budget_clock: str
    default_seeds: int
    face_network: str | None
    papers: tuple[Paper, ...]
    gpu_only: tuple[GpuOnly, ...]
    conclusions: str

    def configurations(self) -> list[Configuration]:
        return [c for p in self.papers for c in p.configurations]

    def recipe_path(self, name: str) -> Path:
        return self.recipes_dir / f"{name}.yaml"

    def load(self, name: str) -> Recipe:
        """``recipes/<name>.yaml``, validated."""
        return load_recipe(self.recipe_path(name))


_SPEC_KEYS = {
    "recipes",
    "budget",
    "budget_clock",
    "default_seeds",
    "face_network",
    "papers",
    "gpu_only",
    "conclusions",
}
_PAPER_KEYS = {"key", "title", "hardware", "configurations"}
_CONFIG_KEYS = {
    "id",
    "label",
    "recipe",
    "cpu_recipe",
    "seeds",
    "paper_accuracy",
    "reported_on",
    "note",
    "baseline",
    "change",
    "run_on_cpu",
}
_GPU_KEYS = {"configuration", "why", "commands", "expected_time"}


def _mapping(raw: Any, allowed: set[str], required: set[str], path: Path, where: str) -> dict:
    if not isinstance(raw, dict):
        raise DataError(f"{where} must be a mapping, not {raw!r}", path=path)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise DataError(
            f"unknown key '{unknown[0]}' in {where}; known keys: {', '.join(sorted(allowed))}",
            path=path,
        )
    missing = sorted(k for k in required if raw.get(k) in (None, ""))
    if missing:
        raise DataError(f"{where} lacks '{missing[0]}'", path=path)
    return raw


def _text(raw: dict, key: str) -> str:
    value = raw.get(key)
    return "" if value is None else " ".join(str(value).split())


def load_spec(path: str | Path) -> ReproductionSpec:
    """Read and check the report's plan (``benchmarks/reproduction.yaml``).

    Recipes are only named here; :func:`build_report` loads the ones it needs, so that a missing
    recipe is reported with the row that names it.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("reproduction plan not found", path=path) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        row = None if mark is None else mark.line + 1
        raise DataError(
            f"not valid YAML: {getattr(exc, 'problem', exc)}", path=path, row=row
        ) from None
    raw = _mapping(raw, _SPEC_KEYS, {"papers"}, path, "the plan")
    clock = str(raw.get("budget_clock") or "wall")
    if clock not in ("wall", "cpu"):
        raise DataError(f"budget_clock must be wall or cpu, not {clock!r}", path=path)
    budget = raw.get("budget")
    if budget is not None:
        budget = str(budget)
        parse_duration(budget, where=f"{path}: budget")
    default_seeds = raw.get("default_seeds", 1)
    if not isinstance(default_seeds, int) or default_seeds < 1:
        raise DataError(
            f"default_seeds must be a positive integer, not {default_seeds!r}", path=path
        )
    if not isinstance(raw["papers"], list) or not isinstance(raw.get("gpu_only") or [], list):
        raise DataError("papers and gpu_only must be lists", path=path)
    papers = []
    ids: set[str] = set()
    for i, p in enumerate(raw["papers"]):
        p = _mapping(p, _PAPER_KEYS, {"key", "title", "configurations"}, path, f"paper #{i + 1}")
        configs = []
        if not isinstance(p["configurations"], list):
            raise DataError(f"paper '{p['key']}': configurations must be a list", path=path)
        for j, c in enumerate(p["configurations"]):
            where = f"configuration #{j + 1} of paper '{p['key']}'"
            c = _mapping(c, _CONFIG_KEYS, {"id", "label", "recipe"}, path, where)
            if c["id"] in ids:
                raise DataError(f"configuration id '{c['id']}' is used twice", path=path)
            ids.add(c["id"])
            seeds = c.get("seeds", default_seeds)
            if not isinstance(seeds, int) or seeds < 1:
                raise DataError(f"{where}: seeds must be a positive integer", path=path)
            run_on_cpu = c.get("run_on_cpu", True)
            if not isinstance(run_on_cpu, bool):
                raise DataError(f"{where}: run_on_cpu must be true or false", path=path)
            accuracy = c.get("paper_accuracy")
            if accuracy is not None and not isinstance(accuracy, int | float):
                raise DataError(f"{where}: paper_accuracy must be a number", path=path)
            configs.append(
                Configuration(
                    id=str(c["id"]),
                    paper=str(p["key"]),
                    label=_text(c, "label"),
                    recipe=str(c["recipe"]),
                    cpu_recipe=str(c.get("cpu_recipe") or c["recipe"]),
                    seeds=seeds,
                    paper_accuracy=None if accuracy is None else float(accuracy),
                    reported_on=_text(c, "reported_on"),
                    note=_text(c, "note"),
                    baseline=c.get("baseline"),
                    change=_text(c, "change"),
                    run_on_cpu=run_on_cpu,
                )
            )
        papers.append(Paper(str(p["key"]), _text(p, "title"), _text(p, "hardware"), tuple(configs)))
    for c in (c for p in papers for c in p.configurations):
        if c.baseline is not None and c.baseline not in ids:
            raise DataError(f"configuration '{c.id}': unknown baseline '{c.baseline}'", path=path)
    gpu = []
    for i, g in enumerate(raw.get("gpu_only") or []):
        g = _mapping(g, _GPU_KEYS, _GPU_KEYS, path, f"gpu_only entry #{i + 1}")
        gpu.append(
            GpuOnly(
                _text(g, "configuration"),
                _text(g, "why"),
                str(g["commands"]).strip(),
                _text(g, "expected_time"),
            )
        )
    return ReproductionSpec(
        path=path,
        recipes_dir=(path.parent / str(raw.get("recipes") or "recipes")).resolve(),
        budget=budget,
        budget_clock=clock,
        default_seeds=default_seeds,
        face_network=None if raw.get("face_network") is None else str(raw["face_network"]),
        papers=tuple(papers),
        gpu_only=tuple(gpu),
        conclusions=str(raw.get("conclusions") or "").strip(),
    )


# ---------------------------------------------------------------------------------------- runs
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
    cpu_time_s: float | None = None
    train_time_s: float | None = None
    params: int | None = None
    device: str = ""
    machine: str = ""
    curve: tuple[tuple[float, float], ...] = ()
    """(training CPU minutes, PublicTest accuracy %) after each validation, from ``history.csv``."""

    @property
    def budget(self) -> tuple[str | None, str]:
        return self.recipe.train.time_budget, self.recipe.train.budget_clock


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


def read_run(run_dir: str | Path) -> RunRecord:
    """One run folder: its resolved recipe, and its results once it has finished."""
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
    name = recipe.name or run_dir.name
    record = RunRecord(
        path=run_dir, name=name, seed=recipe.train.seed, recipe=recipe, finished=False
    )
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
        record.private = (m.get("test") or {}).get("accuracy")
        record.epochs = float(m["epochs"])
        record.cpu_time_s = m.get("cpu_time_s")
        record.train_time_s = m.get("train_time_s")
        record.params = m.get("params")
        record.device = str(m.get("device", ""))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"unexpected content ({exc})", path=metrics_path) from None
    record.machine = record.machine or record.device
    record.curve = _validation_curve(run_dir / "history.csv", record)
    return record


def _validation_curve(path: Path, run: RunRecord) -> tuple[tuple[float, float], ...]:
    """The run's PublicTest accuracy against training time, on the CPU clock of its budget.

    ``history.csv`` times validations in wall-clock seconds; they are scaled by the run's CPU to
    wall ratio so that the curve ends at its CPU time. A missing or unreadable history gives none.
    """
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [(float(r["elapsed_s"]), float(r["val_acc"])) for r in csv.DictReader(f)]
    except (OSError, KeyError, TypeError, ValueError):
        return ()
    scale = 1.0
    if run.cpu_time_s and run.train_time_s:
        scale = run.cpu_time_s / run.train_time_s
    return tuple((t * scale / 60, 100 * acc) for t, acc in rows)


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

    ``threads`` is the number of CPU threads the run uses. The 1-minute load average says whether
    other jobs shared the CPU: with a CPU-time budget the run's compute is the same either way,
    but its wall-clock time is not.
    """
    run_dir = Path(run_dir)
    path = run_dir / MACHINE_FILE
    sessions = _read_json(path).get("sessions", []) if path.is_file() else []
    cpu = cpu_name()
    sessions.append(
        {
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cpu": cpu,
            "logical_cpus": os.cpu_count(),
            "threads": threads or os.cpu_count(),
            "load_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(),
        }
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"sessions": sessions}, indent=2) + "\n", encoding="utf-8")


# Fields that do not change what a run measures: where things are, how fast, which seed/budget.
_NOT_PROTOCOL = {
    "model": {"face_checkpoint"},
    "data": {"path", "ferplus", "cache_dir", "skip_bad"},
    "train": {
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
            if a[section][key] != value:
                return f"{section}.{key} is {a[section][key]!r}, the recipe's is {value!r}"
    return None


# ------------------------------------------------------------------------------------ the report
@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (None for fewer than 2 values) of n values."""

    n: int
    mean: float | None
    sd: float | None


def mean_sd(values: Iterable[float | None]) -> Stat:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return Stat(0, None, None)
    sd = statistics.stdev(vals) if len(vals) > 1 else None
    return Stat(len(vals), statistics.fmean(vals), sd)


@dataclass
class Row:
    config: Configuration
    recipe: Recipe | None
    """The paper's recipe (None when its file is missing or invalid: see ``problem``)."""
    cpu_recipe: Recipe | None
    runs: list[RunRecord] = field(default_factory=list)
    """Finished runs counted for the row, one per seed."""
    unfinished: list[RunRecord] = field(default_factory=list)
    problem: str = ""

    @property
    def paper_accuracy(self) -> float | None:
        if self.config.paper_accuracy is not None:
            return self.config.paper_accuracy
        return None if self.recipe is None else self.recipe.paper.reported_accuracy

    @property
    def reported_on(self) -> str:
        if self.config.reported_on:
            return self.config.reported_on
        return "" if self.recipe is None else self.recipe.paper.reported_on

    def stat(self, split: str) -> Stat:
        """``public`` or ``private`` accuracy in percent over the row's seeds."""
        return mean_sd(
            None if getattr(r, split) is None else 100 * getattr(r, split) for r in self.runs
        )

    @property
    def cpu_minutes(self) -> Stat:
        return mean_sd(None if r.cpu_time_s is None else r.cpu_time_s / 60 for r in self.runs)

    @property
    def epochs(self) -> Stat:
        return mean_sd(r.epochs for r in self.runs)


@dataclass
class OtherGroup:
    """Finished runs of a configuration's recipe at another budget, clock, device or size."""

    recipe: str
    labels: list[str]
    budget: str
    device: str
    runs: list[RunRecord]


@dataclass
class Comparison:
    """What a row's addition changed against its baseline row, on PrivateTest."""

    paper: str
    label: str
    baseline: str
    change: str
    delta: float | None
    """Mean PrivateTest difference in points (row − baseline)."""
    se: float | None
    """Standard error of ``delta`` (both rows need two seeds or more)."""
    verdict: str


@dataclass
class Report:
    spec: ReproductionSpec
    budget: str | None
    budget_clock: str
    rows: list[Row]
    others: list[OtherGroup]
    not_counted: list[tuple[Path, str]]
    unrelated: list[RunRecord]
    generated: str

    def rows_of(self, paper: str) -> list[Row]:
        return [r for r in self.rows if r.config.paper == paper]


def _same_budget(run: RunRecord, budget: str | None, clock: str) -> bool:
    run_budget, run_clock = run.budget
    if budget is None or run_budget is None:
        return budget is None and run_budget is None
    return run_clock == clock and math.isclose(parse_duration(run_budget), parse_duration(budget))


def _budget_text(budget: str | None, clock: str) -> str:
    if budget is None:
        return "full protocol (no time budget)"
    return f"{budget} of {'CPU' if clock == 'cpu' else 'wall-clock'} time"


def build_report(
    run_dirs: Iterable[str | Path],
    spec: ReproductionSpec,
    *,
    budget: str | None = None,
    budget_clock: str | None = None,
) -> Report:
    """Sort run folders into the plan's rows (see the module's docstring for the rules).

    ``budget`` (a duration such as ``20m``, or ``none`` for runs without a time budget: the full
    protocol) and ``budget_clock`` (``wall`` or ``cpu``) default to the plan's.
    """
    use_budget = spec.budget if budget is None else (None if budget == "none" else budget)
    clock = budget_clock or spec.budget_clock
    if clock not in ("wall", "cpu"):
        raise FerlabError(f"the budget clock must be wall or cpu, not {clock!r}")
    if use_budget is not None:
        parse_duration(use_budget, where="report budget")
    recipes: dict[str, Recipe | None] = {}
    problems: dict[str, str] = {}

    def recipe(name: str) -> Recipe | None:
        if name not in recipes:
            try:
                recipes[name] = spec.load(name)
            except FerlabError as exc:
                recipes[name], problems[name] = None, str(exc)
        return recipes[name]

    rows = []
    for c in spec.configurations():
        row = Row(c, recipe(c.recipe), recipe(c.cpu_recipe))
        row.problem = problems.get(c.recipe) or problems.get(c.cpu_recipe, "")
        rows.append(row)
    by_recipe: dict[str, list[Row]] = {}
    for row in rows:
        by_recipe.setdefault(row.config.cpu_recipe, []).append(row)
    paper_recipes = {row.config.recipe for row in rows}

    not_counted: list[tuple[Path, str]] = []
    unrelated: list[RunRecord] = []
    others: dict[tuple, OtherGroup] = {}
    counted: dict[str, dict[int, RunRecord]] = {}
    unfinished: dict[str, list[RunRecord]] = {}
    seen: set[Path] = set()
    for run_dir in sorted(Path(d) for d in run_dirs):
        key = run_dir.resolve()
        if key in seen:
            continue
        seen.add(key)
        try:
            run = read_run(run_dir)
        except FerlabError as exc:
            not_counted.append((run_dir, str(exc)))
            continue
        if run.name not in by_recipe and run.name not in paper_recipes:
            unrelated.append(run)
            continue
        reference = recipe(run.name)
        if reference is None:
            not_counted.append((run_dir, f"recipe {run.name} cannot be read"))
            continue
        difference = protocol_difference(run.recipe, reference)
        if difference is not None:
            not_counted.append(
                (run_dir, f"protocol differs from recipes/{run.name}.yaml: {difference}")
            )
            continue
        if run.name in by_recipe and _same_budget(run, use_budget, clock):
            if not run.finished:
                unfinished.setdefault(run.name, []).append(run)
                continue
            seeds = counted.setdefault(run.name, {})
            if run.seed in seeds:
                first = seeds[run.seed].path
                not_counted.append((run_dir, f"seed {run.seed} is already counted from {first}"))
                continue
            seeds[run.seed] = run
            continue
        if not run.finished:
            continue
        run_budget, run_clock = run.budget
        budget_label = _budget_text(run_budget, run_clock)
        group_key = (run.name, budget_label, run.device)
        if group_key not in others:
            labels = [
                r.config.label for r in rows if run.name in (r.config.recipe, r.config.cpu_recipe)
            ]
            others[group_key] = OtherGroup(run.name, labels, budget_label, run.device, [])
        others[group_key].runs.append(run)
    for row in rows:
        name = row.config.cpu_recipe
        row.runs = sorted(counted.get(name, {}).values(), key=lambda r: r.seed)
        row.unfinished = unfinished.get(name, [])
    return Report(
        spec=spec,
        budget=use_budget,
        budget_clock=clock,
        rows=rows,
        others=list(others.values()),
        not_counted=not_counted,
        unrelated=unrelated,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )


def compare_rows(report: Report) -> list[Comparison]:
    """Each row with a baseline against it, on mean PrivateTest accuracy.

    The verdict calls a difference a gain or a loss only when both rows have two seeds or more and
    the difference exceeds twice its standard error, ``sqrt(sd_a²/n_a + sd_b²/n_b)``: with two
    seeds this is a rough screen, not a significance test.
    """
    rows = {r.config.id: r for r in report.rows}
    out = []
    for row in report.rows:
        if row.config.baseline is None:
            continue
        base = rows[row.config.baseline]
        a, b = row.stat("private"), base.stat("private")
        delta = se = None
        if not (row.config.run_on_cpu and base.config.run_on_cpu):
            verdict = "GPU only: not run here"
        elif a.mean is None or b.mean is None:
            verdict = "not run yet"
        else:
            delta = a.mean - b.mean
            if a.n < 2 or b.n < 2:
                verdict = "one seed only: not conclusive"
            else:
                se = math.sqrt(a.sd**2 / a.n + b.sd**2 / b.n)
                if abs(delta) > 2 * se and delta != 0:
                    verdict = (
                        "gain beyond the seeds' spread"
                        if delta > 0
                        else "loss beyond the seeds' spread"
                    )
                else:
                    verdict = "within the seeds' spread"
        out.append(
            Comparison(
                row.config.paper,
                row.config.label,
                base.config.label,
                row.config.change,
                delta,
                se,
                verdict,
            )
        )
    return out


# ------------------------------------------------------------------------------------- Markdown
def protocol_text(recipe: Recipe) -> str:
    """The training protocol of a recipe in one line: epochs, batch, optimiser, schedule."""
    t, o, s = recipe.train, recipe.optim, recipe.schedule
    epochs = f"{t.epochs} epochs"
    if t.early_stopping:
        epochs += f" (early stopping after {t.early_stopping})"
    optimiser = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[o.name]
    if o.name == "sgd":
        optimiser += f"{' Nesterov' if o.nesterov else ''} momentum {o.momentum:g}"
    optimiser += f", lr {o.lr:g}"
    if o.weight_decay:
        optimiser += f", weight decay {o.weight_decay:g}"
    if s.kind == "constant":
        schedule = "constant lr"
    elif s.kind == "step":
        at = "/".join(f"{100 * m:g}" for m in s.milestones)
        schedule = f"lr ×{s.gamma:g} at {at} % of training"
    elif s.kind == "plateau":
        schedule = f"lr ×{s.factor:g} after {s.patience} epochs without gain"
    elif s.kind == "cosine":
        schedule = "cosine lr decay"
    else:
        schedule = "one-cycle lr"
    parts = [epochs, f"batch {t.batch_size}", optimiser, schedule]
    if recipe.eval.tta != "none":
        parts.append(f"{recipe.eval.tta.replace('_', '-')} test-time augmentation")
    return "; ".join(parts)


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _acc(stat: Stat) -> str:
    if stat.mean is None:
        return "—"
    if stat.sd is None:
        return f"{stat.mean:.2f} (n={stat.n})"
    return f"{stat.mean:.2f} ± {stat.sd:.2f} (n={stat.n})"


def _condensed(text: str, least: int = 80, limit: int = 240) -> str:
    """The first sentences of ``text`` up to about ``least`` characters, cut at ``limit``."""
    sentences = re.split(r"(?<=\.)\s+", " ".join(text.split()))
    out = ""
    for sentence in sentences:
        out = f"{out} {sentence}".strip()
        if len(out) >= least:
            break
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def _row_note(row: Row) -> str:
    c = row.config
    parts = []
    if row.problem:
        parts.append(f"Recipe problem: {row.problem}.")
    if c.cpu_recipe != c.recipe:
        parts.append(
            f"Ours: `{c.cpu_recipe}`, a smaller backbone the CPU can train; not the paper's "
            "network, so its accuracy is not comparable with the paper's."
        )
    if c.note:
        parts.append(c.note)
    elif row.recipe is not None and row.recipe.paper.notes:
        parts.append(_condensed(row.recipe.paper.notes))
    if row.runs and len(row.runs) < c.seeds:
        parts.append(f"{len(row.runs)} of {c.seeds} planned seeds so far.")
    if row.unfinished:
        parts.append(f"{len(row.unfinished)} run(s) unfinished.")
    cpu = row.cpu_minutes
    epochs = row.epochs
    # From one full epoch on, the validations' share of the time no longer dominates.
    if c.cpu_recipe == c.recipe and row.recipe is not None and cpu.mean and epochs.mean >= 1:
        hours = cpu.mean / epochs.mean * row.recipe.train.epochs / 60
        parts.append(f"The paper's {row.recipe.train.epochs} epochs ≈ {hours:.1f} CPU-hours here.")
    return " ".join(parts)


def _our_budget(row: Row) -> str:
    if not row.runs:
        return "—"
    epochs, cpu = row.epochs, row.cpu_minutes
    parts = [f"{_epochs(epochs.mean)} epochs"]
    if cpu.mean is not None:
        parts.append(f"{cpu.mean:.1f} CPU-min")
    machines = sorted({r.machine for r in row.runs if r.machine})
    parts.extend(machines)
    return ", ".join(parts)


def _epochs(x: float) -> str:
    return f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def _params(row: Row) -> str:
    counts = sorted({r.params for r in row.runs if r.params is not None})
    return " / ".join(f"{p / 1e6:.2f} M" for p in counts) or "—"


def _row_line(row: Row) -> str:
    c = row.config
    name = f"{c.label}<br>`{c.recipe}`"
    paper = "—" if row.paper_accuracy is None else f"{row.paper_accuracy:.2f}"
    protocol = "—" if row.recipe is None else protocol_text(row.recipe)
    if row.reported_on:
        protocol += f". Reported on: {row.reported_on}"
    if row.runs:
        public, private = _acc(row.stat("public")), _acc(row.stat("private"))
    else:
        if not c.run_on_cpu:
            public = "GPU only (see below)"
        else:
            public = "running" if row.unfinished else "not run yet"
        private = "—"
    cells = [name, paper, protocol, public, private, _our_budget(row), _params(row), _row_note(row)]
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


_TABLE_HEAD = (
    "| configuration | paper % | paper's protocol (as stated) | ours: PublicTest % | "
    "ours: PrivateTest % | our budget | params | note |\n"
    "|---|---:|---|---:|---:|---|---:|---|"
)


def render_markdown(report: Report, figures: dict[str, Path], report_path: str | Path) -> str:
    """The report as Markdown; ``figures`` maps a paper key to its PNG (linked relatively)."""
    spec = report.spec
    finished = sum(len(r.runs) for r in _unique_rows(report.rows))
    unfinished = sum(len(r.unfinished) for r in _unique_rows(report.rows))
    lines = [
        "# Reproduction: the papers' numbers beside ours",
        "",
        "<!-- Generated by `ferlab compare RUN_DIR... --report` (benchmarks/reproduce.py runs it)"
        f" from run folders and {_shown(spec.path)}; do not edit by hand. -->",
        "",
        f"Generated {report.generated} from {finished} finished run(s)"
        + (f" ({unfinished} unfinished)" if unfinished else "")
        + ". Every configuration the five reports give a number for has a row, in the order of"
        " the papers' tables; rows without runs say so.",
        "",
        "**Protocol (ours).** Train on FER2013 Training (FER+ labels where the row says so),"
        " select the checkpoint on PublicTest, evaluate PrivateTest once with the recipe's"
        " test-time augmentation. The papers' own protocols differ (some select on the test set,"
        " some report another split): see each row.",
        "",
        _budget_paragraph(report),
        "",
        "**Accuracy** is in percent: mean over seeds ± the sample standard deviation, with the"
        " number of seeds n (the plan trains two seeds where a paper claims a gain of under 2"
        " points). The protocol column is the recipe's reading of the paper: the values a paper"
        " leaves out are named in the note or in the recipe file's comments.",
        "",
    ]
    for paper in spec.papers:
        rows = report.rows_of(paper.key)
        lines += [f"## {paper.title}", ""]
        if paper.hardware:
            lines += [f"Hardware as stated: {paper.hardware}.", ""]
        lines += [_TABLE_HEAD, *(_row_line(r) for r in rows), ""]
        if paper.key in figures:
            link = _rel(figures[paper.key], report_path)
            lines += [
                f"![{paper.title}: accuracy against training CPU time]({link})",
                "",
                "*Thin lines: each run's PublicTest accuracy during training (where the"
                " checkpoint is selected) against its training CPU time. Dots: its final"
                " PrivateTest accuracy; squares with bars: their mean ± s.d. over seeds. Dashed"
                " lines: the paper's numbers, on the paper's own test protocol.*",
                "",
            ]
    comparisons = compare_rows(report)
    if comparisons:
        lines += [
            "## What each addition changed at equal budget",
            "",
            "Mean PrivateTest difference against the row it adds to, in points. A gain or loss is"
            " called only when both rows have two seeds or more and the difference exceeds twice"
            " its standard error, sqrt(sd₁²/n₁ + sd₂²/n₂): with two seeds a rough screen, not a"
            " significance test.",
            "",
            "| paper | configuration | against | addition | Δ PrivateTest (points) | verdict |",
            "|---|---|---|---|---:|---|",
        ]
        titles = {p.key: p.title.split(" (")[0] for p in spec.papers}
        for cmp in comparisons:
            delta = "—" if cmp.delta is None else f"{cmp.delta:+.2f}"
            if cmp.se is not None:
                delta += f" (s.e. {cmp.se:.2f})"
            cells = [titles[cmp.paper], cmp.label, cmp.baseline, cmp.change, delta, cmp.verdict]
            lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
        lines.append("")
    lines += ["## Conclusions", ""]
    lines += [
        spec.conclusions
        or "*Not written yet: they are written by hand from the measurements above once every"
        " configuration has run (`conclusions` in the plan).*",
        "",
    ]
    if spec.gpu_only:
        lines += [
            "## Configurations a CPU cannot run in reasonable time",
            "",
            "The papers' full protocols for these networks; the commands reproduce them on a GPU"
            " (from the repository root, data beside the checkout as the recipes expect).",
            "",
        ]
        for g in spec.gpu_only:
            lines += [
                f"### {g.configuration}",
                "",
                f"{g.why} Expected time: {g.expected_time}.",
                "",
                "```bash",
                g.commands,
                "```",
                "",
            ]
    if report.others:
        lines += [
            "## Other runs of these configurations",
            "",
            "Finished runs at another budget or clock, on another device, or of the paper's"
            " full-size recipe; not part of the tables above.",
            "",
            "| recipe | rows | budget | device | PublicTest % | PrivateTest % | epochs | CPU-min |",
            "|---|---|---|---|---:|---:|---:|---:|",
        ]
        for g in report.others:
            public = mean_sd(None if r.public is None else 100 * r.public for r in g.runs)
            private = mean_sd(None if r.private is None else 100 * r.private for r in g.runs)
            epochs = mean_sd(r.epochs for r in g.runs)
            cpu = mean_sd(None if r.cpu_time_s is None else r.cpu_time_s / 60 for r in g.runs)
            cells = [
                f"`{g.recipe}`",
                "; ".join(g.labels),
                g.budget,
                g.device,
                _acc(public),
                _acc(private),
                _epochs(epochs.mean),
                "—" if cpu.mean is None else f"{cpu.mean:.1f}",
            ]
            lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
        lines.append("")
    if report.not_counted:
        lines += ["## Runs not counted", ""]
        lines += [f"- `{path}`: {_cell(reason)}" for path, reason in report.not_counted]
        lines.append("")
    if report.unrelated:
        lines += ["## Runs outside the papers' tables", ""]
        for run in report.unrelated:
            status = "unfinished"
            if run.finished:
                status = f"PublicTest {_pct(run.public)} %, PrivateTest {_pct(run.private)} %"
            lines.append(f"- `{run.path}` ({run.name}, seed {run.seed}): {status}")
        lines.append("")
    lines += [
        "## Regenerating",
        "",
        "```bash",
        "python benchmarks/reproduce.py   # trains what is missing, then writes this file",
        "ferlab compare benchmarks/results/reproduction/* --report docs/reproduction.md",
        "```",
        "",
    ]
    return "\n".join(lines)


def _budget_paragraph(report: Report) -> str:
    if report.budget is None:
        return (
            "**Budget (ours).** Every run trains for the recipe's full protocol (no time budget)."
        )
    clock = (
        " (`--budget-clock cpu`: the process's CPU seconds, so that runs sharing a busy machine"
        " get the same compute)"
        if report.budget_clock == "cpu"
        else ""
    )
    budget = _budget_text(report.budget, report.budget_clock)
    return (
        f"**Budget (ours).** Every run trains for {budget}{clock}, with the recipe's schedule"
        " laid over the steps that fit; the papers trained"
        " for their full protocol, usually on a GPU. The equal budget makes the rows of one paper"
        " comparable with each other; it is far less training than the papers' own, so our"
        " accuracies are no verdict on theirs."
    )


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}"


def _unique_rows(rows: Sequence[Row]) -> list[Row]:
    """One row per CPU recipe (rows sharing runs count them once)."""
    seen: dict[str, Row] = {}
    for row in rows:
        seen.setdefault(row.config.cpu_recipe, row)
    return list(seen.values())


def _rel(path: str | Path, report_path: str | Path) -> str:
    """``path`` relative to the report's folder, with forward slashes (a Markdown link)."""
    start = Path(report_path).resolve().parent
    return Path(os.path.relpath(Path(path).resolve(), start)).as_posix()


# -------------------------------------------------------------------------------------- figures
def draw_figures(report: Report, folder: str | Path) -> dict[str, Path]:
    """One PNG per paper: our PrivateTest accuracy against training CPU time, beside the paper's.

    Returns the paper key → file mapping.
    """
    from matplotlib.lines import Line2D

    from ferlab.engine.plots import _pyplot

    plt = _pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for paper in report.spec.papers:
        rows = report.rows_of(paper.key)
        colours = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20")
        fig, ax = plt.subplots(figsize=(8.5, 4.2))
        handles = []
        right = 0.0 if report.budget is None else parse_duration(report.budget) / 60
        for i, row in enumerate(rows):
            colour = colours(i % colours.N)
            label = row.config.label
            if row.paper_accuracy is not None:
                ax.axhline(row.paper_accuracy, color=colour, ls="--", lw=1.0, alpha=0.8)
            points = [
                (r.cpu_time_s / 60, 100 * r.private)
                for r in row.runs
                if r.cpu_time_s is not None and r.private is not None
            ]
            for run in row.runs:
                if run.curve:
                    cx, cy = zip(*run.curve, strict=True)
                    right = max(right, *cx)
                    ax.plot(cx, cy, color=colour, lw=0.8, alpha=0.5)
            if points:
                xs, ys = zip(*points, strict=True)
                right = max(right, *xs)
                ax.scatter(xs, ys, color=colour, s=18, alpha=0.7)
                acc, cpu = mean_sd(ys), mean_sd(xs)
                ax.errorbar(
                    cpu.mean, acc.mean, yerr=acc.sd or 0, fmt="s", color=colour, ms=6, capsize=3
                )
            else:
                label += " (not run yet)" if row.config.run_on_cpu else " (GPU only)"
            if row.config.cpu_recipe != row.config.recipe:
                label += f"; ours: {row.config.cpu_recipe}"
            handles.append(Line2D([], [], color=colour, ls="--", marker="s", label=label))
        ax.set_xlim(0, 1.1 * right if right else None)
        ax.set_xlabel("training CPU time (minutes)")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(paper.title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = folder / f"reproduction_{paper.key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out[paper.key] = path
    return out


def write_report(
    run_dirs: Iterable[str | Path],
    spec_path: str | Path,
    report_path: str | Path,
    figures_dir: str | Path | None = None,
    *,
    budget: str | None = None,
    budget_clock: str | None = None,
) -> Report:
    """Build the report from run folders and write it (Markdown) with its figures.

    Figures go to ``figures_dir`` (default: ``figures/`` beside the report).
    """
    spec = load_spec(spec_path)
    report = build_report(run_dirs, spec, budget=budget, budget_clock=budget_clock)
    report_path = Path(report_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    figures = draw_figures(report, figures_dir or report_path.parent / "figures")
    report_path.write_text(render_markdown(report, figures, report_path), encoding="utf-8")
    return report
