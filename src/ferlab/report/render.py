"""The reproduction report as Markdown and figures, and its sections embedded in other docs."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from ferlab.engine.recipe import Recipe
from ferlab.errors import DataError
from ferlab.report.build import (
    COLLAPSED,
    GAP_POINTS,
    CheckResult,
    Report,
    Row,
    Stat,
    build_report,
    compare_rows,
    conclusions,
    gap,
    identical_seeds,
    main_of,
    mean_sd,
    paper_titles,
)
from ferlab.report.plan import CHECK_KINDS, load_spec
from ferlab.report.runs import RunRecord, pace, shown_path

__all__ = ["draw_figures", "embed_sections", "protocol_text", "render_markdown", "write_report"]


def protocol_text(recipe: Recipe) -> str:
    """The training protocol of a recipe in one line: epochs, batch, optimiser, schedule."""
    t, o, s = recipe.train, recipe.optim, recipe.schedule
    epochs = f"{t.epochs} epochs"
    if t.early_stopping:
        epochs += f" (early stopping after {t.early_stopping}"
        epochs += f", not before epoch {t.min_epochs})" if t.min_epochs else ")"
    if t.time_budget:
        epochs += (
            f" or {t.time_budget} of {'CPU' if t.budget_clock == 'cpu' else 'wall-clock'} time"
        )
    optimiser = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[o.name]
    if o.name == "sgd":
        optimiser += f"{' Nesterov' if o.nesterov else ''} momentum {o.momentum:g}"
    optimiser += f", lr {o.lr:g}"
    if o.weight_decay:
        on = (
            ""
            if o.weight_decay_on is None
            else " on " + ", ".join(f"{p.rstrip('.')}.*" for p in o.weight_decay_on) + " only"
        )
        optimiser += f", weight decay {o.weight_decay:g}{on}"
    at = "/".join(f"{100 * m:g}" for m in s.milestones)
    schedules = {
        "constant": "constant lr",
        "step": f"lr ×{s.gamma:g} at {at} % of training",
        "plateau": f"lr ×{s.factor:g} after {s.patience} epochs without gain",
        "cosine": "cosine lr decay",
    }
    parts = [epochs, f"batch {t.batch_size}", optimiser, schedules.get(s.kind, "one-cycle lr")]
    if recipe.data.labels != "fer2013":
        parts.append(f"{recipe.data.labels} labels")
    if recipe.eval.tta != "none":
        parts.append(f"{recipe.eval.tta.replace('_', '-')} test-time augmentation")
    return "; ".join(parts)


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _acc(stat: Stat) -> str:
    if stat.mean is None:
        return "—"
    if stat.sd is None:
        return f"{stat.mean:.2f} (n={stat.n})"
    return f"{stat.mean:.2f} ± {stat.sd:.2f} (n={stat.n})"


def _condensed(text: str, least: int = 80, limit: int = 240) -> str:
    """The first sentences of ``text`` up to about ``least`` characters, cut at ``limit``."""
    out = ""
    for sentence in re.split(r"(?<=\.)\s+", " ".join(text.split())):
        out = f"{out} {sentence}".strip()
        if len(out) >= least:
            break
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def _rel(path: str | Path, report_path: str | Path) -> str:
    """``path`` relative to the report's folder, with forward slashes (a Markdown link)."""
    start = Path(report_path).resolve().parent
    return Path(os.path.relpath(Path(path).resolve(), start)).as_posix()


