"""Ship a finished run as one of ferlab's built-in models.

    python scripts/release_model.py checkpoints/ferlab_default default
    python scripts/release_model.py runs/ferlab_ferplus ferplus
    python scripts/release_model.py checkpoints/fast fast

Writes ``src/ferlab/weights/<name>.pt`` (the run's ``best.pt`` without training state, with
its measured metrics, training time and code version) and its ``.onnx`` twin (ONNX Runtime,
no PyTorch needed); refuses either over 10 MB. Measures the validation split under every
test-time augmentation (the test split was evaluated once, by the run, with the TTA its recipe
fixed beforehand) and rewrites the model's section of ``docs/models.md`` from those numbers,
with its figures in ``docs/img/models/``. A name of :data:`RELEASABLE` that is not shipped yet
gets its entry in the shipped-model table.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferlab.markdown import write_section  # noqa: E402
from ferlab.report import cpu_name  # noqa: E402

MAX_BYTES = 10_000_000
WEIGHTS = ROOT / "src" / "ferlab" / "weights"
TABLE = ROOT / "src" / "ferlab" / "inference" / "shipped.py"
CARD = ROOT / "docs" / "models.md"
TTAS = ("none", "flip", "ten_crop")
#: Names a run can be released as (each gets its table entry on its first release).
RELEASABLE = ("default", "ferplus", "fast")


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _record_digests(name: str, pt: Path, onnx: Path, table: Path) -> None:
    """Write the new files' SHA-256 into the shipped-model table, which checks them on load."""
    from ferlab.inference.shipped import file_sha256

    text = table.read_text()
    if f'    "{name}": ShippedModel(' not in text:
        # A new shipped model: its entry goes last in the table.
        close = text.index("\n}\n", text.index("SHIPPED: dict[str, ShippedModel] = {"))
        entry = (
            f'\n    "{name}": ShippedModel(\n        pt="{pt.name}",\n        pt_sha256="",\n'
            f'        onnx="{onnx.name}",\n        onnx_sha256="",\n    ),'
        )
        text = text[:close] + entry + text[close:]
    start = text.index(f'    "{name}": ShippedModel(')
    end = text.index("    ),\n", start)
    entry = text[start:end]
    for key, path in (("pt_sha256", pt), ("onnx_sha256", onnx)):
        entry = re.sub(rf'{key}="[0-9a-f]*"', f'{key}="{file_sha256(path)}"', entry)
    table.write_text(text[:start] + entry + text[end:])


def _check_size(path: Path) -> None:
    size = path.stat().st_size
    if size > MAX_BYTES:
        path.unlink()
        sys.exit(f"{path}: {size / 1e6:.1f} MB is over the {MAX_BYTES / 1e6:.0f} MB limit")


def _recipe_data(recipe: dict):
    from ferlab.data import load_dataset

    d = recipe["data"]
    return load_dataset(
        d["path"],
        ferplus=d["ferplus"],
        labels=d["labels"],
        val_fraction=d["val_fraction"],
        seed=recipe["train"]["seed"],
        progress=False,
    )


def _folded_from(source: dict, best: Path) -> bool:
    """Whether the checkpoint ``source`` was written from ``best`` by scripts/fold_se.py."""
    from ferlab.engine.checkpoint import file_sha256

    folded = source.get("folded_se") or {}
    return folded.get("sha256") == file_sha256(best)


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %"


