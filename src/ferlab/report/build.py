"""Sorting run folders into the plan's rows, and every number and conclusion computed from them.

How runs become rows. A run belongs to the configurations whose CPU recipe has the run's name
(the recipe file's stem, which ``train`` stores in ``config.yaml``). It counts towards a row when
its resolved recipe matches the recipe as the report's schedule trains it (the recipe file with the
schedule's overrides) in every field that defines the protocol (model, data, augmentation,
optimiser, schedule, epochs, batch, test-time augmentation, time budget, and the precision where
the schedule fixes one; seed, paths, device and threads may differ), and it has finished (not by
early stopping before the recipe's ``train.min_epochs``). A run that matches a check of the
schedule instead is that check's. Runs of a row's full-size recipe (a GPU run) count for its GPU
line. Anything else is listed with the reason it was not counted.

Accuracies are in percent: the mean over seeds ± the sample standard deviation (n − 1).
"""

from __future__ import annotations

import datetime as _dt
import math
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ferlab.engine.recipe import Recipe
from ferlab.errors import FerlabError
from ferlab.report.plan import CHECK_KINDS, Check, Configuration, ReproductionSpec, Schedule
from ferlab.report.runs import (
    RunRecord,
    epoch_seconds,
    folder_runs,
    protocol_difference,
    read_run,
    shown_path,
)

__all__ = [
    "COLLAPSED",
    "GAP_POINTS",
    "CheckResult",
    "Comparison",
    "Gap",
    "Report",
    "Row",
    "Stat",
    "build_report",
    "compare_rows",
    "conclusions",
    "gap",
    "identical_seeds",
    "mean_sd",
]

GAP_POINTS = 2.0
"""A row further than this from the paper (in points) needs an explanation."""

COLLAPSED = 0.9
"""A run that gives one class to more than this share of PrivateTest has collapsed."""


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


def _pct(runs: Sequence[RunRecord], split: str) -> Stat:
    return mean_sd(None if getattr(r, split) is None else 100 * getattr(r, split) for r in runs)


@dataclass
class Row:
    config: Configuration
    recipe: Recipe | None
    """The paper's recipe (None when its file is missing or invalid: see ``problem``)."""
    cpu_recipe: Recipe | None
    """The CPU recipe as the schedule trains it."""
    runs: list[RunRecord] = field(default_factory=list)
    """Finished runs counted for the row, one per seed."""
    unfinished: list[RunRecord] = field(default_factory=list)
    gpu_runs: list[RunRecord] = field(default_factory=list)
    """Finished runs of the paper's full-size recipe on a GPU (``reproduce.py --gpu``)."""
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

    def stat(self, split: str = "private") -> Stat:
        """``public`` or ``private`` accuracy in percent over the row's seeds."""
        return _pct(self.runs, split)

    @property
    def epochs(self) -> Stat:
        return mean_sd(r.epochs for r in self.runs)

    @property
    def same_network(self) -> bool:
        """Whether ours is the paper's network (not a smaller CPU variant)."""
        return self.config.cpu_recipe == self.config.recipe


@dataclass
class CheckResult:
    check: Check
    recipe: Recipe | None
    runs: list[RunRecord] = field(default_factory=list)
    unfinished: list[RunRecord] = field(default_factory=list)

    def stat(self, split: str = "private") -> Stat:
        return _pct(self.runs, split)


@dataclass
class Report:
    spec: ReproductionSpec
    schedule: Schedule
    rows: list[Row]
    checks: list[CheckResult]
    not_counted: list[tuple[Path, str]]
    unrelated: list[RunRecord]
    generated: str
    face_runs: list[RunRecord] = field(default_factory=list)
    """Finished runs of the plan's face / non-face networks (the facial-attention rows' input)."""
    pending_face: list[RunRecord] = field(default_factory=list)
    epoch_seconds: dict[tuple[str, str], tuple[float, str]] = field(default_factory=dict)
    """(Recipe name, precision) → (measured training seconds per epoch, where measured): from the
    runs given where one of them is among them, else from the schedule's ``timings`` folder."""

    def rows_of(self, paper: str) -> list[Row]:
        return [r for r in self.rows if r.config.paper == paper]

    def row(self, config_id: str) -> Row:
        return next(r for r in self.rows if r.config.id == config_id)

    def unique_rows(self) -> list[Row]:
        """One row per CPU recipe (rows sharing runs count them once)."""
        seen: dict[str, Row] = {}
        for row in self.rows:
            seen.setdefault(row.config.cpu_recipe, row)
        return list(seen.values())

    def runs(self) -> list[RunRecord]:
        """Every counted finished run: rows (once per recipe), checks, GPU lines, face networks."""
        out = [r for row in self.unique_rows() for r in (*row.runs, *row.gpu_runs)]
        return out + [r for c in self.checks for r in c.runs] + self.face_runs

    def pending(self) -> list[RunRecord]:
        rows = [r for row in self.unique_rows() for r in row.unfinished]
        return rows + [r for c in self.checks for r in c.unfinished] + self.pending_face