def _progress(run: RunRecord, planned: int | None) -> str:
    best = max((h.get("val_acc", 0.0) for h in run.history), default=None)
    text = f"epoch {_epochs(run.epochs or 0.0)} of {planned or '?'}"
    if best is not None:
        text += f", best PublicTest so far {100 * best:.2f} %"
    return text


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def _time_left(report: Report, recipe: Recipe, epochs_left: float) -> str:
    """The training time ``epochs_left`` epochs of ``recipe`` take at its measured pace."""
    found = pace(report.epoch_seconds, recipe.name, recipe.train.precision)
    if found is None:
        return "no measured epoch time to estimate from"
    (seconds, where), timed = found
    otherwise = (
        f"; timed in {timed}, this trains in {recipe.train.precision}"
        if timed != recipe.train.precision
        else ""
    )
    return (
        f"estimate: {'at most ' if recipe.train.early_stopping else ''}"
        f"{_hours(seconds * epochs_left)} of training at the {seconds:.0f} s per epoch measured"
        f" in {where}"
        + ("; early stopping may end it sooner" if recipe.train.early_stopping else "")
        + otherwise
    )


def _ours(row: Row, report: Report) -> tuple[str, str]:
    """(PrivateTest cell, PublicTest cell) of a row."""
    c = row.config
    if not c.trained:
        return "not reproduced: no run possible", "—"
    if not c.run_on_cpu and not row.runs:
        g = next((g for g in report.spec.gpu_only if c.id in g.rows), None)
        text = "needs a GPU" + (f" ({g.expected_time})" if g else "")
        return text, "—"
    cell = _seeds_cell(report, row.cpu_recipe, row, c.seeds)
    return cell, _acc(row.stat("public")) if row.runs else "—"


def _seeds_cell(
    report: Report, recipe: Recipe | None, result: Row | CheckResult, seeds: int
) -> str:
    """PrivateTest accuracy over a row's or check's finished seeds, with what is unfinished or
    still planned and the training time it needs."""
    runs, unfinished = result.runs, result.unfinished
    planned = recipe.train.epochs if recipe else 0
    missing = max(0, seeds - len(runs) - len(unfinished))
    left = missing * planned + sum(max(0.0, planned - (r.epochs or 0)) for r in unfinished)
    estimate = f" ({_time_left(report, recipe, left)})" if left else ""
    more = f"; {missing} more seed(s) planned" if missing else ""
    if runs:
        done = _acc(result.stat())
        if unfinished:
            done += f"; {len(unfinished)} more seed(s) unfinished"
        return done + more + estimate
    if unfinished:
        progress = "; ".join(_progress(r, planned) for r in unfinished)
        return f"pending: {progress}{more}{estimate}"
    return f"pending: not started, {seeds} seed(s) × {planned} epochs{estimate}"


def _epochs(x: float | None) -> str:
    return "?" if x is None else f"{x:g}" if x == int(x) else f"{x:.1f}"


def _training(row: Row) -> str:
    """Our protocol (the CPU recipe as the schedule trains it) and how its runs went."""
    if not row.config.trained:
        return "—"
    protocol = "—" if row.cpu_recipe is None else protocol_text(row.cpu_recipe)
    if not row.runs:
        return protocol
    epochs = ", ".join(_epochs(r.epochs) for r in row.runs)
    stops = sorted({r.stop_reason.replace("_", " ") for r in row.runs})
    precision = sorted({r.precision for r in row.runs})
    labels = sorted({r.label_mode for r in row.runs if r.label_mode})
    machines = sorted({r.machine for r in row.runs if r.machine})
    ran = "; ".join(
        [
            f"{epochs} epochs ({', '.join(stops)})",
            "/".join(precision),
            *(f"{x} labels" for x in labels),
            *machines,
        ]
    )
    return f"{protocol}. Trained: {ran}"


def _gap_cells(report: Report, row: Row) -> tuple[str, str, str]:
    g = gap(report, row)
    if g.diff is None:
        return "—", "—", g.verdict
    spread = "one seed" if g.within_spread is None else ("yes" if g.within_spread else "no")
    why = g.verdict if not g.findings else f"{g.verdict}: " + "; ".join(g.findings)
    return f"{g.diff:+.2f}", spread, why


def _note(row: Row) -> str:
    c = row.config
    parts = [f"Recipe problem: {row.problem}."] if row.problem else []
    if not row.same_network and c.run_on_cpu:
        parts.append(f"Ours: `{c.cpu_recipe}` (the CPU-size network).")
    if c.note:
        parts.append(c.note)
    elif row.recipe is not None and row.recipe.paper.notes:
        parts.append(_condensed(row.recipe.paper.notes))
    return " ".join(parts)


