"""Build the explanation gallery of ``docs/explain.md`` from a trained model.

Every figure is made from FER2013's PrivateTest faces, taken in file order (no picking), with the
public ``ferlab.explain`` functions:

* ``gradcam_per_class.png``: per true class, the first faces the model classifies correctly,
  each beside its Grad-CAM overlay for that class;
* ``cam_methods.png``: Grad-CAM, Grad-CAM++, LayerCAM and Score-CAM side by side on the first
  correctly classified face of each class;
* ``misclassified_test.png``: per true class, the first misclassified faces with the prediction;
* ``filters.png``: images that maximise filters of the last convolutional layer;
* ``se_per_class.png`` (models with squeeze-and-excitation): each SE layer's mean channel gate
  per true class, relative to the mean over all classes;
* ``stn.png`` / ``attention.png`` / ``facial.png`` (models that have them): the model's own
  attention for the first correctly classified face of each class;
* ``README.md``: the figures with the model, the data and the measured accuracy.

Run from the repository root (a few minutes on a CPU; the FER2013 CSV is parsed once and cached)::

    python docs/gallery/make_gallery.py                  # the shipped default model
    python docs/gallery/make_gallery.py --model runs/x/best.pt --out /tmp/gallery
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning, as in the ferlab commands: on a CPU shared with
# other jobs, spinning made the filter images several times slower. Read when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

import ferlab  # noqa: E402
from ferlab.explain import (  # noqa: E402
    class_activation_maps,
    overlay_heatmap,
    se_channel_weights,
    supported_methods,
)
from ferlab.explain.figures import (  # noqa: E402
    attention_figure,
    facial_figure,
    filters_figure,
    save_tiles,
    stn_figure,
)
from ferlab.explain.misclassified import misclassified, plot_misclassified  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = ROOT / ".." / "shared" / "datasets" / "fer2013" / "fer2013.csv.gz"


def _first_correct(probs: np.ndarray, labels: np.ndarray, per_class: int) -> dict[int, list[int]]:
    """Per class, the indices of its first ``per_class`` correctly classified faces."""
    pred = probs.argmax(1)
    return {
        c: np.flatnonzero((labels == c) & (pred == c))[:per_class].tolist()
        for c in range(probs.shape[1])
    }


def gradcam_per_class(model, faces, labels, probs, per_class: int, out: Path) -> Path:
    chosen = _first_correct(probs, labels, per_class)
    rows, names = [], []
    for c, indices in chosen.items():
        row = []
        if indices:
            maps = class_activation_maps(model, faces[indices], "gradcam", c).maps
            for i, heat in zip(indices, maps, strict=True):
                row += [
                    (faces[i], f"#{i}"),
                    (overlay_heatmap(faces[i], heat), f"p={probs[i, c]:.2f}"),
                ]
        rows.append(row or [(np.full((48, 48), 255, np.uint8), "none correct")])
        names.append(model.labels[c])
    title = "Grad-CAM of the true class on correctly classified PrivateTest faces"
    return save_tiles(rows, out / "gradcam_per_class.png", row_labels=names, title=title, dpi=80)


def cam_methods(model, faces, labels, probs, out: Path) -> Path:
    methods = ("gradcam", "gradcam++", "layercam", "scorecam")
    picks = [v[0] for v in _first_correct(probs, labels, 1).values() if v]
    rows = []
    for i in picks:
        row = [(faces[i], f"{model.labels[labels[i]]} #{i}")]
        for method in methods:
            heat = class_activation_maps(model, faces[i], method).maps[0]
            row.append((overlay_heatmap(faces[i], heat), method))
        rows.append(row)
    title = "the four heat-map methods on the predicted (= true) class"
    return save_tiles(rows, out / "cam_methods.png", title=title, dpi=80)


def se_per_class(model, faces, labels, out: Path) -> Path:
    from ferlab.plots import pyplot

    plt = pyplot()
    gates: dict[str, list[np.ndarray]] = {}
    for lo in range(0, len(faces), 256):
        for name, w in se_channel_weights(model, faces[lo : lo + 256]).items():
            gates.setdefault(name, []).append(w)
    fig, axes = plt.subplots(len(gates), 1, figsize=(9, 1.2 + 1.6 * len(gates)), squeeze=False)
    for ax, (name, parts) in zip(axes[:, 0], gates.items(), strict=True):
        w = np.concatenate(parts)
        per_class = np.stack([w[labels == c].mean(0) for c in range(len(model.labels))])
        delta = per_class - w.mean(0)
        bound = float(np.abs(delta).max()) or 1.0
        im = ax.imshow(
            delta, aspect="auto", cmap="coolwarm", vmin=-bound, vmax=bound, interpolation="nearest"
        )
        ax.set_yticks(range(len(model.labels)), model.labels, fontsize=7)
        ax.set_title(f"{name}: mean gate per true class minus the overall mean", fontsize=8)
        fig.colorbar(im, ax=ax, fraction=0.02)
    axes[-1][0].set_xlabel("channel", fontsize=8)
    fig.tight_layout()
    path = out / "se_per_class.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def own_attention(model, faces, labels, probs, out: Path) -> list[Path]:
    """The model's own attention for the first correct face of a few classes, one PNG each."""
    methods = [m for m in ("stn", "attention", "facial") if m in supported_methods(model)]
    draw = {"stn": stn_figure, "attention": attention_figure, "facial": facial_figure}
    picks = [v[0] for v in _first_correct(probs, labels, 1).values() if v][:3]
    return [
        draw[method](model, faces[i], out / f"{method}_{model.labels[labels[i]]}.png")
        for method in methods
        for i in picks
    ]


