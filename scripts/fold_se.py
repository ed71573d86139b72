"""Starting weights for the squeeze-and-excitation ablation: a model's SE gates folded away.

    python scripts/fold_se.py default runs/default_se_folded.pt

Measures each SE block's mean gate per channel over FER2013 Training faces (the model's own
preprocessing, centre crop), replaces the blocks by those constants folded into the next layer
(:func:`ferlab.models.ferlab_net.fold_se`, exact for constant gates) and writes the result as a
``ferlab_net`` checkpoint built with ``se=False``: what ``recipes/ferlab_default_robust_nose.yaml``
starts from, so that the run without SE starts where the run with SE does, minus only what the
gates' dependence on the input adds. The source's recorded metrics are dropped (they belong to
the network with SE); ``folded_se`` records the source, its SHA-256 and the faces measured.
``--check`` also prints both networks' PublicTest accuracy without TTA (a check, not a
selection; PrivateTest is not read).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"


def mean_gates(network: torch.nn.Module, inputs: torch.Tensor, batch: int = 512) -> list:
    """Each SE block's gate per channel, averaged over ``inputs`` (network input N×C×H×W)."""
    from ferlab.layers.squeeze_excite import SqueezeExcite

    blocks = [m for m in network.modules() if isinstance(m, SqueezeExcite)]
    sums = [torch.zeros(b.channels, dtype=torch.float64) for b in blocks]
    for b in blocks:
        b.record = True
    try:
        with torch.no_grad():
            for lo in range(0, len(inputs), batch):
                network(inputs[lo : lo + batch])
                for s, b in zip(sums, blocks, strict=True):
                    s += b.last_weights.double().sum(0)
    finally:
        for b in blocks:
            b.record, b.last_weights = False, None
    return [(s / len(inputs)).float() for s in sums]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="shipped model name or ferlab_net checkpoint")
    parser.add_argument("out", type=Path, help="checkpoint to write")
    parser.add_argument("--data", type=Path, default=DATA, help="FER2013 (Training faces used)")
    parser.add_argument("--faces", type=int, default=8000, help="Training faces (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="PublicTest accuracy of both")
    args = parser.parse_args(argv)

    from ferlab.data import load_dataset
    from ferlab.engine.checkpoint import atomic_save, file_sha256, load_checkpoint, read_checkpoint
    from ferlab.inference import model_file
    from ferlab.models.ferlab_net import fold_se

    torch.set_num_threads(1)
    path = model_file(args.source)
    ckpt = read_checkpoint(path)
    if ckpt["model"]["name"] != "ferlab_net" or ckpt["model"]["kwargs"].get("se") is False:
        sys.exit(f"{path}: not a ferlab_net with SE blocks")
    network, meta = load_checkpoint(path)
    prep = meta["preprocess"]
    data = load_dataset(args.data, progress=False)
    train = data.subset("train")
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))
    faces = train.images[pick[: args.faces].sort().values].numpy()
    gates = mean_gates(network, torch.from_numpy(prep(faces, "none")[0]))
    folded = fold_se(network, gates)
    out = {k: v for k, v in ckpt.items() if k not in ("train_state", "metrics", "tensors_sha256")}
    out["model"] = {"name": "ferlab_net", "kwargs": {**ckpt["model"]["kwargs"], "se": False}}
    out["state_dict"] = folded.state_dict()
    out["metrics"] = {}
    out["folded_se"] = {
        "source": str(path),
        "sha256": file_sha256(path),
        "faces": len(faces),
        "split": "train",
        "gate_means": [round(float(g.mean()), 4) for g in gates],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_save(out, args.out)
    report = {"out": str(args.out), **out["folded_se"]}
    if args.check:
        import ferlab

        val = data.subset("val")
        y = val.labels.numpy()
        for name, spec in (("source", path), ("folded", args.out)):
            model = ferlab.load_model(spec, tta="none", runtime="torch")
            report[f"val_accuracy_{name}"] = float(
                (np.asarray(model.predict_proba(val.images.numpy())).argmax(1) == y).mean()
            )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
