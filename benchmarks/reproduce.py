"""Train every configuration of the papers' tables at one equal budget, then write the report.

The plan is ``benchmarks/reproduction.yaml``: each configuration's recipe (or its smaller-backbone
CPU variant), its number of seeds (two where the paper claims a gain of under 2 points). Every run
gets the same training budget, the plan's (5 minutes of process CPU time: ``--time-budget 5m
--budget-clock cpu``, equal compute even on a machine shared with other jobs), and goes to
``benchmarks/results/reproduction/<recipe>-s<seed>/``, whose small files (``config.yaml``,
``history.csv``, ``metrics.json``, ``machine.json``) are kept in git. The runner

* skips runs that have finished (``metrics.json``) and resumes unfinished ones (``last.pt``), so
  it continues across sessions: run it again after an interruption;
* trains seed 0 of every configuration before any seed 1, so a partial campaign already fills
  every row;
* trains the face / non-face network first when a facial-attention recipe needs one, and points
  those recipes' ``model.face_checkpoint`` at it;
* records the machine of every session in the run's ``machine.json``;
* finally writes ``docs/reproduction.md`` and its figures (``ferlab compare --report``).

Usage::

    python benchmarks/reproduce.py --dry-run          # the plan: every run and its state
    python benchmarks/reproduce.py                    # everything (hours: see the plan)
    python benchmarks/reproduce.py --only luo         # a paper, configuration id or recipe
    # two runners side by side, one thread each, on disjoint --only sets (a 2-core machine):
    OMP_NUM_THREADS=1 python benchmarks/reproduce.py --no-report --only jahromi --only luo &
    OMP_NUM_THREADS=1 python benchmarks/reproduce.py --no-report --only meen
    python benchmarks/reproduce.py --budget 1m --out /tmp/smoke --report /tmp/smoke/report.md
"""

from __future__ import annotations

import os

# What `ferlab train` does too: idle OpenMP threads sleep instead of spinning (see
# docs/training.md); it must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ferlab.engine.recipe import parse_duration
from ferlab.engine.report import ReproductionSpec, load_spec, read_run, record_machine
from ferlab.errors import FerlabError

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class PlannedRun:
    recipe: str
    seed: int
    out: Path
    rows: list[str] = field(default_factory=list)
    """Labels of the configurations this run serves."""
    needs_face: bool = False
    problem: str = ""
    """Why the run cannot start (a missing recipe), if so."""

    @property
    def state(self) -> str:
        if self.problem:
            return "cannot run"
        if (self.out / "metrics.json").is_file():
            return "done"
        if (self.out / "last.pt").is_file():
            return "resume"
        return "new"


def plan_runs(
    spec: ReproductionSpec, out_root: Path, only: list[str], seeds: int | None
) -> list[PlannedRun]:
    """The runs the plan asks for, seed 0 of every configuration first.

    ``only`` keeps the configurations whose paper key, id, recipe or CPU recipe it names; ``seeds``
    overrides every configuration's number of seeds. Rows that share a recipe share its runs.
    """
    wanted = set(only)
    unknown = wanted - {
        name for c in spec.configurations() for name in (c.paper, c.id, c.recipe, c.cpu_recipe)
    }
    if unknown:
        raise FerlabError(
            f"--only {', '.join(sorted(unknown))}: no such paper, configuration or recipe in "
            f"{spec.path}"
        )
    per_recipe: dict[str, tuple[int, list[str]]] = {}
    for c in spec.configurations():
        if not c.run_on_cpu or (wanted and not wanted & {c.paper, c.id, c.recipe, c.cpu_recipe}):
            continue
        n, labels = per_recipe.get(c.cpu_recipe, (0, []))
        per_recipe[c.cpu_recipe] = (max(n, seeds or c.seeds), [*labels, c.label])
    runs = []
    for seed in range(max((n for n, _ in per_recipe.values()), default=0)):
        for name, (n, labels) in per_recipe.items():
            if seed < n:
                runs.append(PlannedRun(name, seed, out_root / f"{name}-s{seed}", labels))
    face_needed = False
    for run in runs:
        try:
            recipe = spec.load(run.recipe)
        except FerlabError as exc:
            run.problem = str(exc)
            continue
        run.needs_face = bool(recipe.model.face_checkpoint)
        face_needed |= run.needs_face
    if face_needed:
        if spec.face_network is None:
            raise FerlabError(
                f"a recipe needs a face network but {spec.path} names no face_network"
            )
        face = spec.face_network
        runs.insert(0, PlannedRun(face, 0, out_root / f"{face}-s0", ["face / non-face network"]))
    return runs