def card_section(
    name: str,
    m: dict,
    val: dict[str, dict],
    sizes: dict[str, int],
    distill: dict | None = None,
    distill_recipe: dict | None = None,
) -> list[str]:
    test = m["test"]
    hours = m["train_time_s"] / 3600
    evaluated = (
        f"the test split was evaluated once, from that checkpoint, with the test-time "
        f"augmentation the recipe fixed beforehand (`{m['tta']}`"
    )
    if "shipped_test" in m:
        # What ships differs from what the run evaluated (folded SE gates, or a TTA chosen after).
        shipped = m["shipped_test"]
        evaluated += (
            f": {_pct(test['accuracy'])}). {shipped['why']} The test split was evaluated once "
            f"more for what ships, at release: the test row below (`{shipped['tta']}`)."
        )
        test = shipped
    else:
        evaluated += ")."
    lines = [
        f"## Measured: `{name}`",
        "",
        f"Written by `scripts/release_model.py` from the run's `metrics.json` (recipe "
        f"`recipes/{m['name']}.yaml`). Selected on the validation split (best epoch "
        f"{m['best_epoch']:g} of {m['epochs']:g}, EMA weights); {evaluated}",
        "",
        "| split | images | TTA | accuracy | macro-F1 |",
        "|---|---:|---|---:|---:|",
    ]
    for tta, r in val.items():
        lines.append(
            f"| val (PublicTest) | {r['n']} | {tta} | {_pct(r['accuracy'])} | {r['macro_f1']:.4f} |"
        )
    test_tta = test.get("tta", m["tta"])
    lines += [
        f"| **test (PrivateTest)** | {test['n']} | {test_tta} | **{_pct(test['accuracy'])}** | "
        f"{test['macro_f1']:.4f} |",
        "",
        "Per class on the test split (recall):",
        "",
        "| " + " | ".join(test["per_class"]) + " |",
        "|" + "---:|" * len(test["per_class"]),
        "| " + " | ".join(_pct(v) for v in test["per_class"].values()) + " |",
        "",
        f"Training: {m['steps']:,} steps, {hours:.2f} h of wall-clock training time summed over "
        f"its sessions (validations included; precision {m['precision']} at the end), last on "
        f"{cpu_name()}; {m['params']:,} parameters. Weights: `ferlab/weights/{name}.pt` "
        f"{sizes['pt'] / 1e6:.1f} MB, `{name}.onnx` {sizes['onnx'] / 1e6:.1f} MB.",
        "",
    ]
    if distill:
        r = distill_recipe or {}
        lines += [
            f"Distilled from `{Path(distill['teacher']).name}` (SHA-256 "
            f"`{distill['teacher_sha256'][:16]}…`): its {distill['tta']} probabilities "
            f"({distill['precision']}) on the {distill['n']:,} training faces, softened at "
            f"temperature {r.get('temperature')}, make {r.get('weight')} of each target, the "
            "label the rest.",
            "",
        ]
    lines += [
        f"![{name}: test confusion matrix](img/models/{name}_confusion_test.png)",
        f"![{name}: training curves](img/models/{name}_curves.png)",
        f"![{name}: misclassified test faces](img/models/{name}_misclassified_test.png)",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="finished run folder (best.pt, metrics.json)")
    parser.add_argument("name", help="shipped model name: default or ferplus")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS)
    parser.add_argument(
        "--table", type=Path, default=TABLE, help="the shipped-model table to record digests in"
    )
    parser.add_argument(
        "--card", type=Path, default=CARD, help="figures go to img/models/ beside it"
    )
    parser.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="the network to ship (default: RUN/best.pt), e.g. its SE-folded twin "
        "(scripts/fold_se.py)",
    )
    parser.add_argument(
        "--tta",
        choices=TTAS,
        default=None,
        help="the TTA it runs by default, chosen on PublicTest and the shift suite "
        "(benchmarks/choose_tta.py); default: the one the recipe evaluated the test split with",
    )
    parser.add_argument(
        "--why", default="", help="one sentence for the model card: why --weights / --tta differ"
    )
    args = parser.parse_args(argv)

    from ferlab.engine.checkpoint import load_checkpoint, read_checkpoint, release_checkpoint
    from ferlab.engine.evaluate import evaluate_checkpoint
    from ferlab.export import export_onnx
    from ferlab.inference import SHIPPED

    if args.name not in (*SHIPPED, *RELEASABLE):
        known = ", ".join(dict.fromkeys((*SHIPPED, *RELEASABLE)))
        sys.exit(f"unknown shipped model name '{args.name}'; known: {known}")
    metrics_path = args.run / "metrics.json"
    if not metrics_path.is_file():
        sys.exit(f"{metrics_path}: not found; is the run finished?")
    m = json.loads(metrics_path.read_text())
    best = args.run / "best.pt"
    weights = args.weights or best
    source = read_checkpoint(weights)
    same_network = weights.resolve() == best.resolve()
    if not same_network and not _folded_from(source, best):
        sys.exit(f"{weights}: neither {best} nor written from it by scripts/fold_se.py")
    tta = args.tta or m["tta"]
    as_evaluated = same_network and tta == m["tta"]
    if not as_evaluated and not args.why:
        sys.exit("--weights or --tta differ from what the run evaluated: say why (--why)")
    recipe = source["recipe"]
    data = _recipe_data(recipe)
    val = {t: evaluate_checkpoint(weights, data, split="val", tta=t) for t in TTAS}
    figures_from = args.run
    if not as_evaluated:
        # What ships is not what the run evaluated once: evaluate it once, for the card.
        scratch = tempfile.TemporaryDirectory(prefix="ferlab-release-")  # removed at exit
        figures_from = Path(scratch.name)
        shipped = evaluate_checkpoint(weights, data, split="test", tta=tta, out_dir=figures_from)
        if (args.run / "curves.png").is_file():
            shutil.copyfile(args.run / "curves.png", figures_from / "curves.png")
        shipped.pop("checkpoint")
        network, _ = load_checkpoint(weights)
        params = sum(p.numel() for p in network.parameters())
        m = {**m, "params": params, "shipped_test": {**shipped, "why": args.why}}

    args.weights_dir.mkdir(parents=True, exist_ok=True)
    pt = args.weights_dir / f"{args.name}.pt"
    onnx = args.weights_dir / f"{args.name}.onnx"
    for path in (pt, onnx):
        path.unlink(missing_ok=True)
    release_checkpoint(
        weights,
        pt,
        tta=tta,
        metrics={"val": val[tta], "test": m.get("shipped_test", m["test"]), "tta": tta},
        training={
            k: m[k]
            for k in ("epochs", "steps", "best_epoch", "train_time_s", "cpu_time_s", "precision")
        }
        | {"hardware": cpu_name()},
        code_version=_git_commit(),
        card="docs/models.md",
    )
    _check_size(pt)
    export_onnx(pt, onnx, dynamic_batch=True)
    _check_size(onnx)

    figures = args.card.parent / "img" / "models"
    figures.mkdir(parents=True, exist_ok=True)
    for fig in ("confusion_test", "curves", "misclassified_test"):
        src = figures_from / f"{fig}.png"
        if src.is_file():
            shutil.copyfile(src, figures / f"{args.name}_{fig}.png")
    sizes = {"pt": pt.stat().st_size, "onnx": onnx.stat().st_size}
    lines = card_section(args.name, m, val, sizes, source.get("distill"), recipe.get("distill"))
    write_section(lines, args.card)
    _record_digests(args.name, pt, onnx, args.table)
    summary = {t: round(v["accuracy"], 4) for t, v in val.items()}
    test = m.get("shipped_test", m["test"])["accuracy"]
    print(json.dumps({"weights": str(pt), "val": summary, "test": test, "tta": tta}))


if __name__ == "__main__":
    main()
