"""Train every configuration of the papers' tables on one of the plan's schedules, then report.

The plan is ``benchmarks/reproduction.yaml``: each configuration's recipe (or its smaller-backbone
CPU variant), its seeds (two where the paper claims a difference of under 2 points), its stage,
and the schedules: ``paper`` (the default: each recipe's own epochs, early stopping, learning-rate
schedule and batch; bf16 with fp32 side checks, except Meen et al.'s family in fp32 with bf16
side checks) and ``5m`` (the first campaign, five CPU-minutes a run). Runs go to the schedule's
folder (``benchmarks/results/reproduction-paper/`` for ``paper``) as ``<recipe>-s<seed>/`` and
checks as ``<recipe>-<check>-s<seed>/``; their small files (``config.yaml``, ``history.csv``,
``metrics.json``, ``machine.json``) are kept in git. The runner

* skips runs that have finished (``metrics.json``) and resumes unfinished ones (``last.pt``, which
  the ``paper`` schedule also writes every 10 minutes mid-epoch), so one command continues the
  campaign across sessions: run it again after an interruption; a run that early stopping ended
  before its recipe's ``train.min_epochs`` (a minimum added later) is resumed from its last epoch
  too (``extend``): the minimum only delays early stopping, so the run goes on exactly as if it
  had been set from the start;
* trains the face / non-face network first when a facial-attention recipe needs one, then seed 0
  of the required rows, the checks, seed 0 of the variants, the other seeds, and the long rows,
  cheapest first within each stage (estimated from measured seconds per epoch in the run's
  precision, else in the other, marked ``*``), a run already started before the others of its
  stage;
* holds a lock in the run folder while it trains (``.training.lock``, its process id), so two
  runners side by side (one per core) each take the next free run and never train one run twice;
  a lock whose process has ended is taken over, and a run that fails before training began leaves
  no folder behind;
* records the machine of every session in the run's ``machine.json``; a resumed run takes
  ``--threads`` (``OMP_NUM_THREADS``) when given, so the last run of a campaign can use the core
  the others freed (threads change speed, not what a run measures);
* keeps what the small files cannot rebuild in git between sessions, since a session's disk does
  not outlive it: ``--park`` packs the unfinished runs' ``last.pt`` and the face network's
  ``best.pt`` (which runs not yet started need) into one compressed archive at one fixed path,
  ``checkpoints/<schedule folder>/in-progress.tar.xz``, overwritten each time; every later
  command first restores from it the files a fresh checkout lacks;
* finally writes the schedule's report and its figures (``ferlab compare --report``).

Usage::

    python benchmarks/reproduce.py --dry-run          # the plan: every run, its state, estimate
    # the campaign, one thread, in the background; the same command resumes it
    OMP_NUM_THREADS=1 nohup python benchmarks/reproduce.py --no-report > repro.log 2>&1 &
    python benchmarks/reproduce.py --only luo         # a paper, configuration id or recipe
    python benchmarks/reproduce.py --only jahromi_medium-fp32-s0   # or single runs
    python benchmarks/reproduce.py --gpu              # the GPU-only rows, on a CUDA machine
    python benchmarks/reproduce.py --park             # at a session's end, runners stopped
    python benchmarks/reproduce.py --schedule 5m      # the first campaign (5 CPU-minutes a run)
"""

from __future__ import annotations

import os

# What `ferlab train` does too: idle OpenMP threads sleep instead of spinning (see
# docs/training.md); it must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import json
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from ferlab.engine.recipe import Recipe
from ferlab.errors import FerlabError
from ferlab.inference.shipped import file_sha256
from ferlab.report import (
    CHECK_KINDS,
    STAGES,
    Check,
    ReproductionSpec,
    Schedule,
    epoch_seconds,
    folder_runs,
    load_spec,
    pace,
    read_run,
    record_machine,
)

ROOT = Path(__file__).resolve().parents[1]
RESUMED = ("resume", "extend")
"""States of a run that goes on from its ``last.pt``."""
TO_TRAIN = ("new", "restart", *RESUMED)
"""``restart``: a run that began but whose ``last.pt`` is gone (neither here nor parked); it trains
again from epoch 0."""
FACE_ROW = "face / non-face network"


