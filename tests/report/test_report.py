"""The reproduction report (``ferlab.report``), ``ferlab compare --report`` and the runner
``benchmarks/reproduce.py``, on small plans with fake and real run folders, and the real plan."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ferlab.engine.recipe import apply_overrides, load_recipe, save_recipe
from ferlab.errors import DataError, FerlabError
from ferlab.models import list_models
from ferlab.report import (
    Stat,
    build_report,
    compare_rows,
    conclusions,
    embed_sections,
    gap,
    load_spec,
    mean_sd,
    pace,
    protocol_difference,
    read_run,
    render_markdown,
    write_report,
)
from tests.cli.cli_helpers import run as run_cli
from tests.engine.engine_helpers import synthetic_data, write_synthetic_csv

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "benchmarks" / "reproduction.yaml"

RECIPE = """\
model: {{name: {model}}}
data: {{path: fer_small.csv, normalize: global}}
optim: {{name: adam, lr: {lr}}}
schedule: {{kind: constant}}
train: {{epochs: {epochs}, batch_size: 32}}
eval: {{tta: none, plots: false}}
paper: {{source: "{source}", reported_accuracy: {acc}, reported_on: test set,
        notes: "A short note. A second sentence that the report may leave out of the table."}}
"""

SMALL_PLAN = """\
recipes: recipes
face_network: facenet
default_schedule: full
schedules:
  full:
    description: the recipes' own schedules.
    out: runs
    report: report.md
    overrides: {train.precision: bf16}
    checks:
      - {id: fp32, recipe: alpha, kind: precision, overrides: {train.precision: fp32},
         explains: [a, b]}
      - {id: lr, recipe: alpha, kind: learning_rate, overrides: {optim.lr: 0.1}, explains: [a],
         note: A faster rate.}
  short:
    description: one CPU-minute a run.
    out: runs-short
    report: short.md
    overrides: {train.time_budget: 1m, train.budget_clock: cpu}
    recipe_overrides:
      beta: {optim.lr: 0.004}
papers:
  - key: first
    title: First paper, Table 1
    hardware: one GPU
    stated: Adam at the stated rate; epochs not given.
    configurations:
      - {id: a, label: Alpha row, recipe: alpha, seeds: 2}
      - {id: b, label: Beta row, recipe: beta, seeds: 2, baseline: a, change: a transformer,
         stage: variant}
      - {id: a2, label: Alpha in Table 2, recipe: alpha, paper_accuracy: 51.5,
         reported_on: the other table}
      - {id: x, label: Other data set, recipe: alpha, paper_accuracy: 99.3, trained: false}
  - key: second
    title: Second paper
    configurations:
      - {id: g, label: Gamma row, recipe: gamma, cpu_recipe: gamma_small, note: Hand note.,
         stage: long}
      - {id: h, label: Huge row, recipe: gamma, run_on_cpu: false}
gpu_only:
  - configuration: Gamma at full size
    rows: [h]
    why: Too slow here.
    commands: python benchmarks/reproduce.py --gpu --only second
    expected_time: "estimate: about an hour"
