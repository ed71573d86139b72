"""The reproduction report (``ferlab.engine.report``), ``ferlab compare --report`` and the runner
``benchmarks/reproduce.py``, on small plans with fake and real run folders, and the real plan."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import yaml

from ferlab.engine.recipe import apply_overrides, load_recipe, save_recipe
from ferlab.engine.report import (
    Stat,
    build_report,
    compare_rows,
    load_spec,
    mean_sd,
    protocol_difference,
    read_run,
    render_markdown,
    write_report,
)
from ferlab.errors import DataError, FerlabError
from ferlab.models import list_models
from tests.cli.cli_helpers import run as run_cli
from tests.engine.engine_helpers import synthetic_data, write_synthetic_csv

ROOT = Path(__file__).resolve().parents[2]
PLAN = ROOT / "benchmarks" / "reproduction.yaml"

RECIPE = """\
model: {{name: {model}}}
data: {{path: fer_small.csv, normalize: global}}
optim: {{name: adam, lr: {lr}}}
schedule: {{kind: constant}}
train: {{epochs: 1, batch_size: 32}}
eval: {{tta: none, plots: false}}
paper: {{source: "{source}", reported_accuracy: {acc}, reported_on: test set,
        notes: "A short note. A second sentence that the report may leave out of the table."}}
"""

SMALL_PLAN = """\
recipes: recipes
budget: 1m
budget_clock: cpu
papers:
  - key: first
    title: First paper, Table 1
    hardware: one GPU
    configurations:
      - {id: a, label: Alpha row, recipe: alpha, seeds: 2}
      - {id: b, label: Beta row, recipe: beta, seeds: 2, baseline: a, change: a transformer}
      - {id: a2, label: Alpha in Table 2, recipe: alpha, paper_accuracy: 51.5,
         reported_on: the other table}
  - key: second
    title: Second paper
    configurations:
      - {id: g, label: Gamma row, recipe: gamma, cpu_recipe: gamma_small, note: Hand note.}
gpu_only:
  - configuration: Gamma at full size
    why: Too slow here.
    commands: ferlab train recipes/gamma.yaml --device cuda
    expected_time: about an hour