def print_plan(
    console: Console, runs: list[PlannedRun], spec: ReproductionSpec, budget: str, clock: str
) -> None:
    states = [r.state for r in runs]
    todo = sum(s in ("new", "resume") for s in states)
    left = todo * parse_duration(budget) / 60
    left_text = f"{left / 60:.1f} hours" if left >= 60 else f"{left:.0f} minutes"
    console.print(
        f"[bold]{len(runs)} runs[/], {states.count('done')} done, {states.count('resume')} to "
        f"resume, {states.count('new')} new; budget {budget} of {clock} time each "
        f"(at most {left_text} of {clock} time left)",
        highlight=False,
    )
    for run in runs:
        done = ""
        if run.state == "done":
            stored, stored_clock = read_run(run.out).budget
            if (
                stored is None
                or stored_clock != clock
                or not math.isclose(parse_duration(stored), parse_duration(budget))
            ):
                done = f" [yellow](finished at {stored} of {stored_clock} time: not counted)[/]"
        line = f"  {run.state:<10} {run.out.name:<32} {'; '.join(run.rows)}{done}"
        if run.problem:
            line += f"\n             [red]{run.problem}[/]"
        console.print(line, highlight=False, soft_wrap=True)
    if spec.gpu_only:
        console.print("[bold]GPU only[/] (listed in the report with their commands):")
        for g in spec.gpu_only:
            console.print(f"  {g.configuration}", highlight=False, soft_wrap=True)


def train_run(
    run: PlannedRun,
    spec: ReproductionSpec,
    budget: str,
    clock: str,
    threads: int | None,
    face_checkpoint: Path | None,
    console: Console,
) -> str:
    """Train or resume one run; its stop reason."""
    from ferlab.engine.recipe import apply_overrides
    from ferlab.engine.trainer import resume_recipe, train

    resume = run.state == "resume"
    if resume:
        recipe = resume_recipe(run.out)
    else:
        overrides: dict[str, Any] = {
            "train.time_budget": budget,
            "train.budget_clock": clock,
            "train.seed": run.seed,
            "train.num_threads": threads,
        }
        if run.needs_face:
            overrides["model.face_checkpoint"] = str(face_checkpoint)
        recipe = apply_overrides(spec.load(run.recipe), overrides, where="reproduce.py")
    record_machine(run.out, recipe.train.num_threads or threads)
    result = train(
        recipe,
        out_dir=run.out,
        resume=resume,
        progress=True,
        console=console,
    )
    return result.stop_reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, default=ROOT / "benchmarks" / "reproduction.yaml")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "reproduction"
    )
    parser.add_argument("--budget", help="training budget per run (default: the plan's)")
    parser.add_argument(
        "--budget-clock", choices=("wall", "cpu"), help="what the budget counts (default: cpu)"
    )
    parser.add_argument(
        "--only", action="append", default=[], help="a paper key, configuration id or recipe"
    )
    parser.add_argument("--seeds", type=int, help="seeds for every configuration")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS") else None,
        help="CPU threads per run (default: OMP_NUM_THREADS, else every core)",
    )
    parser.add_argument("--report", type=Path, default=ROOT / "docs" / "reproduction.md")
    parser.add_argument("--figures", type=Path, help="default: figures/ beside the report")
    parser.add_argument("--no-report", action="store_true", help="train only")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.seeds is not None and args.seeds < 1:
            raise FerlabError("--seeds must be at least 1")
        spec = load_spec(args.plan)
        budget = args.budget or spec.budget
        clock = args.budget_clock or spec.budget_clock
        if budget is None:
            raise FerlabError("no budget: pass --budget or set budget in the plan")
        parse_duration(budget, where="--budget")
        runs = plan_runs(spec, args.out, args.only, args.seeds)
        print_plan(console, runs, spec, budget, clock)
        if args.dry_run:
            return 0
        return _campaign(args, spec, runs, budget, clock, console)
    except FerlabError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2


def _campaign(
    args: argparse.Namespace,
    spec: ReproductionSpec,
    runs: list[PlannedRun],
    budget: str,
    clock: str,
    console: Console,
) -> int:
    failed: list[tuple[PlannedRun, str]] = []
    face_checkpoint: Path | None = None
    todo = [r for r in runs if r.state in ("new", "resume")]
    for i, run in enumerate(todo, 1):
        if run.state == "done":  # finished meanwhile by a runner side by side (other --only)
            continue
        if run.needs_face:
            face_checkpoint = runs[0].out / "best.pt"
            if not (runs[0].out / "metrics.json").is_file():
                failed.append((run, f"the face network {runs[0].out} has not finished"))
                continue
        console.rule(f"[{i}/{len(todo)}] {run.out.name} ({run.state}): {'; '.join(run.rows)}")
        try:
            reason = train_run(run, spec, budget, clock, args.threads, face_checkpoint, console)
        except FerlabError as exc:
            console.print(f"[bold red]failed:[/] {exc}", highlight=False, soft_wrap=True)
            failed.append((run, str(exc)))
            continue
        if reason == "interrupted":
            console.print("[yellow]interrupted[/]: run the same command again to continue")
            return 130
    for run, why in failed:
        console.print(f"[red]not trained[/]: {run.out.name}: {why}", highlight=False)
    if not args.no_report:
        from ferlab.engine.report import write_report

        run_dirs = sorted(p for p in args.out.glob("*") if (p / "config.yaml").is_file())
        write_report(
            run_dirs, args.plan, args.report, args.figures, budget=budget, budget_clock=clock
        )
        console.print(f"wrote {args.report}", highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
