"""Run every recipe in ``recipes/`` end to end under a short time budget.

Shows that each configuration the papers describe trains, selects, evaluates and writes its run
folder on this machine: every recipe is trained with ``--time-budget`` (default 2 minutes of
wall-clock time), validated and tested on seeded subsets of ``--max-eval`` images (the full
splits would cost more than the training), and its outcome recorded in ``OUT/smoke.json``. The
face / non-face networks train first, and the facial-attention recipes load the one of their
width from ``OUT``. Finished recipes are skipped and interrupted ones resumed, so the script
continues after an interruption; failed ones are tried again.

    python benchmarks/smoke_recipes.py                       # every recipe, about 1.5 hours
    python benchmarks/smoke_recipes.py --only luo_cnn --budget 30s --out /tmp/smoke
    python benchmarks/smoke_recipes.py --write               # + the table in docs/training.md

Accuracies after two minutes say nothing about the recipes' merit; ``docs/reproduction.md``
compares them at an equal, longer budget.
"""

from __future__ import annotations

import os

# As `ferlab train` does: idle OpenMP threads sleep (docs/training.md). Before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

from doc_section import machine, write_doc_section
from rich.console import Console

from ferlab.engine import train
from ferlab.engine.recipe import apply_overrides, load_recipe
from ferlab.errors import FerlabError

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Every recipe under a short budget"


def ordered_recipes(folder: Path, only: list[str]) -> list[Path]:
    """Recipe files, the ones that train a face network first."""
    paths = sorted(folder.glob("*.yaml"))
    if only:
        paths = [p for p in paths if p.stem in only]
        missing = set(only) - {p.stem for p in paths}
        if missing:
            raise SystemExit(f"no recipe named {', '.join(sorted(missing))} in {folder}")
    return sorted(paths, key=lambda p: load_recipe(p).model.name != "face_vgg19")


def smoke(path: Path, out: Path, budget: str, max_eval: int) -> dict[str, Any]:
    """Train one recipe under the budget; its outcome, or the error that stopped it."""
    recipe = load_recipe(path)
    run = out / recipe.name
    face = recipe.model.face_checkpoint
    overrides: dict[str, Any] = {"train.time_budget": budget, "data.max_eval": max_eval}
    if face:
        # The face network of the same width, trained earlier in this smoke run.
        overrides["model.face_checkpoint"] = str(out / Path(face).parent.name / "best.pt")
    row: dict[str, Any] = {"recipe": recipe.name, "model": recipe.model.name}
    try:
        recipe = apply_overrides(recipe, overrides, where=str(path))
        result = train(recipe, out_dir=run, resume=(run / "last.pt").is_file())
    except FerlabError as exc:
        return row | {"error": str(exc)}
    m = result.metrics
    return row | {
        "stop_reason": m["stop_reason"],
        "steps": m["steps"],
        "epochs": m["epochs"],
        "train_time_s": m["train_time_s"],
        "val": m["val"]["accuracy"],
        "test": (m["test"] or {}).get("accuracy"),
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| recipe | model | outcome | steps | epochs | val | test |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| `{r['recipe']}` | {r['model']} | failed: {r['error']} | | | | |")
            continue
        test = "—" if r["test"] is None else f"{100 * r['test']:.1f} %"
        lines.append(
            f"| `{r['recipe']}` | {r['model']} | {r['stop_reason']} | {r['steps']} | "
            f"{r['epochs']:.2f} | {100 * r['val']:.1f} % | {test} |"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipes", type=Path, default=ROOT / "recipes")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "smoke")
    parser.add_argument("--budget", default="2m", help="training time budget per recipe")
    parser.add_argument("--max-eval", type=int, default=500, help="val/test images per recipe")
    parser.add_argument("--only", nargs="*", default=[], help="recipe names (file stems)")
    parser.add_argument("--write", action="store_true", help="update docs/training.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    console = Console()
    record = args.out / "smoke.json"
    done = json.loads(record.read_text()) if record.is_file() else {}
    args.out.mkdir(parents=True, exist_ok=True)
    for path in ordered_recipes(args.recipes, args.only):
        name = path.stem
        if name in done and "error" not in done[name]:
            continue
        console.rule(name)
        done[name] = smoke(path, args.out, args.budget, args.max_eval)
        record.write_text(json.dumps(done, indent=2) + "\n")
        console.print(table([done[name]])[-1], highlight=False)
    rows = [done[k] for k in sorted(done)]
    lines = table(rows)
    console.print("\n".join(lines), highlight=False)
    failed = [r["recipe"] for r in rows if "error" in r]
    if args.write:
        write_doc_section(
            [
                SECTION,
                "",
                f"Script: `benchmarks/smoke_recipes.py --budget {args.budget} --max-eval "
                f"{args.max_eval}`. Measured {dt.date.today().isoformat()} on {machine(load)}. "
                f"Every recipe in `recipes/` trained for {args.budget} of wall-clock time, then "
                f"selected on and evaluated against seeded subsets of {args.max_eval} validation "
                "and test images, with its own test-time augmentation. The accuracies say only "
                "that each run trained, selected and evaluated end to end. The reproduction "
                "runner (`benchmarks/reproduce.py`) compares them at a longer, equal budget. "
                f"{len(rows) - len(failed)} of {len(rows)} recipes ran"
                + (f"; failed: {', '.join(failed)}." if failed else "."),
                "",
                *lines,
            ],
            ROOT / "docs" / "training.md",
        )
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