conclusions: Hand-written conclusions.
"""


def _write_plan(root: Path) -> Path:
    """A plan of two papers and four rows over recipes of small registered models."""
    recipes = root / "recipes"
    recipes.mkdir(parents=True)
    specs = {
        "alpha": ("deep_emotion_nostn", 0.003, "Paper A", 50.0),
        "beta": ("deep_emotion", 0.003, "Paper A", 55.0),
        "gamma": ("deep_emotion_nostn", 0.01, "Paper G", 60.0),
        "gamma_small": ("deep_emotion_nostn", 0.02, "Paper G", "null"),
    }
    for name, (model, lr, source, acc) in specs.items():
        text = RECIPE.format(model=model, lr=lr, source=source, acc=acc)
        (recipes / f"{name}.yaml").write_text(text)
    write_synthetic_csv(recipes / "fer_small.csv")
    plan = root / "plan.yaml"
    plan.write_text(SMALL_PLAN)
    return plan


def _fake_run(
    folder: Path,
    recipe_path: Path,
    seed: int,
    public: float | None,
    private: float | None,
    *,
    cpu_s: float = 60.0,
    budget: str = "1m",
    overrides: dict | None = None,
    finished: bool = True,
) -> Path:
    """A run folder as ``train`` leaves it: config.yaml, and metrics.json once finished."""
    recipe = apply_overrides(
        load_recipe(recipe_path),
        {
            "train.seed": seed,
            "train.time_budget": budget,
            "train.budget_clock": "cpu",
            **(overrides or {}),
        },
    )
    folder.mkdir(parents=True)
    save_recipe(recipe, folder / "config.yaml")
    if finished:
        metrics = {
            "name": recipe.name,
            "model": recipe.model.name,
            "params": 40_000,
            "stop_reason": "time_budget",
            "epochs": 2.5,
            "steps": 100,
            "train_time_s": 2 * cpu_s,
            "cpu_time_s": cpu_s,
            "time_budget": budget,
            "budget_clock": "cpu",
            "val": {"accuracy": public},
            "test": {"accuracy": private},
            "tta": "none",
            "paper": {},
            "device": "cpu",
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
    return folder


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    return _write_plan(tmp_path / "plan")


@pytest.fixture
def fake_runs(plan: Path, tmp_path: Path) -> dict[str, Path]:
    """Runs of every kind the report sorts: counted, other budget, other protocol, duplicate
    seed, unrelated, unfinished."""
    recipes, runs = plan.parent / "recipes", tmp_path / "runs"
    zeta = _fake_run(runs / "zeta", recipes / "gamma.yaml", 0, 0.5, 0.5)
    config = zeta / "config.yaml"
    config.write_text(config.read_text().replace("name: gamma", "name: zeta"))
    return {
        "a0": _fake_run(runs / "alpha-s0", recipes / "alpha.yaml", 0, 0.58, 0.60, cpu_s=58),
        "a1": _fake_run(runs / "alpha-s1", recipes / "alpha.yaml", 1, 0.62, 0.64, cpu_s=62),
        "b0": _fake_run(runs / "beta-s0", recipes / "beta.yaml", 0, 0.69, 0.70),
        "b1": _fake_run(runs / "beta-s1", recipes / "beta.yaml", 1, 0.70, 0.71),
        "a_long": _fake_run(runs / "alpha-long", recipes / "alpha.yaml", 0, 0.7, 0.8, budget="5m"),
        "a_lr": _fake_run(
            runs / "alpha-lr", recipes / "alpha.yaml", 3, 0.9, 0.9, overrides={"optim.lr": 0.1}
        ),
        "a_dup": _fake_run(runs / "alpha-s0-again", recipes / "alpha.yaml", 0, 0.1, 0.1),
        "a_open": _fake_run(
            runs / "alpha-s2", recipes / "alpha.yaml", 2, None, None, finished=False
        ),
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


def test_runs_sorted_into_rows_with_mean_and_spread(plan, fake_runs):
    report = build_report(fake_runs.values(), load_spec(plan))
    rows = {r.config.id: r for r in report.rows}
    assert [r.config.id for r in report.rows] == ["a", "b", "a2", "g"]

    a = rows["a"]
    assert [r.seed for r in a.runs] == [0, 1]
    private, public = a.stat("private"), a.stat("public")
    assert (private.n, round(private.mean, 6)) == (2, 62.0)
    assert math.isclose(private.sd, math.sqrt(8.0))
    assert math.isclose(public.mean, 60.0) and math.isclose(public.sd, math.sqrt(8.0))
    assert math.isclose(a.cpu_minutes.mean, 1.0)
    assert [r.path.name for r in a.unfinished] == ["alpha-s2"]
    assert rows["a2"].runs == a.runs  # a second table quoting the same configuration
    assert (rows["a2"].paper_accuracy, rows["a2"].reported_on) == (51.5, "the other table")
    assert (rows["a"].paper_accuracy, rows["a"].reported_on) == (50.0, "test set")
    assert rows["g"].runs == [] and rows["g"].config.cpu_recipe == "gamma_small"

    reasons = {path.name: why for path, why in report.not_counted}
    assert set(reasons) == {"alpha-lr", "alpha-s0-again"}
    assert "optim.lr" in reasons["alpha-lr"]
    assert "seed 0 is already counted" in reasons["alpha-s0-again"]
    assert [(g.recipe, g.budget, len(g.runs)) for g in report.others] == [
        ("alpha", "5m of CPU time", 1)
    ]
    assert [r.name for r in report.unrelated] == ["zeta"]

    (cmp,) = compare_rows(report)
    assert (cmp.label, cmp.baseline, cmp.change) == ("Beta row", "Alpha row", "a transformer")
    assert math.isclose(cmp.delta, 70.5 - 62.0)
    assert math.isclose(cmp.se, math.sqrt(8.0 / 2 + 0.5 / 2))
    assert cmp.verdict == "gain beyond the seeds' spread"  # 8.5 > 2 × 2.06


def test_verdict_needs_two_seeds_and_a_difference_beyond_the_spread(plan, tmp_path):
    recipes, runs = plan.parent / "recipes", tmp_path / "runs"
    dirs = [
        _fake_run(runs / "a0", recipes / "alpha.yaml", 0, 0.5, 0.60),
        _fake_run(runs / "a1", recipes / "alpha.yaml", 1, 0.5, 0.64),
        _fake_run(runs / "b0", recipes / "beta.yaml", 0, 0.5, 0.63),
    ]
    spec = load_spec(plan)
    assert compare_rows(build_report(dirs, spec))[0].verdict == "one seed only: not conclusive"
    dirs.append(_fake_run(runs / "b1", recipes / "beta.yaml", 1, 0.5, 0.65))
    (cmp,) = compare_rows(build_report(dirs, spec))
    assert math.isclose(cmp.delta, 2.0)  # 64 - 62, within 2 × sqrt(8/2 + 2/2) = 4.47
    assert cmp.verdict == "within the seeds' spread"
    assert compare_rows(build_report([], spec))[0].verdict == "not run yet"


def test_markdown_has_every_row_in_order_with_the_issue_columns(plan, fake_runs, tmp_path):
    report = build_report(fake_runs.values(), load_spec(plan))
    text = render_markdown(report, {}, tmp_path / "report.md")
    header = (
        "| configuration | paper % | paper's protocol (as stated) | ours: PublicTest % | "
        "ours: PrivateTest % | our budget | params | note |"
    )
    assert header in text
    table_lines = [line for line in text.splitlines() if line.startswith("| ")]
    rows = {line.split("<br>")[0][2:]: line for line in table_lines if "<br>`" in line}
    assert list(rows) == ["Alpha row", "Beta row", "Alpha in Table 2", "Gamma row"]
    cells = [c.strip() for c in rows["Alpha row"].strip("|").split(" | ")]
    assert len(cells) == 8
    assert cells[1] == "50.00"
    assert cells[2].startswith("1 epochs; batch 32; Adam, lr 0.003; constant lr")
    assert cells[2].endswith("Reported on: test set")
    assert cells[3] == "60.00 ± 2.83 (n=2)" and cells[4] == "62.00 ± 2.83 (n=2)"
    assert cells[5].startswith("2.5 epochs, 1.0 CPU-min, cpu")
    assert cells[6] == "0.04 M"
    assert "1 run(s) unfinished" in cells[7] and "A short note." in cells[7]
    gamma = [c.strip() for c in rows["Gamma row"].strip("|").split(" | ")]
    assert gamma[3] == "not run yet" and gamma[4] == "—"
    assert "`gamma_small`" in gamma[7] and "Hand note." in gamma[7]
    assert "Hand-written conclusions." in text
    assert "ferlab train recipes/gamma.yaml --device cuda" in text
    assert "| Beta row | Alpha row | a transformer | +8.50 (s.e. 2.06) |" in text.replace(
        "| First paper | ", "| "
    )
    assert "`" + str(fake_runs["a_lr"]) + "`" in text


@pytest.mark.slow
def test_write_report_draws_one_figure_per_paper(plan, fake_runs, tmp_path):
    out = tmp_path / "docs" / "reproduction.md"
    write_report(fake_runs.values(), plan, out)
    figures = sorted((out.parent / "figures").glob("*.png"))
    assert [f.name for f in figures] == ["reproduction_first.png", "reproduction_second.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    text = out.read_text()
    assert "](figures/reproduction_first.png)" in text
    assert "](figures/reproduction_second.png)" in text


def test_validation_curve_is_on_the_cpu_clock_of_the_budget(plan, tmp_path):
    run = _fake_run(tmp_path / "alpha-s0", plan.parent / "recipes" / "alpha.yaml", 0, 0.5, 0.5)
    assert read_run(run).curve == ()  # no history.csv
    (run / "history.csv").write_text(
        "epoch,elapsed_s,val_acc,train_loss\n1.0,30.0,0.40,1.2\n2.0,120.0,0.55,1.0\n"
    )
    # cpu_s 60 over train_time_s 120: the wall-clock times are halved.
    curve = read_run(run).curve
    assert [point for pair in curve for point in pair] == pytest.approx([0.25, 40.0, 1.0, 55.0])
    (run / "history.csv").write_text("epoch,elapsed_s\n1.0,oops\n")
    assert read_run(run).curve == ()


def test_rows_the_cpu_cannot_run_point_to_the_gpu_section(plan, tmp_path):
    gpu_plan = plan.parent / "gpu_plan.yaml"
    gpu_plan.write_text(
        SMALL_PLAN.replace("note: Hand note.}", "note: Hand note., run_on_cpu: false}")
    )
    spec = load_spec(gpu_plan)
    assert [c.run_on_cpu for c in spec.configurations()] == [True, True, True, False]
    planned = _runner().plan_runs(spec, tmp_path / "runs", [], None)
    assert "gamma_small-s0" not in [r.out.name for r in planned]
    text = render_markdown(build_report([], spec), {}, tmp_path / "report.md")
    gamma = next(line for line in text.splitlines() if line.startswith("| Gamma row<br>"))
    assert "| GPU only (see below) | — |" in gamma
    gpu_plan.write_text(
        SMALL_PLAN.replace("note: Hand note.}", "note: Hand note., run_on_cpu: no-}")
    )
    with pytest.raises(DataError, match="run_on_cpu must be true or false"):
        load_spec(gpu_plan)


def test_protocol_difference_ignores_seed_budget_and_paths(plan):
    recipe = load_recipe(plan.parent / "recipes" / "alpha.yaml")
    same = apply_overrides(
        recipe,
        {
            "train.seed": 7,
            "train.time_budget": "3m",
            "train.num_threads": 1,
            "data.path": "/elsewhere.csv",
        },
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
    with pytest.raises(DataError, match="not found"):
        load_spec(tmp_path / "missing.yaml")
    with pytest.raises(DataError, match="no config.yaml"):
        read_run(tmp_path)
    broken = _fake_run(tmp_path / "broken", plan.parent / "recipes" / "alpha.yaml", 0, 0.5, 0.5)
    (broken / "metrics.json").write_text("{not json")
    report = build_report([broken], load_spec(plan))
    ((path, why),) = report.not_counted
    assert path == broken and "not valid JSON" in why


# ---------------------------------------------------------------- real runs through the CLI
@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory) -> tuple[Path, list[Path]]:
    """Two seeds of a tiny real run (deep_emotion_nostn, one epoch) at the plan's budget."""
    from ferlab.engine import train

    root = tmp_path_factory.mktemp("report-real")
    plan = _write_plan(root / "plan")
    recipe = load_recipe(plan.parent / "recipes" / "alpha.yaml")
    dirs = []
    for seed in (0, 1):
        r = apply_overrides(
            recipe,
            {
                "train.seed": seed,
                "train.time_budget": "1m",
                "train.budget_clock": "cpu",
                "train.num_threads": 1,
            },
        )
        out = root / "runs" / f"alpha-s{seed}"
        train(r, data=synthetic_data(), out_dir=out)
        dirs.append(out)
    return plan, dirs