_TABLE_HEAD = (
    "| configuration | paper % | the paper's number (as stated) | ours: PrivateTest % | "
    "ours − paper | paper within 2 s.d.? | gap explained? | ours: PublicTest % | "
    "our protocol and training | note |\n|---|---:|---|---|---:|---|---|---|---|---|"
)


def _row_line(report: Report, row: Row) -> str:
    c = row.config
    paper = "—" if row.paper_accuracy is None else f"{row.paper_accuracy:g}"
    paper_stated = next(p.stated for p in report.spec.papers if p.key == c.paper)
    stated = [c.stated.rstrip(".")] if c.stated and c.stated != paper_stated else []
    if row.reported_on:
        stated.append(f"reported on: {row.reported_on}")
    protocol = "; ".join(stated) or "—"
    private, public = _ours(row, report)
    diff, spread, why = _gap_cells(report, row)
    cells = [
        f"{c.label}<br>`{c.recipe}`",
        paper,
        protocol,
        private,
        diff,
        spread,
        why,
        public,
        _training(row),
        _note(row),
    ]
    return "| " + " | ".join(_cell(x) for x in cells) + " |"


def _gpu_lines(report: Report, rows: Sequence[Row]) -> list[str]:
    lines = []
    for row in rows:
        if row.gpu_runs and row.config.run_on_cpu:  # beside the CPU-size runs of its row
            s = mean_sd(100 * r.private for r in row.gpu_runs if r.private is not None)
            lines.append(
                f"- {row.config.label}, `{row.config.recipe}` on a GPU: PrivateTest {_acc(s)} "
                f"(paper {row.paper_accuracy:g} %)"
            )
    return lines


def _face_lines(report: Report) -> list[str]:
    """The face / non-face networks the facial-attention rows attend with."""
    lines = []
    for run in report.face_runs:
        lines.append(
            f"Face / non-face network `{run.name}` (seed {run.seed}, {_epochs(run.epochs)} epochs,"
            f" {run.stop_reason.replace('_', ' ')}; {run.machine or run.device}): test accuracy"
            f" {100 * (run.private or 0):.2f} %, validation {100 * (run.public or 0):.2f} % on"
            f" the face / non-face set's own splits. {_face_users(report, run)}"
        )
    for run in report.pending_face:
        lines.append(f"Face / non-face network `{run.name}`: {_progress(run, None)}.")
    return [*lines, ""] if lines else []


def _face_users(report: Report, face: RunRecord) -> str:
    """Which attention runs recorded this face network's weights (by their SHA-256)."""
    users = [r for r in report.runs() if r.recipe.model.face_checkpoint]
    if not users:
        return "No finished attention run of this report uses a face network."
    if not face.best_sha256:
        return (
            f"This run does not record its weights' SHA-256, so the {len(users)} finished"
            " attention run(s) of this report (rows and side checks) cannot be matched to it."
        )
    same = sum(r.face_sha256 == face.best_sha256 for r in users)
    other = sum(bool(r.face_sha256) and r.face_sha256 != face.best_sha256 for r in users)
    unknown = len(users) - same - other
    parts = [
        f"Frozen in {same} of the {len(users)} finished attention run(s) of this report (rows"
        " and side checks)"
    ]
    if other:
        parts.append(f"{other} loaded another face network")
    if unknown:
        parts.append(f"{unknown} do not record which (trained before ferlab recorded it)")
    return "; ".join(parts) + "."


