"""The reproduction plan (``benchmarks/reproduction.yaml``): what is trained, how, and where.

The plan lists every configuration the five papers give a number for, in the order of their
tables, with the recipe behind each one; its *schedules* say how the runs train: ``paper`` (each
recipe's own epochs, early stopping and learning-rate schedule; no time budget) or ``5m`` (the
first campaign: five CPU-minutes per run). A schedule's ``overrides`` apply to every run,
its ``recipe_overrides`` to one recipe (what that recipe was when the schedule's runs were made),
and its ``checks`` are side runs that test an explanation of a row's gap to the paper (fp32
instead of bf16, another learning rate, another label set). No result is typed in the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ferlab.engine.recipe import Recipe, apply_overrides, load_recipe, parse_duration
from ferlab.errors import DataError

__all__ = [
    "CHECK_KINDS",
    "STAGES",
    "Check",
    "Configuration",
    "GpuOnly",
    "Paper",
    "ReproductionSpec",
    "Schedule",
    "load_spec",
]

STAGES: tuple[str, ...] = ("required", "variant", "long")
"""The order runs are trained in: the rows the report needs, the variants, then the long ones."""

CHECK_KINDS: dict[str, str] = {
    "precision": "precision check",
    "learning_rate": "learning-rate check",
    "labels": "label-set check",
    "initialisation": "initialisation check",
}
"""What a side run changes, and how the report names it."""


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
    """False: the runner skips it and the row points to the GPU section."""
    stage: str = "required"
    """``required``, ``variant`` or ``long`` (see :data:`STAGES`)."""
    trained: bool = True
    """False for a row whose number the project cannot measure at all (another data set)."""
    stated: str = ""
    """What the paper states of the protocol behind this number (default: the paper's)."""
    paper_measure: str = "test"
    """What the paper's number measures: ``test`` accuracy, or ``training`` accuracy (then our
    runs' final training accuracy is set beside it too)."""


@dataclass(frozen=True)
class Paper:
    key: str
    title: str
    hardware: str
    configurations: tuple[Configuration, ...]
    stated: str = ""
    """The training protocol as the paper states it, and what it leaves open (no choice of ours)."""


@dataclass(frozen=True)
class GpuOnly:
    """A paper's full protocol that a CPU cannot run in reasonable time."""

    configuration: str
    why: str
    commands: str
    expected_time: str
    rows: tuple[str, ...] = ()
    """The configuration ids it covers."""


@dataclass(frozen=True)
class Check:
    """A side run: a row's recipe with one thing changed, to test an explanation."""

    id: str
    recipe: str
    kind: str
    """A key of :data:`CHECK_KINDS`."""
    overrides: dict[str, Any]
    explains: tuple[str, ...]
    """The configuration ids whose gap it tests (rows of the same architecture family)."""
    seeds: int = 1
    note: str = ""
    stage: str = "required"
    """``long``: trained with the long rows instead of right after the required ones."""

    def folder(self, seed: int) -> str:
        return f"{self.recipe}-{self.id}-s{seed}"

    def change(self, sep: str = " ") -> str:
        """The overrides as the report prints them: dotted keys, YAML's values
        (``model.kwargs.keras_init true``, ``data.ferplus null``)."""
        return ", ".join(f"{k}{sep}{v}" for k, v in _dotted(self.overrides))


def _dotted(values: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    out = []
    for key, value in values.items():
        if isinstance(value, dict) and value:
            out += _dotted(value, f"{prefix}{key}.")
        else:
            text = yaml.safe_dump(value, default_flow_style=True).removesuffix("\n...\n")
            out.append((f"{prefix}{key}", text.strip()))
    return out


@dataclass(frozen=True)
class Schedule:
    name: str
    description: str
    out: Path
    """Where its runs go (``<out>/<recipe>-s<seed>``)."""
    report: Path
    overrides: dict[str, Any]
    recipe_overrides: dict[str, dict[str, Any]]
    checks: tuple[Check, ...]
    timings: Path | None = None
    """Run folders whose measured seconds per epoch estimate this schedule's time."""

    @property
    def budget(self) -> tuple[str | None, str]:
        """(time budget or None, clock) of its runs."""
        clock = str(self.overrides.get("train.budget_clock") or "wall")
        budget = self.overrides.get("train.time_budget")
        return (None if budget is None else str(budget)), clock

    @property
    def precision(self) -> str:
        return str(self.overrides.get("train.precision") or "auto")


@dataclass(frozen=True)
class ReproductionSpec:
    path: Path
    recipes_dir: Path
    default_seeds: int
    face_network: str | None
    """The face / non-face network the CPU facial-attention recipes load, trained first."""
    gpu_face_network: str | None
    """Its full-width twin, trained first by ``reproduce.py --gpu``."""
    papers: tuple[Paper, ...]
    gpu_only: tuple[GpuOnly, ...]
    schedules: dict[str, Schedule] = field(default_factory=dict)
    default_schedule: str = ""

    def configurations(self) -> list[Configuration]:
        return [c for p in self.papers for c in p.configurations]

    def recipe_path(self, name: str) -> Path:
        return self.recipes_dir / f"{name}.yaml"

    def schedule(self, name: str | None = None) -> Schedule:
        name = name or self.default_schedule
        if name not in self.schedules:
            raise DataError(
                f"no schedule '{name}'; the plan has {', '.join(self.schedules) or 'none'}",
                path=self.path,
            )
        return self.schedules[name]

    def load(
        self, name: str, schedule: Schedule | None = None, check: Check | None = None
    ) -> Recipe:
        """``recipes/<name>.yaml`` as ``schedule`` trains it (and ``check`` changes it)."""
        recipe = load_recipe(self.recipe_path(name))
        if schedule is None:
            return recipe
        overrides = {**schedule.overrides, **schedule.recipe_overrides.get(name, {})}
        if check is not None:
            overrides.update(check.overrides)
        return apply_overrides(recipe, overrides, where=str(self.path), skip_none=False)


_SPEC_KEYS = {
    "recipes",
    "default_seeds",
    "face_network",
    "gpu_face_network",
    "papers",
    "gpu_only",
    "schedules",
    "default_schedule",
}
_PAPER_KEYS = {"key", "title", "hardware", "configurations", "stated"}
PAPER_MEASURES = ("test", "training")
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
    "stage",
    "trained",
    "stated",
    "paper_measure",
}
_GPU_KEYS = {"configuration", "why", "commands", "expected_time", "rows"}
_SCHEDULE_KEYS = {
    "description",
    "out",
    "report",
    "overrides",
    "recipe_overrides",
    "checks",
    "timings",
}
_CHECK_KEYS = {"id", "recipe", "kind", "overrides", "explains", "seeds", "note", "stage"}


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


def _positive(value: Any, where: str, path: Path) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise DataError(f"{where} must be a positive integer, not {value!r}", path=path)
    return value


def _overrides(raw: Any, where: str, path: Path) -> dict[str, Any]:
    raw = raw or {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and "." in k for k in raw):
        raise DataError(f"{where} must map dotted recipe keys (train.epochs) to values", path=path)
    return dict(raw)


def _configuration(
    c: Any, paper: str, stated: str, default_seeds: int, path: Path, where: str
) -> Configuration:
    c = _mapping(c, _CONFIG_KEYS, {"id", "label", "recipe"}, path, where)
    run_on_cpu, trained = c.get("run_on_cpu", True), c.get("trained", True)
    if not isinstance(run_on_cpu, bool) or not isinstance(trained, bool):
        raise DataError(f"{where}: run_on_cpu and trained must be true or false", path=path)
    accuracy = c.get("paper_accuracy")
    if accuracy is not None and not isinstance(accuracy, int | float):
        raise DataError(f"{where}: paper_accuracy must be a number", path=path)
    stage = str(c.get("stage") or "required")
    if stage not in STAGES:
        raise DataError(f"{where}: stage must be one of {', '.join(STAGES)}", path=path)
    measure = str(c.get("paper_measure") or "test")
    if measure not in PAPER_MEASURES:
        raise DataError(
            f"{where}: paper_measure must be one of {', '.join(PAPER_MEASURES)}", path=path
        )
    return Configuration(
        id=str(c["id"]),
        paper=paper,
        label=_text(c, "label"),
        recipe=str(c["recipe"]),
        cpu_recipe=str(c.get("cpu_recipe") or c["recipe"]),
        seeds=_positive(c.get("seeds", default_seeds), f"{where}: seeds", path),
        paper_accuracy=None if accuracy is None else float(accuracy),
        reported_on=_text(c, "reported_on"),
        note=_text(c, "note"),
        baseline=c.get("baseline"),
        change=_text(c, "change"),
        run_on_cpu=run_on_cpu and trained,
        stage=stage,
        trained=trained,
        stated=_text(c, "stated") or stated,
        paper_measure=measure,
    )


def _schedule(name: str, s: Any, ids: set[str], path: Path) -> Schedule:
    where = f"schedule '{name}'"
    s = _mapping(s, _SCHEDULE_KEYS, {"out", "report"}, path, where)
    overrides = _overrides(s.get("overrides"), f"{where}: overrides", path)
    budget = overrides.get("train.time_budget")
    if budget is not None:
        parse_duration(str(budget), where=f"{path}: {where}")
    recipe_overrides = s.get("recipe_overrides") or {}
    if not isinstance(recipe_overrides, dict):
        raise DataError(f"{where}: recipe_overrides must map recipe names to overrides", path=path)
    checks = []
    for i, c in enumerate(s.get("checks") or []):
        cw = f"check #{i + 1} of {where}"
        c = _mapping(c, _CHECK_KEYS, {"id", "recipe", "kind", "overrides", "explains"}, path, cw)
        if c["kind"] not in CHECK_KINDS:
            raise DataError(f"{cw}: kind must be one of {', '.join(CHECK_KINDS)}", path=path)
        explains = c["explains"] if isinstance(c["explains"], list) else [c["explains"]]
        unknown = sorted(set(map(str, explains)) - ids)
        if unknown:
            raise DataError(f"{cw}: unknown configuration '{unknown[0]}'", path=path)
        stage = str(c.get("stage") or "required")
        if stage not in STAGES:
            raise DataError(f"{cw}: stage must be one of {', '.join(STAGES)}", path=path)
        checks.append(
            Check(
                id=str(c["id"]),
                recipe=str(c["recipe"]),
                kind=str(c["kind"]),
                overrides=_overrides(c["overrides"], f"{cw}: overrides", path),
                explains=tuple(map(str, explains)),
                seeds=_positive(c.get("seeds", 1), f"{cw}: seeds", path),
                note=_text(c, "note"),
                stage=stage,
            )
        )
    timings = s.get("timings")
    return Schedule(
        name=name,
        description=_text(s, "description"),
        out=(path.parent / str(s["out"])).resolve(),
        report=(path.parent / str(s["report"])).resolve(),
        overrides=overrides,
        recipe_overrides={
            str(k): _overrides(v, f"{where}: recipe_overrides.{k}", path)
            for k, v in recipe_overrides.items()
        },
        checks=tuple(checks),
        timings=None if timings is None else (path.parent / str(timings)).resolve(),
    )


def load_spec(path: str | Path) -> ReproductionSpec:
    """Read and check the plan. Recipes are only named here; a missing one shows in its row."""
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
    default_seeds = _positive(raw.get("default_seeds", 1), "default_seeds", path)
    if not isinstance(raw["papers"], list) or not isinstance(raw.get("gpu_only") or [], list):
        raise DataError("papers and gpu_only must be lists", path=path)
    papers = []
    ids: set[str] = set()
    for i, p in enumerate(raw["papers"]):
        p = _mapping(p, _PAPER_KEYS, {"key", "title", "configurations"}, path, f"paper #{i + 1}")
        if not isinstance(p["configurations"], list):
            raise DataError(f"paper '{p['key']}': configurations must be a list", path=path)
        configs = []
        for j, c in enumerate(p["configurations"]):
            where = f"configuration #{j + 1} of paper '{p['key']}'"
            config = _configuration(
                c, str(p["key"]), _text(p, "stated"), default_seeds, path, where
            )
            if config.id in ids:
                raise DataError(f"configuration id '{config.id}' is used twice", path=path)
            ids.add(config.id)
            configs.append(config)
        papers.append(
            Paper(
                str(p["key"]),
                _text(p, "title"),
                _text(p, "hardware"),
                tuple(configs),
                _text(p, "stated"),
            )
        )
    for c in (c for p in papers for c in p.configurations):
        if c.baseline is not None and c.baseline not in ids:
            raise DataError(f"configuration '{c.id}': unknown baseline '{c.baseline}'", path=path)
    gpu = []
    for i, g in enumerate(raw.get("gpu_only") or []):
        g = _mapping(g, _GPU_KEYS, _GPU_KEYS - {"rows"}, path, f"gpu_only entry #{i + 1}")
        rows = tuple(map(str, g.get("rows") or []))
        if set(rows) - ids:
            raise DataError(f"gpu_only entry #{i + 1}: unknown row in {list(rows)}", path=path)
        gpu.append(
            GpuOnly(
                _text(g, "configuration"),
                _text(g, "why"),
                str(g["commands"]).strip(),
                _text(g, "expected_time"),
                rows,
            )
        )
    raw_schedules = raw.get("schedules") or {}
    if not isinstance(raw_schedules, dict) or not raw_schedules:
        raise DataError("the plan needs a mapping 'schedules' with one schedule or more", path=path)
    schedules = {str(k): _schedule(str(k), v, ids, path) for k, v in raw_schedules.items()}
    default = str(raw.get("default_schedule") or next(iter(schedules)))
    if default not in schedules:
        raise DataError(f"default_schedule '{default}' is not a schedule", path=path)
    return ReproductionSpec(
        path=path,
        recipes_dir=(path.parent / str(raw.get("recipes") or "recipes")).resolve(),
        default_seeds=default_seeds,
        face_network=None if raw.get("face_network") is None else str(raw["face_network"]),
        gpu_face_network=(
            None if raw.get("gpu_face_network") is None else str(raw["gpu_face_network"])
        ),
        papers=tuple(papers),
        gpu_only=tuple(gpu),
        schedules=schedules,
        default_schedule=default,
    )