@dataclass
class PlannedRun:
    recipe: str
    seed: int
    out: Path
    rows: list[str] = field(default_factory=list)
    """Labels of the configurations (or the check) this run serves."""
    order: int = 0
    """Training order: 0 the face network, 1 seed 0 of the required rows, 2 the checks, 3 seed 0
    of the variants, 4 the other seeds, 6 the long rows and long checks."""
    check: Check | None = None
    needs_face: bool = False
    epochs: int = 0
    estimate_s: float | None = None
    """Estimated training seconds left (at most the recipe's epochs)."""
    timed_in: str = ""
    """The precision its estimate's pace was measured in, where not its own."""
    problem: str = ""
    """Why the run cannot start (a missing recipe), if so."""
    min_epochs: int | None = None
    """The recipe's ``train.min_epochs``."""

    @property
    def state(self) -> str:
        if self.problem:
            return "cannot run"
        if (self.out / "metrics.json").is_file():
            stopped_short = self.min_epochs and read_run(self.out).stopped_before(self.min_epochs)
            return "extend" if stopped_short else "done"
        if (self.out / "last.pt").is_file():
            return "resume"
        return "restart" if (self.out / "config.yaml").is_file() else "new"


def _seconds_per_epoch(*folders: Path | None) -> dict[tuple[str, str], float]:
    """Measured training seconds per epoch of every (recipe, precision) with a run (finished or
    not) in the first of ``folders`` that has one."""
    out: dict[tuple[str, str], float] = {}
    for folder in folders:
        out = {**epoch_seconds(folder_runs(folder)), **out}
    return out


def plan_runs(
    spec: ReproductionSpec,
    schedule: Schedule,
    out_root: Path,
    only: list[str],
    seeds: int | None,
    gpu: bool = False,
) -> list[PlannedRun]:
    """The runs the plan asks for, in training order.

    ``only`` keeps the configurations whose paper key, id, recipe or CPU recipe it names (and the
    checks of those), or, when it names only run folders, those runs (and the face network
    when one of them needs it); ``seeds`` overrides every configuration's number of seeds. Rows
    that share a recipe share its runs. ``gpu``: the GPU-only rows' full-size recipes instead.
    """
    if only:  # run folder names (``jahromi_medium-keras-init-s0``) pick single runs
        everything = plan_runs(spec, schedule, out_root, [], seeds, gpu)
        if set(only) <= {r.out.name for r in everything}:
            picked = [r for r in everything if r.out.name in only]
            face = _face_run(everything)
            if face and face not in picked and any(r.needs_face for r in picked):
                picked.insert(0, face)
            return picked
    wanted = set(only)
    names = {n for c in spec.configurations() for n in (c.paper, c.id, c.recipe, c.cpu_recipe)}
    unknown = wanted - names
    if unknown:
        raise FerlabError(
            f"--only {', '.join(sorted(unknown))}: no such paper, configuration, recipe or run "
            f"in {spec.path}"
        )
    gpu_rows = {r for g in spec.gpu_only for r in g.rows}
    per_recipe: dict[str, tuple[int, str, list[str]]] = {}
    kept: set[str] = set()
    for c in spec.configurations():
        if wanted and not wanted & {c.paper, c.id, c.recipe, c.cpu_recipe}:
            continue
        if gpu:
            if c.id not in gpu_rows:
                continue
            name = c.recipe
        elif not c.run_on_cpu:
            continue
        else:
            name = c.cpu_recipe
        kept.add(c.id)
        n, stage, labels = per_recipe.get(name, (0, c.stage, []))
        stage = min(stage, c.stage, key=STAGES.index)
        per_recipe[name] = (max(n, seeds or c.seeds), stage, [*labels, c.label])
    runs = []
    for name, (n, stage, labels) in per_recipe.items():
        for seed in range(n):
            # seed 0 of the required rows, (checks), seed 0 of the variants, other seeds, long rows
            if stage == "long":
                order = 6
            elif seed > 0:
                order = 4
            else:
                order = 3 if stage == "variant" else 1
            runs.append(PlannedRun(name, seed, out_root / f"{name}-s{seed}", labels, order))
    if not gpu:
        for check in schedule.checks:
            if not set(check.explains) & kept:
                continue
            for seed in range(check.seeds):
                runs.append(
                    PlannedRun(
                        check.recipe,
                        seed,
                        out_root / check.folder(seed),
                        [f"{CHECK_KINDS[check.kind]} ({check.id})"],
                        6 if check.stage == "long" else 2,
                        check=check,
                    )
                )
    timings = _seconds_per_epoch(out_root, schedule.timings)
    face_needed = False
    for run in runs:
        try:
            recipe = spec.load(run.recipe, schedule, run.check)
        except FerlabError as exc:
            run.problem = str(exc)
            continue
        run.needs_face = bool(recipe.model.face_checkpoint)
        run.min_epochs = recipe.train.min_epochs
        face_needed |= run.needs_face
        _estimate(run, recipe, timings)
    # a run already started goes on first; then cheapest first
    runs.sort(
        key=lambda r: (
            r.order,
            r.state not in RESUMED,
            r.estimate_s is None,
            r.estimate_s or 0.0,
        )
    )
    if face_needed:
        face = spec.gpu_face_network if gpu else spec.face_network
        if face is None:
            raise FerlabError(f"a recipe needs a face network but {spec.path} names none")
        run = PlannedRun(face, 0, out_root / f"{face}-s0", [FACE_ROW])
        _estimate(run, spec.load(face, schedule), timings)
        runs.insert(0, run)
    return runs