def _matches(run: RunRecord, reference: Recipe) -> str | None:
    """Why ``run`` is not a run of ``reference`` (None when it is)."""
    precision = reference.train.precision
    difference = protocol_difference(run.recipe, reference)
    if difference is not None:
        return difference
    if (run.budget[0], run.budget[1] if run.budget[0] else None) != (
        reference.train.time_budget,
        reference.train.budget_clock if reference.train.time_budget else None,
    ):
        return f"time budget {run.budget[0]}, the schedule's is {reference.train.time_budget}"
    if precision != "auto" and run.recipe.train.precision != precision:
        return f"precision {run.recipe.train.precision}, the schedule's is {precision}"
    if run.stopped_before(reference.train.min_epochs):
        return (
            f"early stopping ended it after {run.epochs:g} epochs, before the recipe's minimum "
            f"of {reference.train.min_epochs} (resume it to go on)"
        )
    return None


def build_report(
    run_dirs: Iterable[str | Path], spec: ReproductionSpec, schedule: str | None = None
) -> Report:
    """Sort run folders into the plan's rows and checks (see the module's docstring)."""
    sched = spec.schedule(schedule)
    recipes: dict[tuple[str, str, bool], Recipe | None] = {}
    problems: dict[str, str] = {}

    def recipe(name: str, check: Check | None = None, scheduled: bool = True) -> Recipe | None:
        key = (name, "" if check is None else check.id, scheduled)
        if key not in recipes:
            try:
                recipes[key] = spec.load(name, sched if scheduled else None, check)
            except FerlabError as exc:
                recipes[key], problems[name] = None, str(exc)
        return recipes[key]

    rows = []
    for c in spec.configurations():
        row = Row(c, recipe(c.recipe, scheduled=False), recipe(c.cpu_recipe))
        row.problem = problems.get(c.recipe) or problems.get(c.cpu_recipe, "")
        rows.append(row)
    checks = [CheckResult(c, recipe(c.recipe, c)) for c in sched.checks]
    gpu_rows = {r for g in spec.gpu_only for r in g.rows}
    full_size = {r.config.recipe for r in rows if r.config.id in gpu_rows}
    cpu_names = {r.config.cpu_recipe for r in rows if r.config.run_on_cpu}

    not_counted: list[tuple[Path, str]] = []
    unrelated: list[RunRecord] = []
    seen: set[Path] = set()
    seeds: dict[int, set[int]] = {}
    face_runs: list[RunRecord] = []
    pending_face: list[RunRecord] = []
    placed: list[RunRecord] = []
    for run_dir in sorted(Path(d) for d in run_dirs):
        if run_dir.resolve() in seen:
            continue
        seen.add(run_dir.resolve())
        try:
            run = read_run(run_dir)
        except FerlabError as exc:
            not_counted.append((run_dir, str(exc)))
            continue
        if run.name in (spec.face_network, spec.gpu_face_network):
            reference = recipe(run.name)
            why = "cannot be read" if reference is None else _matches(run, reference)
            if why:
                not_counted.append((run_dir, f"not a run of the {sched.name} schedule: {why}"))
            else:
                (face_runs if run.finished else pending_face).append(run)
                placed.append(run)
            continue
        target = _place(run, rows, checks, sched, recipe, cpu_names, full_size)
        if isinstance(target, str):
            if target:
                not_counted.append((run_dir, target))
            else:
                unrelated.append(run)
            continue
        finished, pending = target
        placed.append(run)
        if not run.finished:
            pending.append(run)
            continue
        taken = seeds.setdefault(id(finished), set())
        if run.seed in taken:
            not_counted.append((run_dir, f"seed {run.seed} is already counted"))
            continue
        taken.add(run.seed)
        finished.append(run)
    timed = folder_runs(sched.timings) if sched.timings else []
    for row in rows:  # rows sharing a recipe share its runs
        first = next(
            r
            for r in rows
            if r.config.cpu_recipe == row.config.cpu_recipe
            and r.config.run_on_cpu == row.config.run_on_cpu
        )
        row.runs, row.unfinished = first.runs, first.unfinished
        if row.config.id in gpu_rows:
            twin = next(r for r in rows if r.config.recipe == row.config.recipe)
            row.gpu_runs = twin.gpu_runs
            if not row.config.run_on_cpu:  # its only runs
                row.runs = row.gpu_runs
        row.runs.sort(key=lambda r: r.seed)
    return Report(
        spec=spec,
        schedule=sched,
        rows=rows,
        checks=checks,
        not_counted=not_counted,
        unrelated=unrelated,
        generated=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        face_runs=face_runs,
        pending_face=pending_face,
        epoch_seconds={
            **{k: (v, shown_path(sched.timings)) for k, v in epoch_seconds(timed).items()},
            **{k: (v, "the runs of this report") for k, v in epoch_seconds(placed).items()},
        },
    )