def paper_section(
    report: Report, key: str, figures: dict[str, Path], doc_path: str | Path, level: int = 2
) -> list[str]:
    """One paper's table, figure and comparisons (also embedded in other docs)."""
    paper = next(p for p in report.spec.papers if p.key == key)
    rows = report.rows_of(key)
    lines = [f"{'#' * level} {paper.title}", ""]
    if paper.hardware:
        lines += [f"Hardware as stated: {paper.hardware}.", ""]
    lines += [
        f"Protocol as stated: {paper.stated or 'not given in the plan.'} Ours: the column"
        " *our protocol and training*, from our recipe (a choice of ours where the paper gives"
        " none; see the note).",
        "",
    ]
    lines += [_TABLE_HEAD, *(_row_line(report, r) for r in rows), ""]
    lines += _gpu_lines(report, rows)
    if any(r.cpu_recipe is not None and r.cpu_recipe.model.face_checkpoint for r in rows):
        lines += _face_lines(report)
    same = identical_seeds(report, key)
    if same:
        lines += [*same, ""]
    comparisons = [c for c in compare_rows(report) if c.row.config.paper == key]
    if comparisons:
        lines += [
            "| configuration | against | addition | Δ PrivateTest (points) | verdict | paper's Δ |",
            "|---|---|---|---:|---|---:|",
        ]
        for cmp in comparisons:
            delta = "—" if cmp.delta is None else f"{cmp.delta:+.2f}"
            if cmp.se is not None:
                delta += f" (s.e. {cmp.se:.2f})"
            paper_delta = "—" if cmp.paper_delta is None else f"{cmp.paper_delta:+.2f}"
            cells = [
                cmp.row.config.label,
                cmp.baseline.config.label,
                cmp.row.config.change,
                delta,
                cmp.verdict,
                paper_delta,
            ]
            lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
        lines.append("")
    if key in figures:
        lines += [
            f"![{paper.title}: PublicTest accuracy per epoch]({_rel(figures[key], doc_path)})",
            "",
            "*Lines: each run's PublicTest accuracy after every epoch (where the checkpoint is"
            " selected); dots: its final PrivateTest accuracy; dashed: the paper's numbers, on"
            " the paper's own test protocol"
            + (
                "; dotted: each run's training accuracy, where the paper's number is one"
                if any(r.config.paper_measure == "training" for r in rows)
                else ""
            )
            + ".*",
            "",
        ]
    return lines


def _machines(report: Report) -> str:
    """What the counted runs are: how many, their precision and machines (from the runs)."""
    runs, pending = report.runs(), report.pending()
    precisions: dict[str, int] = {}
    for r in runs:
        precisions[r.precision or "?"] = precisions.get(r.precision or "?", 0) + 1
    recorded = [r for r in runs if r.machine and r.machine != r.device]
    cpus = sorted({r.machine.split(",")[0] for r in recorded})
    if len(recorded) < len(runs):
        cpus.append(f"{len(runs) - len(recorded)} run(s) without a machine record")
    others = len(report.not_counted)
    tail = (f" {len(pending)} run(s) unfinished." if pending else "") + (
        f" {others} run folder(s) not counted (listed at the end)." if others else ""
    )
    if not runs:
        return "No counted run has finished yet." + tail
    checks = sum(len(c.runs) for c in report.checks)
    kinds = [
        (len(runs) - checks - len(report.face_runs), "of the tables' rows"),
        (checks, "side run(s)"),
        (len(report.face_runs), "face network(s)"),
    ]
    return (
        f"Counted finished runs: {len(runs)} ("
        + ", ".join(f"{n} {what}" for n, what in kinds if n)
        + "; "
        + ", ".join(f"{n} {k}" for k, n in sorted(precisions.items()))
        + "; "
        + ("; ".join(cpus) or "machine not recorded")
        + ")."
        + tail
    )