def _face_run(runs: list[PlannedRun]) -> PlannedRun | None:
    """The face network's run, which :func:`plan_runs` puts first when a run needs it."""
    return runs[0] if runs and runs[0].rows == [FACE_ROW] else None


def _estimate(run: PlannedRun, recipe: Recipe, timings: dict[tuple[str, str], float]) -> None:
    """The run's training seconds left at its recipe's measured pace (in the recipe's precision
    where a run of it was timed in that precision, else in another: the estimate's caveat)."""
    run.epochs = epochs = recipe.train.epochs
    found = pace(timings, run.recipe, recipe.train.precision)
    per_epoch, timed = found or (None, "")
    run.timed_in = "" if timed == recipe.train.precision else timed
    if per_epoch is None or run.state == "done":
        run.estimate_s = 0.0 if run.state == "done" else None
        return
    done = 0.0
    if run.state in RESUMED:
        history = read_run(run.out).history if (run.out / "config.yaml").is_file() else ()
        done = history[-1].get("epoch", 0.0) if history else 0.0
    run.estimate_s = max(0.0, epochs - done) * per_epoch


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def print_plan(
    console: Console, runs: list[PlannedRun], spec: ReproductionSpec, schedule: Schedule
) -> None:
    states = [r.state for r in runs]
    todo = [r for r in runs if r.state in TO_TRAIN]
    known = sum(r.estimate_s or 0.0 for r in todo)
    unknown = sum(r.estimate_s is None for r in todo)
    otherwise = sum(bool(r.timed_in) for r in todo)
    console.print(
        f"[bold]schedule {schedule.name}[/]: {schedule.description}\n[bold]{len(runs)} runs[/], "
        f"{states.count('done')} done, {states.count('resume')} to resume, "
        f"{states.count('extend')} to extend, {states.count('restart')} to restart (checkpoint "
        f"lost), {states.count('new')} new; at most "
        f"{_hours(known)} of training left (before early stopping) at the seconds per epoch "
        f"measured in this campaign's runs, else in {schedule.timings or 'none'}"
        + (f", {unknown} run(s) without a measured epoch time" if unknown else "")
        + (
            f", {otherwise} run(s) (*) timed only in another precision, so roughly"
            if otherwise
            else ""
        ),
        highlight=False,
    )
    for run in runs:
        estimate = "" if run.estimate_s is None else _hours(run.estimate_s)
        estimate += "*" if run.timed_in and run.state in TO_TRAIN else ""
        line = (
            f"  {run.state:<10} {run.out.name:<40} {run.epochs:>4} ep {estimate:>8}  "
            f"{'; '.join(run.rows)}"
        )
        if run.problem:
            line += f"\n             [red]{run.problem}[/]"
        console.print(line, highlight=False, soft_wrap=True)
    if spec.gpu_only:
        console.print("[bold]GPU only[/] (python benchmarks/reproduce.py --gpu):")
        for g in spec.gpu_only:
            console.print(f"  {g.configuration}", highlight=False, soft_wrap=True)