def _place(
    run: RunRecord,
    rows: list[Row],
    checks: list[CheckResult],
    sched: Schedule,
    recipe: Callable[[str], Recipe | None],
    cpu_names: set[str],
    full_size: set[str],
) -> tuple[list[RunRecord], list[RunRecord]] | str:
    """The (finished, unfinished) lists a run goes to, or why it goes nowhere ("" unrelated)."""
    why = ""
    for result in checks:
        reference = result.recipe
        if result.check.recipe == run.name and reference and _matches(run, reference) is None:
            return result.runs, result.unfinished
    if run.name in cpu_names:
        reference = recipe(run.name)
        if reference is None:
            return f"recipe {run.name} cannot be read"
        why = _matches(run, reference)
        if why is None:
            row = next(r for r in rows if r.config.cpu_recipe == run.name and r.config.run_on_cpu)
            return row.runs, row.unfinished
    if run.name in full_size and run.device.startswith("cuda"):
        reference = recipe(run.name)
        if reference is not None and protocol_difference(run.recipe, reference) is None:
            row = next(r for r in rows if r.config.recipe == run.name)
            return row.gpu_runs, []
    if why:
        return f"not a run of the {sched.name} schedule: {why}"
    return ""


# ----------------------------------------------------------------------------- what differs
@dataclass
class Comparison:
    """What a row's addition changed against its baseline row, on PrivateTest."""

    row: Row
    baseline: Row
    delta: float | None
    """Mean PrivateTest difference in points (row − baseline)."""
    se: float | None
    """Standard error of ``delta`` (both rows need two seeds or more)."""
    verdict: str
    paper_delta: float | None


def compare_rows(report: Report) -> list[Comparison]:
    """Each row with a baseline against it, on mean PrivateTest accuracy.

    A difference is a gain or a loss only when both rows have two seeds or more and it exceeds
    twice its standard error, ``sqrt(sd_a²/n_a + sd_b²/n_b)``: with two seeds a rough screen.
    """
    out = []
    for row in report.rows:
        if row.config.baseline is None:
            continue
        base = report.row(row.config.baseline)
        a, b = row.stat(), base.stat()
        delta = se = None
        if a.mean is None or b.mean is None:
            gpu = not (row.config.run_on_cpu and base.config.run_on_cpu)
            verdict = "needs a GPU" if gpu else "pending"
        else:
            delta = a.mean - b.mean
            if a.n < 2 or b.n < 2:
                verdict = "one seed: not conclusive"
            else:
                se = math.sqrt(a.sd**2 / a.n + b.sd**2 / b.n)
                if abs(delta) > 2 * se and delta != 0:
                    verdict = f"{'gain' if delta > 0 else 'loss'} beyond the seeds' spread"
                else:
                    verdict = "within the seeds' spread"
        pa, pb = row.paper_accuracy, base.paper_accuracy
        paper_delta = None if pa is None or pb is None else pa - pb
        out.append(Comparison(row, base, delta, se, verdict, paper_delta))
    return out