@pytest.mark.slow
def test_compare_report_on_real_runs(trained_runs, tmp_path, capsys):
    plan, dirs = trained_runs
    out = tmp_path / "report.md"
    figures = tmp_path / "figs"
    args = ["compare", *map(str, dirs), "--report", str(out), "--figures", str(figures)]
    code, stdout, stderr = run_cli([*args, "--plan", str(plan)], capsys)
    assert code == 0, stderr
    assert stdout.startswith("| run | model | params |")  # the plain table still comes first
    assert "alpha-s0" in stdout and "alpha-s1" in stdout
    report = build_report(dirs, load_spec(plan))
    row = report.rows[0]
    metrics = [json.loads((d / "metrics.json").read_text()) for d in dirs]
    expected = [100 * m["test"]["accuracy"] for m in metrics]
    assert [r.seed for r in row.runs] == [0, 1]
    assert math.isclose(row.stat("private").mean, sum(expected) / 2)
    assert math.isclose(row.cpu_minutes.mean, sum(m["cpu_time_s"] for m in metrics) / 120)
    text = out.read_text()
    assert f"{row.stat('private').mean:.2f}" in text
    assert {p.name for p in figures.glob("*.png")} == {
        "reproduction_first.png",
        "reproduction_second.png",
    }


def test_compare_report_errors_are_one_line(tmp_path, capsys, plan):
    run = _fake_run(tmp_path / "alpha-s0", plan.parent / "recipes" / "alpha.yaml", 0, 0.5, 0.5)
    missing = tmp_path / "nope.yaml"
    args = ["compare", str(run), "--report", str(tmp_path / "r.md"), "--plan", str(missing)]
    code, _, stderr = run_cli(args, capsys)
    assert code == 2 and "reproduction plan not found" in stderr and "Traceback" not in stderr