def train_run(
    run: PlannedRun,
    spec: ReproductionSpec,
    schedule: Schedule,
    threads: int | None,
    face_checkpoint: Path | None,
    gpu: bool,
    console: Console,
) -> str:
    """Train or resume one run; its stop reason."""
    from ferlab.engine.recipe import apply_overrides
    from ferlab.engine.trainer import resume_recipe, train

    resume = run.state in RESUMED
    if resume:
        recipe = resume_recipe(run.out)
        later: dict[str, Any] = {}
        if run.min_epochs:  # a minimum the recipe gained after the run started
            later["train.min_epochs"] = run.min_epochs
        if threads:  # threads change speed, not what the run measures (a core may have freed up)
            later["train.num_threads"] = threads
        if later:
            recipe = apply_overrides(recipe, later, where="reproduce.py")
    else:
        overrides: dict[str, Any] = {"train.seed": run.seed, "train.num_threads": threads}
        if gpu:
            overrides["train.device"] = "cuda"
        if run.needs_face:
            overrides["model.face_checkpoint"] = str(face_checkpoint)
        recipe = apply_overrides(
            spec.load(run.recipe, schedule, run.check), overrides, where="reproduce.py"
        )
    record_machine(run.out, recipe.train.num_threads or threads)
    result = train(recipe, out_dir=run.out, resume=resume, progress=True, console=console)
    return result.stop_reason


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, default=ROOT / "benchmarks" / "reproduction.yaml")
    parser.add_argument("--schedule", help="a schedule of the plan (default: the plan's)")
    parser.add_argument("--out", type=Path, help="default: the schedule's folder")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        help="a paper key, configuration id, recipe or run folder name",
    )
    parser.add_argument("--seeds", type=int, help="seeds for every configuration")
    parser.add_argument(
        "--threads",
        type=int,
        default=int(os.environ["OMP_NUM_THREADS"]) if os.environ.get("OMP_NUM_THREADS") else None,
        help="CPU threads per run (default: OMP_NUM_THREADS, else every core)",
    )
    parser.add_argument(
        "--gpu", action="store_true", help="train the GPU-only rows' full-size recipes on CUDA"
    )
    parser.add_argument("--report", type=Path, help="default: the schedule's report")
    parser.add_argument("--figures", type=Path, help="default: figures/ beside the report")
    parser.add_argument("--no-report", action="store_true", help="train only")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument(
        "--park",
        action="store_true",
        help="pack the plan's unfinished runs' last.pt and the face network's best.pt into "
        "--archive (every run of the schedule, whatever --only says)",
    )
    parser.add_argument(
        "--archive",
        type=Path,
        help="default: checkpoints/<schedule folder>/in-progress.tar.xz (kept in git)",
    )
    args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        if args.seeds is not None and args.seeds < 1:
            raise FerlabError("--seeds must be at least 1")
        spec = load_spec(args.plan)
        schedule = spec.schedule(args.schedule)
        out = args.out or schedule.out
        archive = args.archive or ROOT / "checkpoints" / out.name / ARCHIVE
        if not args.park:
            for name in unpark(out, archive):
                console.print(f"restored {name} from {archive}", highlight=False)
        if args.park:  # the whole plan: the archive replaces the previous one
            return _park(plan_runs(spec, schedule, out, [], args.seeds), out, archive, console)
        runs = plan_runs(spec, schedule, out, args.only, args.seeds, args.gpu)
        print_plan(console, runs, spec, schedule)
        if args.dry_run:
            return 0
        return _campaign(args, spec, schedule, out, runs, console)
    except FerlabError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 2


ARCHIVE = "in-progress.tar.xz"
"""The archive of checkpoints that ``--park`` keeps in git between sessions."""


def park(runs: list[PlannedRun], out: Path, archive: Path) -> list[Path]:
    """Pack into ``archive`` what a fresh checkout would lack to go on: the ``last.pt`` of every
    run that resumes and the face network's ``best.pt`` while a run that needs it has not
    finished (its ``metrics.json`` gains the digest of those weights where it lacks it). Returns
    the files packed; with none, the archive is removed."""
    files = [r.out / "last.pt" for r in runs if r.state in RESUMED]
    face = _face_run(runs)
    if face and any(r.needs_face and r.state != "done" for r in runs):
        files.append(face.out / "best.pt")
        _record_weights_digest(face.out)
    files = [f for f in files if f.is_file()]
    if not files:
        archive.unlink(missing_ok=True)
        return []
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    # xz: checkpoints shrink to about 58 % (gzip: 91 %), which keeps git's copy small
    with tarfile.open(part, "w:xz") as tar:
        for f in files:
            tar.add(f, arcname=f.relative_to(out).as_posix())
    os.replace(part, archive)  # a reader never sees half an archive
    return files


def _record_weights_digest(run_dir: Path) -> None:
    """Add ``best_sha256`` to a finished run's ``metrics.json`` where the run predates it, so the
    report can tell which attention runs loaded these weights."""
    metrics_path, best = run_dir / "metrics.json", run_dir / "best.pt"
    if not (metrics_path.is_file() and best.is_file()):
        return
    metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    if "best_sha256" not in metrics:
        metrics["best_sha256"] = file_sha256(best)
        part = metrics_path.with_suffix(".part")
        part.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        os.replace(part, metrics_path)