@dataclass
class Gap:
    """A row's distance from the paper and what the runs say about it."""

    diff: float | None
    """Ours − paper, in points (None when either is missing)."""
    within_spread: bool | None
    """Whether the paper's number lies within two standard deviations of our seeds' mean
    (None with fewer than two seeds)."""
    findings: list[str]
    """Run-backed statements about the gap (checks, schedule, network, collapse)."""
    verdict: str
    """``within 2 points``, ``explained`` (by a side run, or by what the paper's number measures),
    ``partly explained``, ``not comparable`` (ours departs from the paper's protocol in a way no
    run has measured: a smaller network, a time budget), ``not explained``, or why there is
    nothing to explain (pending, needs a GPU, no run possible)."""


def _check_effect(
    result: CheckResult, main: Stat, ours: Stat, paper: float, same: bool
) -> tuple[str, str]:
    """(finding, effect) of a check on a row: effect ``explains``, ``partly``, ``no``, ``pending``.

    ``main`` is the schedule's own runs of the check's recipe, ``ours`` the row's; ``same``: the
    check varies the row's own recipe. A check on another recipe of the family is indirect
    evidence: it can only explain part of the gap, when it moves accuracy towards the paper by
    more than the noise floor (2 points, or twice either side's seed spread where larger).
    """
    c = result.stat()
    label = CHECK_KINDS[result.check.kind]
    change = result.check.change()
    where = "" if same else f" on `{result.check.recipe}` (the same family)"
    if c.mean is None or main.mean is None or ours.mean is None:
        return f"{label} ({change}){where}: pending", "pending"
    moved = c.mean - main.mean
    noise = max(GAP_POINTS, 2 * (main.sd or 0.0), 2 * (c.sd or 0.0))
    text = (
        f"{label} ({change}){where}: {c.mean:.2f} % against {main.mean:.2f} % "
        f"({moved:+.2f} points, n={c.n}; {_spread_verdict(c, main)})"
    )
    if same and abs(c.mean - paper) <= GAP_POINTS:
        return text + "; it brings the row within 2 points of the paper", "explains"
    if moved == 0:
        return text + "; it does not move accuracy", "no"
    direction = "towards" if (paper - ours.mean) * moved > 0 else "away from"
    if abs(moved) <= noise:
        return (
            text + f"; it moves accuracy {direction} the paper by less than the {noise:.2f}-point"
            " threshold for an explanation",
            "no",
        )
    if direction == "towards":
        landed = c.mean - paper
        side = "above" if landed > 0 else "below"
        return (
            text + f"; it moves accuracy towards the paper (to {abs(landed):.1f} points {side} it)",
            "partly",
        )
    return text + "; it moves accuracy away from the paper", "no"


def _spread_verdict(check: Stat, main: Stat) -> str:
    """Whether a side run's mean lies within twice the larger seed spread (sample s.d.) of the
    recipe's own runs' mean: whether the change gives the same result within the seeds' spread."""
    sds = [x.sd for x in (check, main) if x.sd is not None]
    if not sds or check.mean is None or main.mean is None:
        return "no seed spread to compare with (one seed)"
    within = abs(check.mean - main.mean) <= 2 * max(sds)
    return f"{'within' if within else 'outside'} the seeds' spread"