def _precision(report: Report) -> str:
    """The precision of the tables' runs (per paper where the schedule trains papers
    differently) and the state of its precision checks, one per family."""
    titles = paper_titles(report)
    papers: dict[str, list[str]] = {}  # precision -> papers whose rows train in it
    for row in report.rows:
        if row.config.run_on_cpu and row.cpu_recipe is not None:
            titles_of = papers.setdefault(row.cpu_recipe.train.precision, [])
            if titles[row.config.paper] not in titles_of:
                titles_of.append(titles[row.config.paper])
    if len(papers) <= 1:
        p = next(iter(papers), report.schedule.precision)
        text = f"Precision: {_precision_name(p)} in every run of the tables"
    else:
        text = "Precision: " + "; ".join(
            f"{_precision_name(p)} in the rows of {', '.join(names)}" for p, names in papers.items()
        )
    checks = [r for r in report.checks if r.check.kind == "precision"]
    covered = {
        r.config.paper
        for result in checks
        for r in report.rows
        if r.config.id in result.check.explains
    }
    trained = dict.fromkeys(r.config.paper for r in report.rows if r.config.run_on_cpu)
    unchecked = [titles[k] for k in trained if k not in covered]
    none = f"; no precision check for {', '.join(unchecked)}" if unchecked else ""
    if not checks:
        return text + none + "."
    parts = []
    for result in checks:
        rows = [r for r in report.rows if r.config.id in result.check.explains]
        family = " and ".join(dict.fromkeys(titles[r.config.paper] for r in rows))
        if result.runs:
            state = f"{result.stat().mean:.2f} %, n={result.stat().n}"
        elif result.unfinished:
            state = "unfinished"
        else:
            state = "not started"
        changed = result.recipe.train.precision if result.recipe else "?"
        parts.append(f"`{result.check.recipe}` in {changed} for {family} ({state})")
    return text + "; side runs in another precision check it: " + "; ".join(parts) + none + "."


def _precision_name(precision: str) -> str:
    if precision == "auto":
        return "left to the CPU (bf16 autocast where it computes bf16 natively)"
    return "fp32" if precision == "fp32" else f"{precision} autocast"


def _kinds_of_checks() -> str:
    """``precision, learning rate, label set and initialisation``: what a side check may change."""
    kinds = [k.removesuffix(" check").replace("-", " ") for k in CHECK_KINDS.values()]
    return f"{', '.join(kinds[:-1])} and {kinds[-1]}"