def unpark(out: Path, archive: Path) -> list[str]:
    """Restore from ``archive`` (see :func:`park`) the checkpoints missing in ``out``; a file that
    is there already is left alone. Returns the members restored."""
    if not archive.is_file():
        return []
    restored = []
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                run, _, name = member.name.partition("/")
                if (
                    not member.isfile()
                    or run in ("", ".", "..")
                    or name not in ("last.pt", "best.pt")
                ):
                    raise FerlabError(f"{archive}: unexpected member {member.name!r}")
                target = out / run / name
                if target.exists():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                part = target.with_suffix(".part")
                with tar.extractfile(member) as src:
                    part.write_bytes(src.read())
                os.replace(part, target)
                restored.append(member.name)
    except (tarfile.TarError, OSError) as exc:
        raise FerlabError(f"{archive}: cannot restore checkpoints from it ({exc})") from exc
    return restored


def _park(runs: list[PlannedRun], out: Path, archive: Path, console: Console) -> int:
    files = park(runs, out, archive)
    for f in files:
        console.print(
            f"parked {f.relative_to(out)} ({f.stat().st_size / 1e6:.1f} MB)", highlight=False
        )
    where = (
        f"{archive} ({archive.stat().st_size / 1e6:.1f} MB)"
        if files
        else f"nothing: removed {archive}"
    )
    console.print(f"in git between sessions: {where}", highlight=False)
    return 0


LOCK = ".training.lock"
"""Held in a run folder while a runner trains it (its process id), so that two runners side by
side never train one run."""


def _claim(out: Path) -> int | None:
    """Take ``out``'s lock; None when taken, else the id of the live process that holds it (a
    lock left by a process that no longer runs is taken over)."""
    out.mkdir(parents=True, exist_ok=True)
    lock, mine = out / LOCK, out / f"{LOCK}.{os.getpid()}"
    mine.write_text(str(os.getpid()))
    try:
        while True:
            try:
                os.link(mine, lock)  # atomic: the lock appears with its process id in it
                return None
            except FileExistsError:
                try:
                    holder = int(lock.read_text())
                except FileNotFoundError:  # released meanwhile
                    continue
                except (OSError, ValueError):
                    holder = 0
                if holder and _alive(holder):
                    return holder
                lock.unlink(missing_ok=True)  # stale: its runner is gone
    finally:
        mine.unlink()


def _forget_unstarted(out: Path) -> None:
    """A run that failed before training began leaves no folder behind (the report would refuse
    a folder without a run in it)."""
    if (out / "config.yaml").exists():
        return
    for name in ("machine.json", LOCK):
        (out / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        out.rmdir()  # only if nothing else is in it


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        pass
    return True


def _campaign(
    args: argparse.Namespace,
    spec: ReproductionSpec,
    schedule: Schedule,
    out: Path,
    runs: list[PlannedRun],
    console: Console,
) -> int:
    failed: list[tuple[PlannedRun, str]] = []
    todo = [r for r in runs if r.state in TO_TRAIN]
    face = _face_run(runs)
    for i, run in enumerate(todo, 1):
        if run.state == "done":  # finished meanwhile by another runner
            continue
        if run.needs_face and not (face and (face.out / "metrics.json").is_file()):
            failed.append((run, "the face network has not finished"))
            continue
        holder = _claim(run.out)
        if holder is not None:
            console.print(
                f"skipped {run.out.name}: another runner (process {holder}) is training it",
                highlight=False,
            )
            continue
        console.rule(f"[{i}/{len(todo)}] {run.out.name} ({run.state}): {'; '.join(run.rows)}")
        try:
            reason = train_run(
                run,
                spec,
                schedule,
                args.threads,
                face.out / "best.pt" if face else None,
                args.gpu,
                console,
            )
        except Exception as exc:  # one broken run must not end an unattended campaign
            why = str(exc) if isinstance(exc, FerlabError) else f"{type(exc).__name__}: {exc}"
            console.print(f"[bold red]failed:[/] {why}", highlight=False, soft_wrap=True)
            failed.append((run, why))
            _forget_unstarted(run.out)
            continue
        finally:
            (run.out / LOCK).unlink(missing_ok=True)
        if reason == "interrupted":
            console.print("[yellow]interrupted[/]: run the same command again to continue")
            return 130
    for run, why in failed:
        console.print(f"[red]not trained[/]: {run.out.name}: {why}", highlight=False)
    if not args.no_report:
        from ferlab.report import write_report

        report = args.report or schedule.report
        run_dirs = sorted(p for p in out.glob("*") if (p / "config.yaml").is_file())
        embed = [ROOT / "docs" / "facial_attention.md"] if args.report is None else []
        write_report(run_dirs, args.plan, report, args.figures, schedule=schedule.name, embed=embed)
        console.print(f"wrote {report}", highlight=False)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