"""


def _write_plan(root: Path) -> Path:
    """A plan of two papers over recipes of small registered models."""
    recipes = root / "recipes"
    recipes.mkdir(parents=True)
    specs = {
        "alpha": ("deep_emotion_nostn", 0.003, "Paper A", 50.0, 3),
        "beta": ("deep_emotion", 0.003, "Paper A", 55.0, 3),
        "gamma": ("deep_emotion_nostn", 0.01, "Paper G", 60.0, 5),
        "gamma_small": ("deep_emotion_nostn", 0.02, "Paper G", "null", 5),
        "facenet": ("deep_emotion_nostn", 0.01, "Face", "null", 2),
    }
    for name, (model, lr, source, acc, epochs) in specs.items():
        text = RECIPE.format(model=model, lr=lr, source=source, acc=acc, epochs=epochs)
        (recipes / f"{name}.yaml").write_text(text)
    write_synthetic_csv(recipes / "fer_small.csv")
    plan = root / "plan.yaml"
    plan.write_text(SMALL_PLAN)
    return plan


def _fake_run(
    folder: Path,
    plan: Path,
    recipe: str,
    seed: int,
    public: float | None,
    private: float | None,
    *,
    schedule: str = "full",
    check: str | None = None,
    overrides: dict | None = None,
    finished: bool = True,
    epochs: float = 3.0,
    stop: str = "completed",
    collapsed: bool = False,
) -> Path:
    """A run folder as ``train`` leaves it: config.yaml, history.csv, metrics.json once done."""
    spec = load_spec(plan)
    sched = spec.schedule(schedule)
    chk = next((c for c in sched.checks if c.id == check and c.recipe == recipe), None)
    r = apply_overrides(spec.load(recipe, sched, chk), {"train.seed": seed, **(overrides or {})})
    folder.mkdir(parents=True)
    save_recipe(r, folder / "config.yaml")
    rows = [f"{e},{10 * e},{0.3 + 0.01 * e}" for e in range(1, int(epochs) + 1)]
    (folder / "history.csv").write_text("epoch,elapsed_s,val_acc\n" + "\n".join(rows) + "\n")
    if finished:
        n = 100
        right = round(n * (private or 0))
        confusion = [[0] * 7 for _ in range(7)]
        if collapsed:
            confusion[3][3], confusion[0][3] = right, n - right  # everything "happy"
        else:
            confusion[0][0], confusion[1][3] = right, n - right
        metrics = {
            "name": r.name,
            "model": r.model.name,
            "params": 40_000,
            "stop_reason": stop,
            "epochs": epochs,
            "train_time_s": 10 * epochs,
            "cpu_time_s": 10 * epochs,
            "val": {"accuracy": public},
            "test": {"accuracy": private, "confusion": confusion},
            "precision": r.train.precision,
            "device": "cpu",
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return _write_plan(tmp_path / "plan")


@pytest.fixture
def fake_runs(plan: Path, tmp_path: Path) -> dict[str, Path]:
    """Runs of every kind the report sorts: counted, check, other schedule, other protocol,
    duplicate seed, unrelated, unfinished."""
    runs = tmp_path / "runs"
    zeta = _fake_run(runs / "zeta", plan, "gamma", 0, 0.5, 0.5)
    config = zeta / "config.yaml"
    config.write_text(config.read_text().replace("name: gamma", "name: zeta"))
    return {
        "a0": _fake_run(runs / "alpha-s0", plan, "alpha", 0, 0.58, 0.60),
        "a1": _fake_run(runs / "alpha-s1", plan, "alpha", 1, 0.62, 0.64),
        "b0": _fake_run(runs / "beta-s0", plan, "beta", 0, 0.69, 0.70),
        "b1": _fake_run(runs / "beta-s1", plan, "beta", 1, 0.70, 0.71),
        "fp32": _fake_run(runs / "alpha-fp32-s0", plan, "alpha", 0, 0.6, 0.61, check="fp32"),
        "short": _fake_run(runs / "alpha-short", plan, "alpha", 0, 0.4, 0.4, schedule="short"),
        "other": _fake_run(
            runs / "alpha-bs", plan, "alpha", 3, 0.9, 0.9, overrides={"train.batch_size": 8}
        ),
        "dup": _fake_run(runs / "alpha-s0-again", plan, "alpha", 0, 0.1, 0.1),
        "open": _fake_run(runs / "alpha-s2", plan, "alpha", 2, None, None, finished=False),
        "zeta": zeta,
    }


def test_mean_and_sample_sd_by_hand():
    two = mean_sd([60.0, 64.0])
    assert (two.n, two.mean) == (2, 62.0)
    assert math.isclose(two.sd, math.sqrt(((60 - 62) ** 2 + (64 - 62) ** 2) / 1))  # n - 1
    three = mean_sd([70.0, 71.0, None, 75.0])
    assert three.n == 3 and math.isclose(three.mean, 72.0)
    assert math.isclose(three.sd, math.sqrt((4 + 1 + 9) / 2))
    assert mean_sd([5.0]) == Stat(1, 5.0, None)
    assert mean_sd([]).n == 0 and mean_sd([]).mean is None


def test_runs_sorted_into_rows_checks_and_reasons(plan, fake_runs):
    report = build_report(fake_runs.values(), load_spec(plan))
    rows = {r.config.id: r for r in report.rows}
    assert list(rows) == ["a", "b", "a2", "x", "g", "h"]
    a = rows["a"]
    assert [r.seed for r in a.runs] == [0, 1]
    private, public = a.stat("private"), a.stat("public")
    assert (private.n, round(private.mean, 6)) == (2, 62.0)
    assert math.isclose(private.sd, math.sqrt(8.0))
    assert math.isclose(public.mean, 60.0)
    assert [r.path.name for r in a.unfinished] == ["alpha-s2"]
    assert rows["a2"].runs == a.runs  # a second table quoting the same configuration
    assert (rows["a2"].paper_accuracy, rows["a2"].reported_on) == (51.5, "the other table")
    fp32, lr = report.checks
    assert [r.path.name for r in fp32.runs] == ["alpha-fp32-s0"] and lr.runs == []
    reasons = {path.name: why for path, why in report.not_counted}
    assert set(reasons) == {"alpha-bs", "alpha-s0-again", "alpha-short"}
    assert "train.batch_size" in reasons["alpha-bs"]
    assert "time budget 1m" in reasons["alpha-short"]
    assert "seed 0 is already counted" in reasons["alpha-s0-again"]
    assert [r.name for r in report.unrelated] == ["zeta"]
    (cmp,) = compare_rows(report)
    assert (cmp.row.config.id, cmp.baseline.config.id) == ("b", "a")
    assert math.isclose(cmp.delta, 70.5 - 62.0)
    assert math.isclose(cmp.se, math.sqrt(8.0 / 2 + 0.5 / 2))
    assert cmp.verdict == "gain beyond the seeds' spread"  # 8.5 > 2 × 2.06
    assert cmp.paper_delta == 5.0


def test_another_schedule_counts_its_own_runs_with_its_recipe_overrides(plan, tmp_path):
    runs = tmp_path / "runs"
    dirs = [
        _fake_run(runs / "b0", plan, "beta", 0, 0.5, 0.5, schedule="short", stop="time_budget"),
        _fake_run(runs / "b-full", plan, "beta", 1, 0.5, 0.5),
    ]
    report = build_report(dirs, load_spec(plan), "short")
    assert [r.path.name for r in report.row("b").runs] == ["b0"]
    assert "optim.lr" in dict((p.name, w) for p, w in report.not_counted)["b-full"]
    text = render_markdown(report, {}, tmp_path / "short.md")
    assert "3 epochs or 1m of CPU time; batch 32; Adam, lr 0.004" in text  # the schedule's recipe
    g = gap(report, report.row("b"))
    # a departure from the paper's protocol that no run has measured explains nothing
    assert g.verdict == "not comparable"
    assert "stopped by their time budget after 3.0 of 3" in g.findings[0]


def test_gap_to_the_paper_with_run_backed_findings(plan, tmp_path):
    runs = tmp_path / "runs"
    spec = load_spec(plan)
    a0 = _fake_run(runs / "a0", plan, "alpha", 0, 0.4, 0.40)
    a1 = _fake_run(runs / "a1", plan, "alpha", 1, 0.4, 0.42)
    report = build_report([a0, a1], spec)
    g = gap(report, report.row("a"))
    assert math.isclose(g.diff, 41.0 - 50.0) and g.within_spread is False
    assert g.verdict == "not explained"
    assert any("precision check" in f and "pending" in f for f in g.findings)
    # how far an fp32 check moves accuracy, and where: none of these explains the gap. The
    # noise floor is 2 points, or twice the seeds' s.d. (1.41) where larger
    for private, ending in [
        (0.41, "(+0.00 points, n=1; within the seeds' spread); it does not move accuracy"),
        (
            0.43,
            "(+2.00 points, n=1; within the seeds' spread); it moves accuracy towards the paper"
            " by less than the 2.83-point threshold for an explanation",
        ),
        (
            0.35,
            "(-6.00 points, n=1; outside the seeds' spread); it moves accuracy away from the paper",
        ),
    ]:
        fp32 = _fake_run(runs / f"fp32-{private}", plan, "alpha", 0, 0.4, private, check="fp32")
        g = gap(build_report([a0, a1, fp32], spec), report.row("a"))
        assert g.verdict == "not explained"
        assert g.findings[0].endswith(ending)
    # a learning-rate check that reaches the paper explains it
    lr = _fake_run(runs / "lr", plan, "alpha", 0, 0.5, 0.49, check="lr")
    report = build_report([a0, a1, fp32, lr], spec)
    g = gap(report, report.row("a"))
    assert g.verdict == "explained"
    assert any("brings the row within 2 points" in f for f in g.findings)
    # on another recipe of the family a check is indirect evidence: at most "partly"
    b0 = _fake_run(runs / "b-low", plan, "beta", 0, 0.4, 0.40)
    report = build_report(
        [a0, a1, lr, b0, _fake_run(runs / "f", plan, "alpha", 0, 0, 0.48, check="fp32")], spec
    )
    g = gap(report, report.row("b"))
    assert g.verdict == "partly explained"
    assert "on `alpha` (the same family): 48.00 % against 41.00 % (+7.00 points" in g.findings[0]
    assert g.findings[0].endswith("towards the paper (to 7.0 points below it)")  # paper: 55.0
    # within 2 points needs no explanation; rows without runs say why
    close = _fake_run(runs / "b0", plan, "beta", 0, 0.5, 0.56)
    report = build_report([close], spec)
    assert gap(report, report.row("b")).verdict == "within 2 points"
    assert gap(report, report.row("x")).verdict == "no run possible"
    assert gap(report, report.row("h")).verdict == "needs a GPU"
    assert gap(report, report.row("g")).verdict == "pending"


def test_collapse_is_found_from_the_confusion_matrix(plan, tmp_path):
    run = _fake_run(tmp_path / "a0", plan, "alpha", 0, 0.25, 0.25, collapsed=True)
    assert read_run(run).majority == 1.0
    report = build_report([run], load_spec(plan))
    assert any("collapsed" in f for f in gap(report, report.row("a")).findings)
    assert any(c.startswith("Collapsed to one class") for c in conclusions(report))


def test_conclusions_come_from_the_runs_given(plan, tmp_path):
    spec = load_spec(plan)
    (none,) = conclusions(build_report([], spec))
    assert none.startswith("No row has a finished run yet (0 run(s) in progress)")
    runs = tmp_path / "runs"
    dirs = [
        _fake_run(runs / "a0", plan, "alpha", 0, 0.5, 0.50, epochs=7, stop="early_stopping"),
        _fake_run(runs / "a1", plan, "alpha", 1, 0.5, 0.52, epochs=9, stop="early_stopping"),
        _fake_run(runs / "b0", plan, "beta", 0, 0.5, 0.58, epochs=9),
    ]
    text = "\n".join(conclusions(build_report(dirs, spec)))
    assert "3 of 4 CPU rows have finished runs: 3 run(s) (1 completed, 2 early stopping" in text
    assert "7.0–9.0 epochs, mean 8.3" in text
    assert "Within 2 points of the paper: 2 row(s)" in text  # a: 51 vs 50, a2: 51 vs 51.5
    assert "1 not explained (largest: Beta row, +3.00 points)" in text  # 58 vs 55
    assert "changed PrivateTest by +7.00 points: one seed: not conclusive" in text
    assert "the paper reports +5.00" in text
    other = _fake_run(runs / "b1", plan, "beta", 1, 0.5, 0.30, epochs=2)
    text = "\n".join(conclusions(build_report([*dirs, other], spec)))
    assert "2.0–9.0 epochs" in text and "+7.00" not in text


def test_markdown_rows_pending_gpu_and_how_to_run(plan, fake_runs, tmp_path):
    report = build_report(fake_runs.values(), load_spec(plan))
    text = render_markdown(report, {}, tmp_path / "report.md")
    lines = [line for line in text.splitlines() if "<br>`" in line]
    assert [line.split("<br>")[0][2:] for line in lines] == [
        "Alpha row",
        "Beta row",
        "Alpha in Table 2",
        "Other data set",
        "Gamma row",
        "Huge row",
    ]
    cells = [c.strip() for c in lines[0].strip("|").split(" | ")]
    # the paper's protocol only as the plan quotes it; ours, from the recipe, beside the runs
    assert cells[1] == "50" and cells[2] == "reported on: test set"
    assert "Protocol as stated: Adam at the stated rate; epochs not given. Ours:" in text
    assert cells[3] == "62.00 ± 2.83 (n=2); 1 more seed(s) unfinished"
    assert cells[4] == "+12.00" and cells[5] == "no"
    assert cells[8].startswith("3 epochs; batch 32; Adam, lr 0.003; constant lr. Trained: 3, 3")
    assert "(completed); bf16" in cells[8]
    assert "| pending: not started, 1 seed(s) × 5 epochs (no measured epoch time" in lines[4]
    assert "Protocol as stated: not given in the plan." in text  # the second paper's
    assert "needs a GPU (estimate: about an hour)" in lines[5]
    assert "not reproduced: no run possible" in lines[3]
    assert "python benchmarks/reproduce.py --gpu --only second" in text
    assert (
        "Counted finished runs: 5 (4 of the tables' rows, 1 side run(s); 4 bf16, 1 fp32; 5 run(s)"
        " without a machine record)." in text
    )
    assert "2 run(s) unfinished." not in text and "1 run(s) unfinished." in text
    assert "3 run folder(s) not counted" in text
    assert (
        "Precision: bf16 autocast in every run of the tables; side runs in another precision"
        " check it: `alpha` in fp32 for First paper, Table 1 (61.00 %, n=1); no precision check"
        " for Second paper." in text
    )
    assert "OMP_NUM_THREADS=1 nohup python benchmarks/reproduce.py --schedule full" in text
    assert "python benchmarks/reproduce.py --schedule full --park" in text
    assert "| precision check | `alpha` | train.precision: fp32 | 61.00 (n=1) |" in text
    # a check's note is printed beside it, a dash where the plan gives none
    assert "| a, b | — |" in text and "| a | A faster rate. |" in text


def test_side_check_with_seeds_still_planned_says_so(plan, fake_runs, tmp_path):
    """A check whose plan asks more seeds than have finished shows the ones still to train."""
    fp32 = "overrides: {train.precision: fp32},"
    plan.write_text(plan.read_text().replace(fp32, fp32 + " seeds: 2,"))
    report = build_report(fake_runs.values(), load_spec(plan))
    text = render_markdown(report, {}, tmp_path / "report.md")
    row = next(line for line in text.splitlines() if line.startswith("| precision check |"))
    assert "| 61.00 (n=1); 1 more seed(s) planned (estimate: " in row
    # its own fp32 run gives the pace, so the estimate needs no caveat
    assert "timed in" not in row


def test_a_family_trained_in_another_precision_has_its_own_precision_check(plan, tmp_path):
    """A schedule may train one family in fp32 (its recipe_overrides) and check it in bf16:
    the protocol names each precision with its papers, and a bf16 run of that recipe counts as
    the check, not as a row."""
    text = plan.read_text().replace(
        "    checks:\n",
        "    recipe_overrides: {gamma_small: {train.precision: fp32}}\n    checks:\n"
        "      - {id: bf16, recipe: gamma_small, kind: precision,"
        " overrides: {train.precision: bf16}, explains: [g]}\n",
        1,
    )
    plan.write_text(text)
    runs = tmp_path / "runs"
    row = _fake_run(runs / "gamma_small-s0", plan, "gamma_small", 0, 0.5, 0.56)
    check = _fake_run(runs / "gamma_small-bf16-s0", plan, "gamma_small", 0, 0.5, 0.52, check="bf16")
    assert read_run(row).precision == "fp32" and read_run(check).precision == "bf16"
    alpha = _fake_run(runs / "alpha-s0", plan, "alpha", 0, 0.5, 0.5)
    report = build_report([row, check, alpha], load_spec(plan))
    assert [r.path.name for r in report.row("g").runs] == ["gamma_small-s0"]
    (result,) = [c for c in report.checks if c.check.id == "bf16"]
    assert [r.path.name for r in result.runs] == ["gamma_small-bf16-s0"]
    text = render_markdown(report, {}, tmp_path / "report.md")
    assert (
        "Precision: bf16 autocast in the rows of First paper, Table 1; fp32 in the rows of Second"
        " paper; side runs in another precision check it: `gamma_small` in bf16 for Second"
        " paper (52.00 %, n=1); `alpha` in fp32 for First paper, Table 1 (not started)." in text
    )
    # the fp32 check has only bf16 runs of its recipe to estimate from, and says so
    fp32 = next(x for x in text.splitlines() if x.startswith("| precision check | `alpha`"))
    assert (
        "per epoch measured in the runs of this report; timed in bf16, this trains in fp32)" in fp32
    )
    assert any(
        c.startswith(
            "Precision check on `gamma_small` (train.precision bf16): 52.00 % against"
            " 56.00 % (-4.00 points), no seed spread to compare with (one seed)"
        )
        for c in conclusions(report)
    )


def test_embedded_sections_show_the_same_numbers(plan, fake_runs, tmp_path):
    report = build_report(fake_runs.values(), load_spec(plan))
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Doc\n\nbefore\n<!-- reproduction: first -->\nold\n"
        "<!-- end reproduction: first -->\nafter\n"
    )
    embed_sections(report, {}, doc)
    text = doc.read_text()
    assert (
        "\nold\n" not in text and text.startswith("# Doc\n\nbefore\n") and text.endswith("after\n")
    )
    assert "#### First paper, Table 1" in text and "62.00 ± 2.83 (n=2)" in text
    doc.write_text("no markers")
    with pytest.raises(DataError, match="no <!-- reproduction: KEY --> block for schedule full"):
        embed_sections(report, {}, doc)


@pytest.mark.slow
def test_write_report_draws_one_figure_per_paper(plan, fake_runs, tmp_path):
    out = tmp_path / "docs" / "reproduction.md"
    write_report(fake_runs.values(), plan, out)
    figures = sorted((out.parent / "figures").glob("*.png"))
    assert [f.name for f in figures] == [
        "reproduction-full_first.png",
        "reproduction-full_second.png",
    ]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    assert "](figures/reproduction-full_first.png)" in out.read_text()


def test_protocol_difference_ignores_seed_budget_and_paths(plan):
    recipe = load_recipe(plan.parent / "recipes" / "alpha.yaml")
    same = apply_overrides(
        recipe,
        {"train.seed": 7, "train.time_budget": "3m", "train.num_threads": 1, "data.path": "/x"},
    )
    assert protocol_difference(same, recipe) is None
    other = apply_overrides(recipe, {"train.batch_size": 64})
    assert protocol_difference(other, recipe) == "train.batch_size is 64, the recipe's is 32"


def test_bad_plan_and_run_folders_are_named(tmp_path, plan):
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL_PLAN.replace("baseline: a,", "baseline: nowhere,"))
    with pytest.raises(DataError, match="unknown baseline 'nowhere'"):
        load_spec(bad)
    bad.write_text(SMALL_PLAN.replace("seeds: 2}", "seedz: 2}", 1))
    with pytest.raises(DataError, match="unknown key 'seedz'"):
        load_spec(bad)
    bad.write_text(SMALL_PLAN.replace("explains: [a]", "explains: [zz]"))
    with pytest.raises(DataError, match="unknown configuration 'zz'"):
        load_spec(bad)
    bad.write_text(SMALL_PLAN.replace("stage: long", "stage: later"))
    with pytest.raises(DataError, match="stage must be one of"):
        load_spec(bad)
    with pytest.raises(DataError, match="no schedule 'nope'"):
        load_spec(plan).schedule("nope")
    with pytest.raises(DataError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(DataError, match="no config.yaml"):
        read_run(tmp_path)
    broken = _fake_run(tmp_path / "broken", plan, "alpha", 0, 0.5, 0.5)
    (broken / "metrics.json").write_text("{not json")
    ((path, why),) = build_report([broken], load_spec(plan)).not_counted
    assert path == broken and "not valid JSON" in why


def test_compare_report_errors_are_one_line(tmp_path, capsys, plan):
    run = _fake_run(tmp_path / "alpha-s0", plan, "alpha", 0, 0.5, 0.5)
    missing = tmp_path / "nope.yaml"
    args = ["compare", str(run), "--report", str(tmp_path / "r.md"), "--plan", str(missing)]
    code, _, stderr = run_cli(args, capsys)
    assert code == 2 and "reproduction plan not found" in stderr and "Traceback" not in stderr


# ---------------------------------------------------------------------------- the real plan
def test_real_plan_rows_follow_the_papers_tables():
    spec = load_spec(PLAN)
    assert [p.key for p in spec.papers] == ["jahromi", "luo", "deep_emotion", "caciolai", "meen"]
    assert [len(p.configurations) for p in spec.papers] == [8, 2, 3, 5, 9]
    assert set(spec.schedules) == {"paper", "5m"} and spec.default_schedule == "paper"
    paper = spec.schedule("paper")
    assert paper.budget == (None, "wall") and paper.precision == "bf16"
    assert spec.schedule("5m").budget == ("5m", "cpu")
    # Two seeds where the paper claims a difference of under 2 points.
    for c in spec.configurations():
        if c.paper in ("luo", "caciolai", "meen"):
            assert c.seeds == 2, c.id
    rows = {c.id: c for c in spec.configurations()}
    assert rows["huo_deep_emotion"].paper_accuracy == 61.385
    assert rows["minaee_ferg"].paper_accuracy == 99.3 and not rows["minaee_ferg"].trained
    assert rows["huo_deep_emotion"].paper_measure == "training"  # "Training Accuracy 61.385%"
    # each paper's protocol in its own words, and the hardware it names
    assert all(p.stated for p in spec.papers)
    assert "GTX 860M" in next(p.hardware for p in spec.papers if p.key == "jahromi")
    # a precision check per architecture family that trains on the CPU, in the other precision
    # than its rows: Meen et al.'s family trains in fp32 (in bf16 it lay outside the seeds'
    # spread), the others in bf16
    checks = [c for c in paper.checks if c.kind == "precision"]
    families = {"jahromi_medium", "caciolai_deep_emotion", "meen_small_vgg19", "luo_cnn"}
    assert families <= {c.recipe for c in checks}
    for c in checks:
        assert c.overrides["train.precision"] != spec.load(c.recipe, paper).train.precision
    precision = {c.paper: spec.load(c.cpu_recipe, paper).train.precision for c in rows.values()}
    assert precision["meen"] == "fp32" and precision["jahromi"] == precision["luo"] == "bf16"
    assert [c.stage for c in paper.checks if c.recipe == "luo_cnn"] == ["long"]
    report = build_report([], spec)
    assert all(row.paper_accuracy is not None for row in report.rows)
    assert all(row.problem == "" for row in report.rows)
    text = render_markdown(report, {}, ROOT / "docs" / "reproduction.md")
    assert "No row has a finished run yet" in text
    # every pending row is timed from the first campaign's committed runs (paper.timings)
    assert "no measured epoch time" not in text
    assert "epochs (estimate: at most" in text and "; early stopping may end it sooner)" in text
    for c in spec.configurations():
        assert f"| {c.label}<br>`{c.recipe}` |" in text


def test_real_recipes_state_what_the_papers_state():
    spec = load_spec(PLAN)
    for name in (
        "caciolai_deep_emotion",
        "caciolai_deep_emotion_nostn",
        "caciolai_deep_emotion_msa",
    ):
        recipe = spec.load(name)
        assert recipe.data.labels == "ferplus-majority", name  # "I have employed [FER+]"
        assert "FER2013" not in recipe.paper.reported_on
        assert "FER+ annotations" in recipe.paper.reported_on
        # the first campaign's runs stay countable under the 5m schedule
        assert spec.load(name, spec.schedule("5m")).data.labels == "fer2013"
    for name in ("jahromi_deep", "jahromi_deep_aug"):
        recipe = spec.load(name)
        assert recipe.optim.weight_decay > 0 and recipe.optim.weight_decay_on == ["head."]


def test_checks_print_their_change_as_dotted_keys_and_yaml_values():
    checks = {(c.recipe, c.id): c for s in load_spec(PLAN).schedules.values() for c in s.checks}
    assert checks["jahromi_medium", "keras-init"].change() == "model.kwargs.keras_init true"
    labels = checks["caciolai_deep_emotion", "fer2013"]
    assert labels.change(": ") == "data.labels: fer2013, data.ferplus: null"


def test_every_recipe_of_the_plan_loads_and_names_a_registered_model():
    spec = load_spec(PLAN)
    names = {n for c in spec.configurations() for n in (c.recipe, c.cpu_recipe)}
    names |= {spec.face_network, spec.gpu_face_network}
    models = set(list_models())
    loaded = [
        (name, spec.load(name, sched))
        for name in sorted(names)
        for sched in spec.schedules.values()
    ]
    loaded += [
        (check.folder(0), spec.load(check.recipe, sched, check))
        for sched in spec.schedules.values()
        for check in sched.checks
    ]
    for name, recipe in loaded:
        assert recipe.model.name in models, name
        # the reader's rule, checked before hours of training: FER2013 labels come without a
        # FER+ vote file, every FER+ label mode with one
        assert (recipe.data.labels == "fer2013") == (recipe.data.ferplus is None), name
    for c in spec.configurations():
        if c.cpu_recipe != c.recipe:  # a smaller variant of the same network and protocol
            paper, cpu = spec.load(c.recipe), spec.load(c.cpu_recipe)
            assert cpu.model.name == paper.model.name
            assert cpu.model.kwargs.get("width", 1) < 1
            assert protocol_difference(cpu, paper).startswith("model.kwargs")


# ------------------------------------------------------------------------------- the runner
def _runner():
    path = ROOT / "benchmarks" / "reproduce.py"
    module_spec = importlib.util.spec_from_file_location("reproduce", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["reproduce"] = module  # dataclasses look their module up while it executes
    module_spec.loader.exec_module(module)
    return module


def test_dry_run_lists_every_configuration(tmp_path, capsys):
    reproduce = _runner()
    assert reproduce.main(["--dry-run", "--out", str(tmp_path / "runs")]) == 0
    out = capsys.readouterr().err
    spec = load_spec(PLAN)
    for c in spec.configurations():
        if not c.trained:
            continue
        if not c.run_on_cpu:
            assert f"{c.recipe}-s0" not in out
            continue
        assert f"{c.cpu_recipe}-s0" in out and c.label in out
        if c.seeds == 2:
            assert f"{c.cpu_recipe}-s1" in out
    assert f"{spec.face_network}-s0" in out and "jahromi_medium-fp32-s0" in out
    for g in spec.gpu_only:
        assert g.configuration in out
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing
    # single runs by folder name; the face network comes along with a run that needs it
    reproduce.main(["--dry-run", "--out", str(tmp_path / "runs"), "--only", "meen_small_vgg19-s1"])
    reproduce.main(
        ["--dry-run", "--out", str(tmp_path / "runs"), "--only", "meen_small_m1_average-s0"]
    )
    vgg, m1 = capsys.readouterr().err.split("schedule paper")[1:]
    assert "meen_small_vgg19-s1" in vgg and "-s0" not in vgg
    assert "meen_small_face-s0" in m1 and "meen_small_m1_average-s0" in m1 and "-s1" not in m1


def test_runner_order_states_only_seeds_and_gpu(plan, tmp_path):
    reproduce = _runner()
    spec = load_spec(plan)
    sched, out = spec.schedule(), tmp_path / "runs"
    runs = reproduce.plan_runs(spec, sched, out, [], None)
    # seed 0 of the required rows, the checks, seed 0 of the variants, other seeds, long rows
    assert [r.out.name for r in runs] == [
        "alpha-s0",
        "alpha-fp32-s0",
        "alpha-lr-s0",
        "beta-s0",
        "alpha-s1",
        "beta-s1",
        "gamma_small-s0",
    ]
    assert runs[0].rows == ["Alpha row", "Alpha in Table 2"]
    _fake_run(out / "alpha-s0", plan, "alpha", 0, 0.5, 0.5)
    (out / "alpha-fp32-s0").mkdir()
    (out / "alpha-fp32-s0" / "last.pt").write_bytes(b"")
    assert [r.state for r in runs[:3]] == ["done", "resume", "new"]
    (out / "alpha-lr-s0").mkdir()
    (out / "alpha-lr-s0" / "last.pt").write_bytes(b"")
    (out / "alpha-fp32-s0" / "last.pt").unlink()
    again = reproduce.plan_runs(spec, sched, out, [], None)
    assert [r.out.name for r in again[1:3]] == ["alpha-lr-s0", "alpha-fp32-s0"]  # started first
    (out / "beta-s0").mkdir()
    (out / "beta-s0" / "config.yaml").write_text("")  # began, but its last.pt is gone
    assert next(r for r in again if r.out.name == "beta-s0").state == "restart"
    picked = reproduce.plan_runs(spec, sched, out, ["beta-s1", "alpha-lr-s0"], None)
    assert [r.out.name for r in picked] == ["alpha-lr-s0", "beta-s1"]  # in training order
    only = reproduce.plan_runs(spec, sched, out, ["second"], 3)
    assert [r.out.name for r in only] == ["gamma_small-s0", "gamma_small-s1", "gamma_small-s2"]
    gpu = reproduce.plan_runs(spec, sched, out, [], None, gpu=True)
    assert [r.out.name for r in gpu] == ["gamma-s0"]
    with pytest.raises(FerlabError, match="--only nothing"):
        reproduce.plan_runs(spec, sched, out, ["nothing"], None)


def test_runner_estimates_from_measured_epoch_times(plan, tmp_path):
    reproduce = _runner()
    spec = load_spec(plan)
    timed = tmp_path / "timed"
    _fake_run(timed / "alpha-s0", plan, "alpha", 0, 0.5, 0.5, epochs=2)  # 10 s per epoch
    sched = spec.schedule()
    object.__setattr__(sched, "timings", timed)
    runs = reproduce.plan_runs(spec, sched, tmp_path / "runs", ["a"], 1)
    assert [(r.out.name, r.estimate_s) for r in runs][:1] == [("alpha-s0", 30.0)]
    # the fp32 check has only the bf16 pace to go by, and says so; once an fp32 run of the
    # recipe is timed (20 s per epoch), it goes by that
    fp32 = next(r for r in runs if r.check and r.check.id == "fp32")
    assert (fp32.estimate_s, fp32.timed_in) == (30.0, "bf16")
    timed_fp32 = _fake_run(timed / "alpha-fp32-s0", plan, "alpha", 0, 0.5, 0.5, check="fp32")
    (timed_fp32 / "history.csv").write_text("epoch,elapsed_s,val_acc\n1,20,0.3\n2,40,0.31\n")
    runs = reproduce.plan_runs(spec, sched, tmp_path / "runs", ["a"], 1)
    fp32 = next(r for r in runs if r.check and r.check.id == "fp32")
    assert (fp32.estimate_s, fp32.timed_in) == (60.0, "")
    assert next(r for r in runs if r.out.name == "alpha-s0").estimate_s == 30.0


def test_pace_prefers_the_recipes_own_precision():
    timings = {("a", "bf16"): 10.0, ("a", "fp32"): 20.0, ("b", "bf16"): 5.0}
    assert pace(timings, "a", "fp32") == (20.0, "fp32")
    assert pace(timings, "b", "fp32") == (5.0, "bf16")  # timed otherwise: the caller says so
    assert pace(timings, "b", "auto") == (5.0, "auto")  # auto trained in what its runs did
    assert pace(timings, "c", "bf16") is None


def test_runner_skips_a_run_finished_meanwhile(plan, tmp_path, monkeypatch):
    reproduce = _runner()
    spec, out = load_spec(plan), tmp_path / "runs"
    sched = spec.schedule()
    runs = reproduce.plan_runs(spec, sched, out, ["first"], 1)
    trained = []

    def fake_train(run, *args):
        trained.append(run.out.name)
        if run.out.name == "alpha-s0":  # meanwhile, another runner finishes the checks
            for name, check in (("alpha-fp32-s0", "fp32"), ("alpha-lr-s0", "lr")):
                _fake_run(out / name, plan, "alpha", 0, 0.5, 0.5, check=check)
        return "completed"

    monkeypatch.setattr(reproduce, "train_run", fake_train)
    args = reproduce.argparse.Namespace(no_report=True, threads=1, gpu=False)
    console = reproduce.Console(stderr=True)
    assert reproduce._campaign(args, spec, sched, out, runs, console) == 0
    assert trained == ["alpha-s0", "beta-s0"]


def test_runner_goes_on_after_a_broken_run(plan, tmp_path, monkeypatch, capsys):
    reproduce = _runner()
    spec, out = load_spec(plan), tmp_path / "runs"
    sched = spec.schedule()
    runs = reproduce.plan_runs(spec, sched, out, ["a"], 1)
    trained = []

    def fake_train(run, *args):
        trained.append(run.out.name)
        assert (run.out / reproduce.LOCK).read_text() == str(os.getpid())
        if run.out.name == "alpha-s0":
            (run.out / "machine.json").write_text("{}")  # what a run writes before it starts
            raise RuntimeError("out of memory")
        return "completed"

    monkeypatch.setattr(reproduce, "train_run", fake_train)
    args = reproduce.argparse.Namespace(no_report=True, threads=1, gpu=False)
    console = reproduce.Console(stderr=True)
    assert reproduce._campaign(args, spec, sched, out, runs, console) == 1
    assert trained == ["alpha-s0", "alpha-fp32-s0", "alpha-lr-s0"]
    assert "not trained: alpha-s0: RuntimeError: out of memory" in capsys.readouterr().err
    # the run that never started leaves no folder for the report to refuse; no lock is left
    assert not (out / "alpha-s0").exists()
    assert not list(out.glob(f"*/{reproduce.LOCK}"))


def test_two_runners_never_train_one_run(plan, tmp_path, monkeypatch, capsys):
    reproduce = _runner()
    spec, out = load_spec(plan), tmp_path / "runs"
    sched = spec.schedule()
    runs = reproduce.plan_runs(spec, sched, out, ["a"], 1)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    try:
        (out / "alpha-s0").mkdir(parents=True)
        (out / "alpha-s0" / reproduce.LOCK).write_text(str(other.pid))  # a live runner's
        (out / "alpha-lr-s0").mkdir(parents=True)
        (out / "alpha-lr-s0" / reproduce.LOCK).write_text(gone)  # a runner that has ended
        trained = []
        monkeypatch.setattr(reproduce, "train_run", lambda run, *a: trained.append(run.out.name))
        args = reproduce.argparse.Namespace(no_report=True, threads=1, gpu=False)
        reproduce._campaign(args, spec, sched, out, runs, reproduce.Console(stderr=True))
    finally:
        other.kill()
        other.wait()
    assert trained == ["alpha-fp32-s0", "alpha-lr-s0"]  # the stale lock is taken over
    err = capsys.readouterr().err
    assert f"skipped alpha-s0: another runner (process {other.pid}) is training it" in err
    assert (out / "alpha-s0" / reproduce.LOCK).read_text() == str(other.pid)  # not its to free
    assert not (out / "alpha-lr-s0" / reproduce.LOCK).exists()


def test_parked_checkpoints_come_back_in_a_fresh_checkout(plan, tmp_path, capsys):
    """``--park`` keeps in one archive what git does not: the resuming runs' ``last.pt`` and the
    face network's ``best.pt`` while a run that needs it is unfinished; a fresh checkout gets
    them back, and nothing the archive holds overwrites a file that is there."""
    reproduce = _runner()
    out, archive = tmp_path / "runs", tmp_path / "keep" / "in-progress.tar.xz"
    face = reproduce.PlannedRun("facenet", 0, out / "facenet-s0", [reproduce.FACE_ROW])
    started = reproduce.PlannedRun("alpha", 0, out / "alpha-s0", ["A"], needs_face=True)
    waiting = reproduce.PlannedRun("alpha", 1, out / "alpha-s1", ["A"], needs_face=True)
    for path, data in ((face.out / "metrics.json", b"{}"), (face.out / "best.pt", b"face")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    started.out.mkdir()
    (started.out / "last.pt").write_bytes(b"epoch 7")
    assert [r.state for r in (face, started, waiting)] == ["done", "resume", "new"]
    runs = [face, started, waiting]
    packed = reproduce.park(runs, out, archive)
    assert packed == [started.out / "last.pt", face.out / "best.pt"]
    # the face run, finished before runs recorded it, gains its weights' digest
    face_metrics = json.loads((face.out / "metrics.json").read_text())
    assert face_metrics == {"best_sha256": hashlib.sha256(b"face").hexdigest()}

    for f in packed:  # a fresh checkout: the ignored checkpoints are gone
        f.unlink()
    (out / "alpha-s0" / "last.pt").write_bytes(b"epoch 9")  # except one, newer than the archive
    assert reproduce.unpark(out, archive) == ["facenet-s0/best.pt"]
    assert (face.out / "best.pt").read_bytes() == b"face"
    assert (started.out / "last.pt").read_bytes() == b"epoch 9"
    (started.out / "last.pt").unlink()
    assert reproduce.unpark(out, archive) == ["alpha-s0/last.pt"]
    assert started.state == "resume" and (started.out / "last.pt").read_bytes() == b"epoch 7"

    # the command: restores before planning, parks on --park
    args = ["--plan", str(plan), "--out", str(out), "--archive", str(archive), "--only", "a"]
    capsys.readouterr()
    assert reproduce.main([*args[:-1], "b", "--park"]) == 0  # the whole plan, whatever --only
    assert "parked alpha-s0/last.pt (0.0 MB)" in capsys.readouterr().err
    (started.out / "last.pt").unlink()
    assert reproduce.main([*args, "--dry-run"]) == 0
    assert "restored alpha-s0/last.pt from" in capsys.readouterr().err
    (started.out / "last.pt").unlink()
    with tarfile.open(archive, "w"):  # an empty archive: nothing resumes
        pass
    assert reproduce.main([*args, "--park"]) == 0
    assert "nothing: removed" in capsys.readouterr().err and not archive.exists()

    with tarfile.open(archive, "w") as tar:  # a member that would land outside the folder
        tar.add(face.out / "best.pt", arcname="../outside/best.pt")
    with pytest.raises(FerlabError, match="unexpected member '../outside/best.pt'"):
        reproduce.unpark(out, archive)
    assert not (tmp_path / "outside").exists()


def test_a_run_early_stopping_ended_before_a_later_minimum_is_extended(plan, tmp_path, monkeypatch):
    """A recipe that gains ``train.min_epochs`` after its run stopped early: the report does not
    count the run (it says why), the runner resumes it with the minimum; a run that went past
    the minimum is the same run whether or not it had one."""
    import ferlab.engine.trainer as trainer_mod

    recipe = plan.parent / "recipes" / "alpha.yaml"
    text = recipe.read_text()
    recipe.write_text(text.replace("batch_size: 32}", "batch_size: 32, min_epochs: 3}"))
    spec, out = load_spec(plan), tmp_path / "runs"
    short = _fake_run(out / "alpha-s0", plan, "alpha", 0, 0.5, 0.5, epochs=2, stop="early_stopping")
    long = _fake_run(out / "alpha-s1", plan, "alpha", 1, 0.5, 0.5, stop="early_stopping")
    for run in (short, long):  # written before the recipe had the minimum
        config = run / "config.yaml"
        config.write_text(config.read_text().replace("min_epochs: 3", "min_epochs: null"))
    report = build_report([short, long], spec)
    assert [r.path.name for r in report.row("a").runs] == ["alpha-s1"]
    (why,) = [w for p, w in report.not_counted if p == short]
    assert "early stopping ended it after 2 epochs, before the recipe's minimum of 3" in why

    reproduce = _runner()
    sched = spec.schedule()
    runs = {r.out.name: r for r in reproduce.plan_runs(spec, sched, out, ["a"], 2)}
    assert (runs["alpha-s0"].state, runs["alpha-s1"].state) == ("extend", "done")
    resumed = []
    monkeypatch.setattr(
        trainer_mod, "resume_recipe", lambda folder: load_recipe(folder / "config.yaml")
    )
    monkeypatch.setattr(
        trainer_mod,
        "train",
        lambda r, **kw: resumed.append((r, kw["resume"])) or SimpleNamespace(stop_reason="x"),
    )
    console = reproduce.Console(stderr=True)
    reproduce.train_run(runs["alpha-s0"], spec, sched, 2, None, False, console)
    ((again, resume),) = resumed
    assert resume and again.train.min_epochs == 3 and again.train.seed == 0
    assert again.train.num_threads == 2  # a freed core can speed up a resumed run


@pytest.mark.slow
def test_runner_trains_resumes_nothing_twice_and_writes_the_report(plan, tmp_path, capsys):
    reproduce = _runner()
    out, report = tmp_path / "runs", tmp_path / "report.md"
    args = ["--plan", str(plan), "--out", str(out), "--report", str(report), "--threads", "1"]
    args += ["--schedule", "short"]
    assert reproduce.main([*args, "--only", "a", "--seeds", "1"]) == 0
    run = out / "alpha-s0"
    assert (run / "metrics.json").is_file()
    sessions = json.loads((run / "machine.json").read_text())["sessions"]
    assert len(sessions) == 1 and sessions[0]["threads"] == 1
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["time_budget"] == "1m" and config["train"]["seed"] == 0
    text = report.read_text()
    assert "| Alpha row<br>`alpha` |" in text and "(n=1)" in text
    capsys.readouterr()
    assert reproduce.main([*args, "--only", "a", "--seeds", "1"]) == 0  # nothing left to train
    assert "1 done" in capsys.readouterr().err
    assert len(json.loads((run / "machine.json").read_text())["sessions"]) == 1


@pytest.mark.slow
def test_compare_report_on_real_runs(plan, tmp_path, capsys):
    from ferlab.engine import train

    spec = load_spec(plan)
    dirs = []
    for seed in (0, 1):
        r = apply_overrides(
            spec.load("alpha", spec.schedule()), {"train.seed": seed, "train.num_threads": 1}
        )
        out = tmp_path / "runs" / f"alpha-s{seed}"
        train(r, data=synthetic_data(), out_dir=out)
        dirs.append(out)
    report_path = tmp_path / "report.md"
    args = ["compare", *map(str, dirs), "--report", str(report_path), "--plan", str(plan)]
    code, stdout, stderr = run_cli(args, capsys)
    assert code == 0, stderr
    assert stdout.startswith("| run | model | params |")  # the plain table still comes first
    report = build_report(dirs, spec)
    metrics = [json.loads((d / "metrics.json").read_text()) for d in dirs]
    expected = sum(100 * m["test"]["accuracy"] for m in metrics) / 2
    assert math.isclose(report.row("a").stat().mean, expected)
    assert f"{expected:.2f}" in report_path.read_text()


def test_seeds_with_the_same_accuracy_are_told_apart(plan, tmp_path):
    dirs = [_fake_run(tmp_path / f"a{s}", plan, "alpha", s, 0.5, 0.5) for s in (0, 1)]
    for d, diagonal in zip(dirs, ([3, 1], [2, 2]), strict=True):
        metrics = json.loads((d / "metrics.json").read_text())
        metrics["val"]["confusion"] = [[diagonal[0], 2], [0, diagonal[1]]]
        (d / "metrics.json").write_text(json.dumps(metrics))
    text = "\n".join(conclusions(build_report(dirs, load_spec(plan))))
    assert "Seeds 0 and 1 of Alpha row have the same PublicTest accuracy (50.00 %, 4 images" in text
    assert "(3, 1 against 2, 2 right), so the equal totals are a coincidence" in text
    section = render_markdown(build_report(dirs, load_spec(plan)), {}, tmp_path / "r.md")
    # told in its paper's section (embedded in other docs too) and in the conclusions
    assert section.count("Seeds 0 and 1 of Alpha row have the same PublicTest") == 2


def test_a_label_set_other_than_the_papers_is_a_finding(plan, tmp_path):
    run = _fake_run(tmp_path / "a0", plan, "alpha", 0, 0.3, 0.3)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "label_mode": "ferplus-majority"}))
    report = build_report([run], load_spec(plan))
    findings = gap(report, report.row("a")).findings
    assert "trained on ferplus-majority labels, the paper's on fer2013" in findings


def test_face_network_runs_of_the_schedule_are_reported(plan, tmp_path):
    face = _fake_run(tmp_path / "facenet-s0", plan, "facenet", 0, 0.97, 0.96)
    short = _fake_run(tmp_path / "facenet-short", plan, "facenet", 0, 0.9, 0.9, schedule="short")
    report = build_report([face, short], load_spec(plan))
    assert [r.path.name for r in report.face_runs] == ["facenet-s0"]
    assert [p.name for p, _ in report.not_counted] == ["facenet-short"]
    assert face in [r.path for r in report.runs()]


def test_the_report_matches_attention_runs_to_their_face_network(plan, tmp_path):
    """By the SHA-256 each metrics.json records: the face run's weights, the attention run's
    face network; a run from before that record is counted as unknown."""

    def record(run: Path, **extra: object) -> Path:
        metrics = json.loads((run / "metrics.json").read_text())
        (run / "metrics.json").write_text(json.dumps({**metrics, **extra}))
        return run

    for name in ("alpha", "beta"):  # both attend with the face network
        recipe = plan.parent / "recipes" / f"{name}.yaml"
        attends = "face_checkpoint: facenet-s0/best.pt}"
        recipe.write_text(recipe.read_text().replace("}", ", " + attends, 1))
    face = record(_fake_run(tmp_path / "facenet-s0", plan, "facenet", 0, 0.97, 0.96))
    runs = [_fake_run(tmp_path / f"alpha-s{s}", plan, "alpha", s, 0.6, 0.6) for s in (0, 1)]
    other = _fake_run(tmp_path / "beta-s0", plan, "beta", 0, 0.6, 0.6)
    spec = load_spec(plan)
    text = render_markdown(build_report([face, *runs, other], spec), {}, tmp_path / "r.md")
    assert "This run does not record its weights' SHA-256, so the 3 finished attention" in text

    record(face, best_sha256="a" * 64)
    record(runs[0], face_network={"path": "x", "sha256": "a" * 64})
    record(other, face_network={"path": "y", "sha256": "b" * 64})
    text = render_markdown(build_report([face, *runs, other], spec), {}, tmp_path / "r.md")
    assert (
        "Frozen in 1 of the 3 finished attention run(s) of this report (rows and side checks);"
        " 1 loaded another face network; 1 do not record which (trained before ferlab recorded"
        " it)." in text
    )


def test_gpu_runs_fill_the_rows_that_need_a_gpu(plan, tmp_path):
    run = _fake_run(tmp_path / "gamma-s0", plan, "gamma", 0, 0.6, 0.61)
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "device": "cuda:0"}))
    report = build_report([run], load_spec(plan))
    huge = report.row("h")
    assert [r.path.name for r in huge.runs] == ["gamma-s0"]
    assert gap(report, huge).verdict == "within 2 points"  # 61 against the paper's 60
    assert report.row("g").runs == []  # the CPU-size row keeps its own runs
    assert "61.00 (n=1)" in render_markdown(report, {}, tmp_path / "r.md")


def test_a_paper_training_accuracy_is_set_against_ours(plan, tmp_path):
    plan.write_text(
        plan.read_text().replace(
            "reported_on: the other table}",
            "reported_on: the other table, paper_measure: training, stated: Quoted elsewhere.}",
        )
    )
    run = _fake_run(tmp_path / "a0", plan, "alpha", 0, 0.3, 0.30)
    (run / "history.csv").write_text(
        "epoch,elapsed_s,train_acc,val_acc\n1,10,0.45,0.3\n2,20,0.5,0.3\n"
    )
    report = build_report([run], load_spec(plan))
    g = gap(report, report.row("a2"))  # 30 % on PrivateTest against a training accuracy of 51.5
    assert g.verdict == "explained"
    assert (
        "a training accuracy: ours over the last epoch is 50.00 % (n=1, -1.50 points)"
        in (g.findings[0])
    )
    assert gap(report, report.row("a")).verdict == "not explained"  # a test accuracy
    line = next(
        x for x in render_markdown(report, {}, tmp_path / "r.md").splitlines() if "Alpha in" in x
    )
    assert "| Quoted elsewhere; reported on: the other table |" in line
    bad = tmp_path / "bad.yaml"
    bad.write_text(plan.read_text().replace("paper_measure: training", "paper_measure: val"))
    with pytest.raises(DataError, match="paper_measure must be one of test, training"):
        load_spec(bad)


def test_compare_report_without_finished_runs_or_with_runs_of_another_length(
    plan, tmp_path, capsys
):
    """Every sentence comes from the runs given: none finished, or all of another length."""
    runs = tmp_path / "runs"
    running = _fake_run(runs / "alpha-s0", plan, "alpha", 0, None, None, finished=False, epochs=1)
    longer = _fake_run(runs / "beta-s0", plan, "beta", 0, 0.5, 0.5, overrides={"train.epochs": 7})
    report_path = tmp_path / "report.md"
    args = ["compare", str(running), str(longer), "--report", str(report_path)]
    code, stdout, stderr = run_cli([*args, "--plan", str(plan)], capsys)
    assert code == 0, stderr
    # only its small files (no last.pt): the table reads it from config.yaml and history.csv
    assert "| alpha-s0 (unfinished) | deep_emotion_nostn | — | 10s | 1 | 31.00 | — |" in stdout
    text = report_path.read_text()
    assert "from 0 finished run(s) and 1 unfinished" in text
    assert (
        "No counted run has finished yet. 1 run(s) unfinished. 1 run folder(s) not counted" in text
    )
    assert "No row has a finished run yet (1 run(s) in progress)" in text
    assert "beta-s0`: not a run of the full schedule: train.epochs is 7, the recipe's is 3" in text
    # the unfinished run times the rest: 2 epochs of seed 0 and 3 of seed 1 at 10 s each
    assert "pending: epoch 1 of 3, best PublicTest so far 31.00 %; 1 more seed(s) planned" in text
    assert (
        "(estimate: 1 min of training at the 10 s per epoch measured in the runs of this report"
        in text
    )
    assert "a time budget of" not in text
    # the same runs under a schedule with a time budget: none of them is its run
    code, _, stderr = run_cli([*args, "--plan", str(plan), "--schedule", "short"], capsys)
    assert code == 0, stderr
    text = report_path.read_text()
    assert "under the short schedule (a time budget of 1m of CPU time a run)" in text
    assert "No counted run has finished yet. 2 run folder(s) not counted" in text
    assert "time budget None, the schedule's is 1m" in text