# ---------------------------------------------------------------------------- the real plan
def test_real_plan_rows_follow_the_papers_tables():
    spec = load_spec(PLAN)
    assert [p.key for p in spec.papers] == ["jahromi", "luo", "deep_emotion", "caciolai", "meen"]
    assert [len(p.configurations) for p in spec.papers] == [8, 2, 2, 5, 9]
    assert spec.budget == "5m" and spec.budget_clock == "cpu"
    # Two seeds where the paper claims a gain of under 2 points.
    for c in spec.configurations():
        if c.paper in ("luo", "caciolai", "meen"):
            assert c.seeds == 2, c.id
    report = build_report([], spec)
    assert all(row.paper_accuracy is not None for row in report.rows)
    assert all(row.problem == "" for row in report.rows)
    text = render_markdown(report, {}, ROOT / "docs" / "reproduction.md")
    assert text.count("not run yet") >= len(report.rows)
    for c in spec.configurations():
        assert f"| {c.label}<br>`{c.recipe}` |" in text


def test_every_recipe_of_the_plan_loads_and_names_a_registered_model():
    spec = load_spec(PLAN)
    names = {n for c in spec.configurations() for n in (c.recipe, c.cpu_recipe)}
    names.add(spec.face_network)
    models = set(list_models())
    for name in sorted(names):
        recipe = load_recipe(spec.recipe_path(name))
        assert recipe.model.name in models, name
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
        if not c.run_on_cpu:  # listed with the GPU-only configurations instead
            assert f"{c.cpu_recipe}-s0" not in out
            continue
        assert f"{c.cpu_recipe}-s0" in out and c.label in out
        if c.seeds == 2:
            assert f"{c.cpu_recipe}-s1" in out
    assert f"{spec.face_network}-s0" in out
    for g in spec.gpu_only:
        assert g.configuration in out
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_plan_states_only_and_seeds(plan, tmp_path):
    reproduce = _runner()
    spec = load_spec(plan)
    out = tmp_path / "runs"
    runs = reproduce.plan_runs(spec, out, [], None)
    assert [r.out.name for r in runs] == [
        "alpha-s0",
        "beta-s0",
        "gamma_small-s0",
        "alpha-s1",
        "beta-s1",
    ]
    assert runs[0].rows == ["Alpha row", "Alpha in Table 2"]
    _fake_run(out / "alpha-s0", plan.parent / "recipes" / "alpha.yaml", 0, 0.5, 0.5)
    (out / "beta-s0").mkdir()
    (out / "beta-s0" / "last.pt").write_bytes(b"")
    assert [r.state for r in runs[:3]] == ["done", "resume", "new"]
    only = reproduce.plan_runs(spec, out, ["second"], 3)
    assert [r.out.name for r in only] == ["gamma_small-s0", "gamma_small-s1", "gamma_small-s2"]
    with pytest.raises(FerlabError, match="--only nothing"):
        reproduce.plan_runs(spec, out, ["nothing"], None)