def gap(report: Report, row: Row) -> Gap:
    """How far the row is from the paper, and which runs explain it."""
    c = row.config
    paper = row.paper_accuracy
    if not c.trained:
        return Gap(None, None, [], "no run possible")
    if not c.run_on_cpu and not row.runs:
        return Gap(None, None, [], "needs a GPU")
    s = row.stat()
    if s.mean is None:
        return Gap(None, None, [], "pending")
    if paper is None:
        return Gap(None, None, [], "no paper number")
    diff = s.mean - paper
    within = None if s.sd is None else abs(diff) <= 2 * s.sd
    if abs(diff) <= GAP_POINTS:
        return Gap(diff, within, [], "within 2 points")
    findings, effects = [], []
    if not row.same_network:
        params = sorted({r.params for r in row.runs if r.params})
        size = f" ({' / '.join(f'{p / 1e6:.2f} M' for p in params)} parameters)" if params else ""
        findings.append(
            f"ours is `{c.cpu_recipe}`, a smaller network{size} than the paper's `{c.recipe}`"
        )
        effects.append("differs")
    planned = row.cpu_recipe.train.epochs if row.cpu_recipe else None
    budgeted = [r for r in row.runs if r.stop_reason == "time_budget"]
    if budgeted:
        epochs = mean_sd(r.epochs for r in budgeted).mean
        findings.append(
            f"{len(budgeted)} run(s) stopped by their time budget after {epochs:.1f} of "
            f"{planned} epochs"
        )
        effects.append("differs")
    paper_labels = row.recipe.data.labels if row.recipe else None
    labels = sorted({r.label_mode for r in row.runs if r.label_mode} - {paper_labels})
    if labels and paper_labels:
        findings.append(f"trained on {', '.join(labels)} labels, the paper's on {paper_labels}")
    collapsed = [r for r in row.runs if r.majority is not None and r.majority > COLLAPSED]
    if collapsed:
        share = max(r.majority for r in collapsed)
        findings.append(
            f"{len(collapsed)} of {len(row.runs)} run(s) collapsed: up to {100 * share:.0f} % "
            "of PrivateTest faces given one class"
        )
    if c.paper_measure == "training":
        finding, effect = _training_accuracy(row, paper)
        findings.append(finding)
        effects.append(effect)
    for result in report.checks:
        if c.id not in result.check.explains:
            continue
        main = main_of(report, result)
        same = result.check.recipe == c.cpu_recipe
        finding, effect = _check_effect(result, main, s, paper, same)
        findings.append(finding)
        effects.append(effect)
    if "explains" in effects:
        verdict = "explained"
    elif "partly" in effects:
        verdict = "partly explained"
    elif "differs" in effects:  # a departure from the paper's protocol that no run has measured
        verdict = "not comparable"
    else:
        verdict = "not explained"
    return Gap(diff, within, findings, verdict)


def _training_accuracy(row: Row, paper: float) -> tuple[str, str]:
    """(finding, effect) for a paper's number that is a training accuracy: our runs' training
    accuracy over their last epoch (``history.csv``) set against it."""
    train = mean_sd(
        None if r.final_train_acc is None else 100 * r.final_train_acc for r in row.runs
    )
    if train.mean is None:
        return "the paper's number is a training accuracy; our runs recorded none", "no"
    off = train.mean - paper
    text = (
        f"the paper's number is a training accuracy: ours over the last epoch is "
        f"{train.mean:.2f} % (n={train.n}, {off:+.2f} points)"
    )
    if abs(off) <= GAP_POINTS:
        return text + ", within 2 points of the paper", "explains"
    return text, "no"


def main_of(report: Report, result: CheckResult) -> Stat:
    """The schedule's own runs of a check's recipe."""
    rows = [r for r in report.rows if r.config.cpu_recipe == result.check.recipe]
    return rows[0].stat() if rows else Stat(0, None, None)


# ------------------------------------------------------------------------------- conclusions
def paper_titles(report: Report) -> dict[str, str]:
    return {p.key: p.title.split(" (")[0] for p in report.spec.papers}


def identical_seeds(report: Report, paper: str | None = None) -> list[str]:
    """Seeds of one row (of ``paper``, or any) with exactly the same PublicTest accuracy, and
    whether that is a coincidence or one run twice (from their confusion matrices)."""
    out = []
    for row in report.unique_rows():
        if paper is not None and row.config.paper != paper:
            continue
        for i, a in enumerate(row.runs):
            for b in row.runs[i + 1 :]:
                if a.public is None or a.public != b.public:
                    continue
                same = a.public_correct == b.public_correct
                right = sum(a.public_correct)
                out.append(
                    f"Seeds {a.seed} and {b.seed} of {row.config.label} have the same PublicTest "
                    f"accuracy ({100 * a.public:.2f} %"
                    + (f", {right} images right" if right else "")
                    + "): "
                    + (
                        "both collapsed to one class, which makes their predictions agree."
                        if min(a.majority or 0, b.majority or 0) > COLLAPSED
                        else "the same per-class counts too, so the runs may be one run twice."
                        if same
                        else f"per class they differ ({', '.join(map(str, a.public_correct))} "
                        f"against {', '.join(map(str, b.public_correct))} right)"
                        + (
                            f" and on PrivateTest ({100 * a.private:.2f} against "
                            f"{100 * b.private:.2f} %)"
                            if a.private is not None
                            and b.private is not None
                            and a.private != b.private
                            else ""
                        )
                        + ", so the equal totals are a coincidence, not a copied result."
                    )
                )
    return out


