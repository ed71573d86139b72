"""``ferlab explain``: PNG figures of what a model attends to.

``ferlab explain MODEL --images PATH --out DIR --method M`` writes one figure per face
(``<image>[_face<i>]_<method>.png``) for the face methods — the heat maps (``gradcam``,
``gradcam++``, ``layercam``, ``scorecam``) and the models' own attention (``stn``,
``attention``, ``se``, ``facial``) — and one figure per run for ``filters`` (no images needed)
and ``misclassified`` (needs the dataset). ``MODEL`` is a shipped model name, a checkpoint path,
or a zoo model name (random weights: for looking at an architecture's mechanics only).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ferlab.cli.console import CliConsole, escape
from ferlab.cli.options import CacheDirOption, FerplusOption

if TYPE_CHECKING:
    from ferlab.explain.faces import FaceCrop

_err = CliConsole(stderr=True)
_out = CliConsole()

_FACE_METHODS = ("gradcam", "gradcam++", "layercam", "scorecam", "stn", "attention", "se", "facial")
_METHODS = (*_FACE_METHODS, "filters", "misclassified")


def register(app: typer.Typer) -> None:
    """Add ``explain`` to the ``ferlab`` command."""
    app.command("explain")(explain)


def _load(spec: str, device: str) -> Any:
    """A shipped name or checkpoint through ``load_model``; a zoo name as a fresh network."""
    from ferlab.errors import UnknownNameError
    from ferlab.inference import SHIPPED, load_model
    from ferlab.models import create_model, list_models

    if spec in SHIPPED or Path(spec).exists():
        return load_model(spec, device=device, runtime="torch")
    if spec in list_models():
        _err.print(
            f"[yellow]warning:[/] '{escape(spec)}' is a zoo architecture with random weights; "
            "pass a checkpoint to explain a trained model"
        )
        return create_model(spec).eval()
    raise UnknownNameError(
        "model (shipped name, checkpoint path or zoo name)", spec, [*SHIPPED, *list_models()]
    )


def _parse_numbers(text: str | None, option: str, count: int) -> list[float] | None:
    from ferlab.errors import FerlabError

    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or (count and len(values) != count):
        shape = "X,Y" if count == 2 else "comma-separated numbers"
        raise FerlabError(f"{option} must be {shape}, got '{text}'")
    return values


def explain(
    model: Annotated[
        str,
        typer.Argument(
            metavar="CHECKPOINT_OR_MODEL",
            help="Shipped model name (default), checkpoint path, or zoo model name (random "
            "weights).",
            show_default=False,
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the PNGs.")],
    images: Annotated[
        list[Path] | None,
        typer.Option(
            "--images",
            "-i",
            metavar="PATH",
            help="Face crop, photo or folder of them (repeat the option for more). Photos are "
            "searched for faces like ferlab predict does.",
        ),
    ] = None,
    method: Annotated[str, typer.Option("--method", "-m", help=", ".join(_METHODS))] = "gradcam",
    target: Annotated[
        str | None,
        typer.Option(
            "--target",
            metavar="CLASS",
            help="Heat maps: explain this class for every "
            "face (name or index; FER+ spellings such as happiness accepted) instead of the top "
            "three.",
        ),
    ] = None,
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer",
            metavar="NAME",
            help="Heat maps and filters: the layer to use (default: the last convolutional block).",
        ),
    ] = None,
    faces_mode: Annotated[
        str,
        typer.Option(
            "--faces",
            help="auto: images up to 128 px are face crops, larger ones are searched; detect: "
            "search every image; whole: every image is one face.",
        ),
    ] = "auto",
    detector: Annotated[
        str, typer.Option("--detector", metavar="NAME", help="Face detector: haar, haar-profile.")
    ] = "haar",
    query: Annotated[
        str | None,
        typer.Option("--query", metavar="X,Y", help="attention: query pixel (default: centre)."),
    ] = None,
    filters: Annotated[
        str | None,
        typer.Option(
            "--filters",
            metavar="I,J,...",
            help="filters: channels to visualise "
            "(default: the --count most excited by the starting noise).",
        ),
    ] = None,
    count: Annotated[int, typer.Option("--count", min=1, help="filters: how many.")] = 8,
    steps: Annotated[
        int, typer.Option("--steps", min=1, help="filters: gradient-ascent steps.")
    ] = 128,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            metavar="PATH",
            help="misclassified: the dataset (default: the one the model was trained on).",
        ),
    ] = None,
    split: Annotated[
        str, typer.Option("--split", help="misclassified: val (PublicTest) or test.")
    ] = "val",
    per_class: Annotated[
        int, typer.Option("--per-class", min=1, help="misclassified: faces per class.")
    ] = 8,
    ferplus: FerplusOption = None,
    cache_dir: CacheDirOption = None,
    device: Annotated[
        str,
        typer.Option(
            "--device", help="Where a shipped model or checkpoint runs: auto, cpu or cuda."
        ),
    ] = "auto",
    json_out: Annotated[
        bool, typer.Option("--json", help="Print the written files and faces as JSON.")
    ] = False,
) -> None:
    """Explain a model: heat maps, its own attention, filter images, misclassified faces."""
    from ferlab.cli.options import passive_openmp
    from ferlab.errors import FerlabError, UnknownNameError

    if method not in _METHODS:
        raise UnknownNameError("explain method", method, list(_METHODS))
    if method in _FACE_METHODS and not images:
        raise FerlabError(f"--method {method} explains faces: give them with --images PATH")
    passive_openmp()
    from ferlab.explain import supported_methods

    net = _load(model, device)
    supported = supported_methods(net)
    if method not in supported:
        raise FerlabError(
            f"model '{model}' does not support --method {method}; it supports: "
            f"{', '.join(supported)}"
        )
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"model": model, "method": method, "files": [], "faces": []}
    if method == "filters":
        report["files"] = [str(_filters(net, out, filters, count, steps, layer, not json_out))]
    elif method == "misclassified":
        report["files"] = [
            str(_misclassified(net, out, data, split, per_class, ferplus, cache_dir))
        ]
    else:
        _explain_faces(
            net,
            images or [],
            out,
            method,
            report,
            faces_mode,
            detector,
            target,
            layer,
            query,
            progress=not json_out,
        )
    if json_out:
        sys.stdout.write(json.dumps(report) + "\n")
        return
    for file in report["files"]:
        _out.print(file, markup=False)
    if not report["files"]:
        raise typer.Exit(1)


def _explain_faces(
    net: Any,
    images: list[Path],
    out: Path,
    method: str,
    report: dict[str, Any],
    faces_mode: str,
    detector: str,
    target: str | None,
    layer: str | None,
    query: str | None,
    *,
    progress: bool,
) -> None:
    from ferlab.data._progress import progress_bar
    from ferlab.explain.faces import faces_from_images

    crops, notes = faces_from_images(images, faces_mode, detector=detector)
    for note in notes:
        _err.print(f"[yellow]warning:[/] {escape(note)}")
    point = _parse_numbers(query, "--query", 2)
    with progress_bar(f"{method} figures", len(crops), progress) as bar:
        for done, crop in enumerate(crops, start=1):
            path = out / f"{crop.name}_{method}.png"
            report["files"].append(str(_face_figure(net, crop, path, method, target, layer, point)))
            report["faces"].append(_face_entry(net, crop, path))
            bar(done)


def _face_figure(
    net: Any,
    crop: FaceCrop,
    path: Path,
    method: str,
    target: str | None,
    layer: str | None,
    point: list[float] | None,
) -> Path:
    from ferlab.explain import figures
    from ferlab.explain.cam import CAM_METHODS, class_activation_maps, overlay_heatmap

    face = crop.face
    if method in CAM_METHODS:
        if target is None:
            return figures.heatmap_figure(net, face, path, method, layer=layer)
        result = class_activation_maps(net, face, method, target, layer=layer)
        tiles = [(face, "input"), (overlay_heatmap(face, result.maps[0]), f"{target}")]
        return figures.save_tiles([tiles], path, title=f"{method} at {result.layer}")
    if method == "stn":
        return figures.stn_figure(net, face, path)
    if method == "attention":
        return figures.attention_figure(net, face, path, None if point is None else tuple(point))
    if method == "se":
        return figures.se_figure(net, face, path)
    return figures.facial_figure(net, face, path)


def _face_entry(net: Any, crop: FaceCrop, path: Path) -> dict[str, Any]:
    from ferlab.explain._subject import Subject

    entry: dict[str, Any] = {"name": crop.name, "source": crop.source, "file": str(path)}
    if crop.box is not None:
        entry["box"] = list(crop.box)
    subject = Subject(net)
    if hasattr(net, "predict_proba"):
        probs = net.predict_proba(crop.face)[0]
    else:
        import torch

        with torch.no_grad():
            logits = subject.network(subject.to_input(crop.face[None]))
        probs = torch.softmax(logits.float(), 1)[0].cpu().numpy()
    labels = [subject.label(i) for i in range(len(probs))]
    entry["label"] = labels[int(probs.argmax())]
    entry["scores"] = {k: round(float(p), 4) for k, p in zip(labels, probs, strict=True)}
    return entry


def _filters(
    net: Any,
    out: Path,
    filters: str | None,
    count: int,
    steps: int,
    layer: str | None,
    progress: bool,
) -> Path:
    from ferlab.explain.figures import filters_figure

    chosen = _parse_numbers(filters, "--filters", 0)
    picked = None if chosen is None else [int(v) for v in chosen]
    return filters_figure(
        net, out / "filters.png", picked, count=count, steps=steps, layer=layer, progress=progress
    )


def _misclassified(
    net: Any,
    out: Path,
    data: Path | None,
    split: str,
    per_class: int,
    ferplus: Path | None,
    cache_dir: Path | None,
) -> Path:
    from ferlab.cli.options import load_from_cli
    from ferlab.errors import FerlabError
    from ferlab.explain.misclassified import misclassified, plot_misclassified

    if split not in ("val", "test"):
        raise FerlabError(f"--split must be val or test, got '{split}'")
    if not hasattr(net, "meta"):
        raise FerlabError("--method misclassified needs a trained model: pass a checkpoint")
    trained = net.meta.get("recipe", {}).get("data", {})
    path = data if data is not None else trained.get("path")
    if not path:
        raise FerlabError("--method misclassified needs the dataset: pass --data PATH")
    labels = trained.get("labels", "fer2013")
    votes = ferplus if ferplus is not None else trained.get("ferplus")
    dataset = load_from_cli(
        Path(path),
        None if labels == "fer2013" or votes is None else Path(votes),
        labels,
        cache_dir if cache_dir is not None else trained.get("cache_dir"),
        False,
        trained.get("val_fraction", 0.1),
        int(net.meta.get("recipe", {}).get("train", {}).get("seed", 0)),
    )
    result = misclassified(net, dataset, split)
    wrong = len(result.true)
    _err.print(
        f"{wrong} of {result.total} {split} faces misclassified "
        f"(accuracy {1 - wrong / result.total:.2%}, model's own test-time augmentation)"
    )
    return plot_misclassified(result, out / f"misclassified_{split}.png", per_class=per_class)