def shrink_png(path: Path) -> None:
    """Re-save a figure with a 256-colour palette: about a third of the size, for the repo."""
    from PIL import Image

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    palette = rgb.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette.save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="model name or checkpoint path")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="fer2013.csv[.gz]")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    parser.add_argument("--per-class", type=int, default=3, help="Grad-CAM faces per class")
    parser.add_argument("--steps", type=int, default=128, help="filter-image steps")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    start = time.perf_counter()
    model = ferlab.load_model(args.model, device=args.device)
    data = ferlab.load_dataset(args.data, progress=True)
    test = data.subset("test")
    faces, labels = test.images.numpy(), test.labels.numpy()
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{len(faces)} PrivateTest faces; predicting with tta={model.tta}")
    probs = model.predict_proba(faces)

    wrong = misclassified(model, data, "test")
    figures = [
        lambda: [gradcam_per_class(model, faces, labels, probs, args.per_class, args.out)],
        lambda: [cam_methods(model, faces, labels, probs, args.out)],
        lambda: [plot_misclassified(wrong, args.out / "misclassified_test.png")],
        lambda: [filters_figure(model, args.out / "filters.png", steps=args.steps)],
        lambda: (
            [se_per_class(model, faces, labels, args.out)]
            if "se" in supported_methods(model)
            else []
        ),
        lambda: own_attention(model, faces, labels, probs, args.out),
    ]
    written: list[Path] = []
    for make in figures:
        tick = time.perf_counter()
        for path in make():
            shrink_png(path)
            written.append(path)
            print(f"{path.name}: {time.perf_counter() - tick:.0f} s")

    accuracy = 1 - len(wrong.true) / wrong.total
    lines = [
        "# Explanation gallery",
        "",
        f"Generated by `docs/gallery/make_gallery.py` from model `{model.name}` "
        f"(`{model.meta['model']['name']}`) on the {len(faces)} FER2013 PrivateTest faces, "
        f"taken in file order. Its PrivateTest accuracy with its test-time augmentation "
        f"(`{model.tta}`): {accuracy:.2%}. See `docs/explain.md` for the methods.",
        "",
    ]
    lines += [f"![{p.stem}]({p.name})\n" for p in written]
    (args.out / "README.md").write_text("\n".join(lines))
    print(
        f"wrote {len(written)} figures and README.md to {args.out} "
        f"in {time.perf_counter() - start:.0f} s"
    )


if __name__ == "__main__":
    main()