def conclusions(report: Report) -> list[str]:
    """The report's conclusions, every number in them computed from the runs given."""
    rows = [r for r in report.rows if r.config.trained and r.config.run_on_cpu]
    done = [r for r in rows if r.runs]
    pending = report.pending()
    out = []
    if not done:
        out.append(
            f"No row has a finished run yet ({len(pending)} run(s) in progress), so nothing can "
            "be concluded; the tables above say what is pending."
        )
        return out
    counted = [r for row in report.unique_rows() if row.config.run_on_cpu for r in row.runs]
    epochs = mean_sd(r.epochs for r in counted)
    stops: dict[str, int] = {}
    for r in counted:
        stops[r.stop_reason or "unknown"] = stops.get(r.stop_reason or "unknown", 0) + 1
    stop_text = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(stops.items()))
    out.append(
        f"{len(done)} of {len(rows)} CPU rows have finished runs: {len(counted)} run(s) "
        f"({stop_text}; {min(r.epochs for r in counted):.1f}–"
        f"{max(r.epochs for r in counted):.1f} epochs, mean {epochs.mean:.1f})"
        + (f"; {len(pending)} run(s) are unfinished." if pending else ".")
    )
    gaps = [(row, gap(report, row)) for row in done]
    close = [row for row, g in gaps if g.verdict == "within 2 points"]
    far = [(row, g) for row, g in gaps if g.diff is not None and abs(g.diff) > GAP_POINTS]
    if close:
        out.append(
            f"Within 2 points of the paper: {len(close)} row(s) ("
            + "; ".join(
                f"{r.config.label} {r.stat().mean:.2f} % vs {r.paper_accuracy:g} %" for r in close
            )
            + ")."
        )
    if far:
        counts: dict[str, int] = {}
        for _, g in far:
            counts[g.verdict] = counts.get(g.verdict, 0) + 1
        out.append(
            f"Further than 2 points from the paper: {len(far)} row(s), "
            + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
            + " (largest: {}, {:+.2f} points).".format(
                *max(((r.config.label, g.diff) for r, g in far), key=lambda t: abs(t[1]))
            )
        )
    collapsed = [
        row
        for row in report.unique_rows()
        if any(r.majority is not None and r.majority > COLLAPSED for r in row.runs)
    ]
    if collapsed:
        out.append(
            "Collapsed to one class (more than "
            f"{100 * COLLAPSED:.0f} % of PrivateTest faces given the same class): "
            + "; ".join(
                f"{row.config.label} ({sum(r.majority > COLLAPSED for r in row.runs if r.majority)}"
                f" of {len(row.runs)} seeds)"
                for row in collapsed
            )
            + "."
        )
    out += identical_seeds(report)
    titles = paper_titles(report)
    for cmp in compare_rows(report):
        if cmp.delta is None:
            continue
        paper = "" if cmp.paper_delta is None else f"; the paper reports {cmp.paper_delta:+.2f}"
        spread = "" if cmp.se is None else f" (s.e. {cmp.se:.2f})"
        out.append(
            f"{titles[cmp.row.config.paper]}: {cmp.row.config.change or cmp.row.config.label} "
            f"({cmp.baseline.config.label} → {cmp.row.config.label}) changed PrivateTest by "
            f"{cmp.delta:+.2f} points{spread}: {cmp.verdict}{paper}."
        )
    for result in report.checks:
        s, main = result.stat(), main_of(report, result)
        if s.mean is None or main.mean is None:
            continue
        change = result.check.change()
        verdict = _spread_verdict(s, main)
        out.append(
            f"{CHECK_KINDS[result.check.kind].capitalize()} on `{result.check.recipe}` "
            f"({change}): {s.mean:.2f} % against {main.mean:.2f} % "
            f"({s.mean - main.mean:+.2f} points), {verdict}."
        )
    return out