def render_markdown(
    report: Report,
    figures: dict[str, Path],
    report_path: str | Path,
    embed: Sequence[str | Path] = (),
) -> str:
    """The report as Markdown; ``figures`` maps a paper key to its PNG (linked relatively),
    ``embed`` names the docs that show its sections too (for the command that regenerates it)."""
    spec, sched = report.spec, report.schedule
    finished, pending = report.runs(), report.pending()
    budget, clock = sched.budget
    training = (
        f"a time budget of {budget} of {'CPU' if clock == 'cpu' else 'wall-clock'} time a run"
        if budget
        else "each recipe's own epochs, early stopping, learning-rate schedule and batch; no"
        " time budget"
    )
    lines = [
        "# Reproduction: the papers' numbers beside ours",
        "",
        "<!-- Generated by `ferlab compare RUN_DIR... --report` from run folders and"
        f" {shown_path(spec.path)} (schedule {sched.name}); do not edit by hand. -->",
        "",
        f"Generated {report.generated} from {len(finished)} finished run(s)"
        + (f" and {len(pending)} unfinished" if pending else "")
        + f", schedule **{sched.name}**: {sched.description}"
        + "".join(
            f" The plan's schedule {o.name} has its own report: [{o.report.name}]"
            f"({_rel(o.report, report_path)})."
            for o in spec.schedules.values()
            if o.name != sched.name
        ),
        "",
        "**Protocol (ours).** Train on FER2013 Training (FER+ labels where our protocol says so),"
        " select the checkpoint on PublicTest, evaluate PrivateTest once with the recipe's"
        " test-time augmentation. A run counts only when its config.yaml matches its recipe"
        f" under the {sched.name} schedule ({training}). {_precision(report)}"
        f" {_machines(report)}",
        "",
        "**Reading the tables.** Accuracies in percent: mean over seeds ± the sample standard"
        " deviation, n seeds. *ours − paper* is our PrivateTest mean minus the paper's number;"
        " *paper within 2 s.d.* says whether the paper's number lies within two standard"
        " deviations of our seeds' mean. A row more than"
        f" {GAP_POINTS:g} points from the paper gets the run-backed findings about its gap"
        f" (side checks of {_kinds_of_checks()}, the network size, the schedule, collapse to"
        " one class): *explained* when a side run brings it within"
        f" {GAP_POINTS:g} points (or, for a paper's training accuracy, ours does), *partly"
        " explained* when one moves accuracy towards the paper by more than"
        f" {GAP_POINTS:g} points (or twice the seeds' standard deviation, where larger), *not"
        " comparable* when ours"
        " departs from the paper's protocol in a way no run has measured (a smaller network, a"
        " time budget), else *not explained*. A run has collapsed when it gives"
        f" one class to more than {100 * COLLAPSED:.0f} % of PrivateTest.",
        "",
    ]
    for paper in spec.papers:
        lines += paper_section(report, paper.key, figures, report_path)
    if report.checks:
        lines += [
            "## Side checks",
            "",
            "The same recipe with one thing changed; each is compared with the schedule's own"
            " runs of that recipe.",
            "",
            "| check | recipe | changed | PrivateTest % | the recipe's own runs % | rows it"
            " tests | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for result in report.checks:
            main = main_of(report, result)
            ours = _seeds_cell(report, result.recipe, result, result.check.seeds)
            cells = [
                CHECK_KINDS[result.check.kind],
                f"`{result.check.recipe}`",
                result.check.change(": "),
                ours,
                _acc(main),
                ", ".join(result.check.explains),
                result.check.note or "—",
            ]
            lines.append("| " + " | ".join(_cell(x) for x in cells) + " |")
        lines.append("")
    lines += ["## Conclusions", "", "*Computed from the runs above.*", ""]
    lines += [f"- {c}" for c in conclusions(report)]
    lines.append("")
    if spec.gpu_only:
        lines += [
            "## Configurations that need a GPU",
            "",
            "The papers' full-size networks; one command trains them on a CUDA machine into"
            f" `{shown_path(spec.schedule().out)}/` (the {spec.default_schedule} schedule, from the"
            " repository root, data beside the checkout as the"
            " recipes expect), after which regenerating this report fills their rows.",
            "",
        ]
        for g in spec.gpu_only:
            lines += [
                f"### {g.configuration}",
                "",
                f"{g.why} GPU time: {g.expected_time}.",
                "",
                "```bash",
                g.commands,
                "```",
                "",
            ]
    if report.not_counted:
        lines += ["## Runs not counted", ""]
        lines += [f"- `{shown_path(p)}`: {_cell(why)}" for p, why in report.not_counted]
        lines.append("")
    if report.unrelated:
        lines += ["## Runs outside the papers' tables", ""]
        lines += [f"- `{shown_path(r.path)}` ({r.name}, seed {r.seed})" for r in report.unrelated]
        lines.append("")
    out = shown_path(sched.out)
    lines += [
        "## How to run",
        "",
        "```bash",
        "# the campaign, one thread, in the background; the same command resumes it (finished runs"
        " are skipped, unfinished ones continue from their last.pt)",
        f"OMP_NUM_THREADS=1 nohup python benchmarks/reproduce.py --schedule {sched.name}"
        " --no-report > reproduce.log 2>&1 &",
        f"python benchmarks/reproduce.py --schedule {sched.name} --dry-run   # state, estimate",
        f"python benchmarks/reproduce.py --schedule {sched.name} --park   # runners stopped: keeps"
        " the unfinished runs' checkpoints in git (restored by the next command)",
        f"ferlab compare {out}/* --report {shown_path(sched.report)} --schedule {sched.name}"
        + "".join(f" --embed {shown_path(Path(d))}" for d in embed),
        "```",
        "",
    ]
    return "\n".join(lines)


def draw_figures(report: Report, folder: str | Path) -> dict[str, Path]:
    """One PNG per paper: each run's PublicTest accuracy per epoch beside the paper's numbers."""
    from matplotlib.lines import Line2D

    from ferlab.engine.plots import pyplot

    plt = pyplot()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for paper in report.spec.papers:
        rows = [r for r in report.rows_of(paper.key) if r.config.trained]
        colours = plt.get_cmap("tab10" if len(rows) <= 10 else "tab20")
        fig, ax = plt.subplots(figsize=(8.5, 4.2))
        handles = []
        for i, row in enumerate(rows):
            colour = colours(i % colours.N)
            label = row.config.label
            if row.paper_accuracy is not None:
                ax.axhline(row.paper_accuracy, color=colour, ls="--", lw=1.0, alpha=0.8)
            for run in (*row.runs, *row.unfinished):
                for key, style in (("val_acc", "-"), ("train_acc", ":")):
                    if key == "train_acc" and row.config.paper_measure != "training":
                        continue
                    points = [(h["epoch"], 100 * h[key]) for h in run.history if key in h]
                    if points:
                        xs, ys = zip(*points, strict=True)
                        ax.plot(xs, ys, color=colour, lw=0.8, alpha=0.6, ls=style)
                if run.finished and run.private is not None and run.epochs is not None:
                    ax.scatter([run.epochs], [100 * run.private], color=colour, s=18)
            if not row.runs:
                label += " (pending)" if row.config.run_on_cpu else " (needs a GPU)"
            handles.append(Line2D([], [], color=colour, ls="--", marker="o", label=label))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.set_title(paper.title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        path = folder / f"reproduction-{report.schedule.name}_{paper.key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        out[paper.key] = path
    return out


_MARK = re.compile(
    r"(<!-- reproduction: (?P<key>[\w-]+)(?: (?P<schedule>[\w-]+))? -->\n)(?P<body>.*?)"
    r"(<!-- end reproduction: (?P=key)(?: (?P=schedule))? -->)",
    re.S,
)


def embed_sections(report: Report, figures: dict[str, Path], doc: str | Path) -> None:
    """Fill the ``<!-- reproduction: KEY [SCHEDULE] -->`` … ``<!-- end reproduction: ... -->``
    blocks of ``doc`` that name the report's schedule (or none) with that paper's section of the
    report, so that both show the same numbers. Blocks of other schedules are left alone."""
    doc = Path(doc)
    text = doc.read_text(encoding="utf-8")
    keys = {p.key for p in report.spec.papers}
    name = report.schedule.name
    found = []

    def replace(m: re.Match) -> str:
        if m["key"] not in keys:
            raise DataError(f"no paper '{m['key']}' in the plan", path=doc)
        if (m["schedule"] or report.spec.default_schedule) != name:
            return m.group(0)
        found.append(m["key"])
        body = paper_section(report, m["key"], figures, doc, level=4)
        note = (
            f"*Generated {report.generated} by `ferlab compare` (schedule {name}) from the runs"
            " of the reproduction report; do not edit by hand.*"
        )
        return m.group(1) + "\n".join([note, "", *body]) + "\n" + m.group(5)

    new = _MARK.sub(replace, text)
    if not found:
        raise DataError(
            f"no <!-- reproduction: KEY --> block for schedule {name} to fill", path=doc
        )
    doc.write_text(new, encoding="utf-8")


def write_report(
    run_dirs: Iterable[str | Path],
    spec_path: str | Path,
    report_path: str | Path,
    figures_dir: str | Path | None = None,
    *,
    schedule: str | None = None,
    embed: Sequence[str | Path] = (),
) -> Report:
    """Build the report from run folders and write it (Markdown) with its figures.

    Figures go to ``figures_dir`` (default: ``figures/`` beside the report); ``embed``: docs
    whose ``<!-- reproduction: KEY -->`` blocks get the same paper sections.
    """
    report = build_report(run_dirs, load_spec(spec_path), schedule)
    report_path = Path(report_path)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    figures = draw_figures(report, figures_dir or report_path.parent / "figures")
    text = render_markdown(report, figures, report_path, embed)
    report_path.write_text(text, encoding="utf-8")
    for doc in embed:
        embed_sections(report, figures, doc)
    return report