def test_runner_skips_a_run_finished_meanwhile_by_another_runner(plan, tmp_path, monkeypatch):
    reproduce = _runner()
    spec, out = load_spec(plan), tmp_path / "runs"
    runs = reproduce.plan_runs(spec, out, ["first"], 1)
    trained = []

    def fake_train(run, *args):
        trained.append(run.out.name)
        if run.out.name == "alpha-s0":  # meanwhile, a second runner finishes beta-s0
            _fake_run(out / "beta-s0", plan.parent / "recipes" / "beta.yaml", 0, 0.5, 0.5)
        return "time_budget"

    monkeypatch.setattr(reproduce, "train_run", fake_train)
    args = reproduce.argparse.Namespace(no_report=True, threads=1, out=out)
    console = reproduce.Console(stderr=True)
    assert reproduce._campaign(args, spec, runs, "1m", "cpu", console) == 0
    assert trained == ["alpha-s0"]


@pytest.mark.slow
def test_runner_trains_resumes_nothing_twice_and_writes_the_report(plan, tmp_path, capsys):
    reproduce = _runner()
    out, report = tmp_path / "runs", tmp_path / "report.md"
    args = ["--plan", str(plan), "--out", str(out), "--report", str(report), "--threads", "1"]
    assert reproduce.main([*args, "--only", "a", "--seeds", "1"]) == 0
    run = out / "alpha-s0"
    assert (run / "metrics.json").is_file()
    sessions = json.loads((run / "machine.json").read_text())["sessions"]
    assert len(sessions) == 1 and sessions[0]["threads"] == 1
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["time_budget"] == "1m" and config["train"]["budget_clock"] == "cpu"
    text = report.read_text()
    assert "| Alpha row<br>`alpha` |" in text and "(n=1)" in text
    capsys.readouterr()
    assert reproduce.main([*args, "--only", "a", "--seeds", "1"]) == 0  # nothing left to train
    assert "1 done" in capsys.readouterr().err
    assert len(json.loads((run / "machine.json").read_text())["sessions"]) == 1
