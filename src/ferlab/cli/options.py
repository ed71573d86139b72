"""Data options shared by every command that reads a dataset.

``ferlab data info/check``, training and evaluation all take the same ``PATH`` and data options;
they are declared once here as ``Annotated`` types so that each command states them in one line,
for example ``ferplus: FerplusOption = None``, and :func:`load_from_cli` turns them into a
:class:`~ferlab.data.FERData`, reporting skipped rows and warnings on stderr.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ferlab.cli.console import CliConsole, escape
from ferlab.errors import UnknownNameError

if TYPE_CHECKING:
    from ferlab.data.dataset import FERData

__all__ = [
    "CacheDirOption",
    "DataPathArgument",
    "FerplusOption",
    "LabelsOption",
    "SeedOption",
    "SkipBadOption",
    "ValFractionOption",
    "check_choice",
    "load_from_cli",
    "passive_openmp",
    "print_warnings",
]

_LABEL_HELP = (
    "Labels: fer2013 (the CSV's own), or with --ferplus one of ferplus-majority, "
    "ferplus-probability, ferplus-crossentropy, ferplus-multi, or fer2013-ferplus (FER2013's "
    "labels with FER+ votes blended into soft targets)."
)

DataPathArgument = Annotated[
    Path,
    typer.Argument(
        help="fer2013.csv[.gz], icml_face_data.csv, an image-folder release (folder or .zip) "
        "or an ImageFolder with train/, optional val/, test/.",
        show_default=False,
    ),
]
FerplusOption = Annotated[
    Path | None,
    typer.Option(
        "--ferplus",
        metavar="FILE",
        help="FER+ votes (fer2013new.csv), joined to the CSV by row position.",
    ),
]
LabelsOption = Annotated[str, typer.Option("--labels", metavar="MODE", help=_LABEL_HELP)]
CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        metavar="DIR",
        help="Cache of decoded arrays (default: $FERLAB_CACHE_DIR, else ~/.cache/ferlab).",
    ),
]
SkipBadOption = Annotated[
    bool,
    typer.Option("--skip-bad", help="Leave out bad rows/images (listed) instead of failing."),
]
ValFractionOption = Annotated[
    float,
    typer.Option(
        "--val-fraction",
        metavar="X",
        help="Share of train moved to val when an image folder has no val/ (stratified).",
    ),
]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of that val split.")]

_err = CliConsole(stderr=True)


def print_warnings(caught: list[warnings.WarningMessage]) -> None:
    """Show caught warnings as one-line messages on stderr (not Python's file:line form)."""
    for w in caught:
        _err.print(f"[yellow]warning:[/] {escape(str(w.message))}")


def passive_openmp() -> None:
    """Let idle OpenMP worker threads sleep instead of spinning.

    On a CPU shared with other busy processes, spinning workers made each training step of a
    small network about 15 times slower (measured on the 2-core development machine; see
    docs/training.md). The variable is read when torch loads, so the commands that run PyTorch
    set it before importing it; a value already in the environment wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def check_choice(value: str | None, choices: tuple[str, ...], option: str) -> None:
    """An option's value outside its choices is a one-line error listing them (unset passes)."""
    if value is not None and value not in choices:
        raise UnknownNameError(f"{option} value", value, list(choices))


def load_from_cli(
    path: Path,
    ferplus: Path | None,
    labels: str,
    cache_dir: Path | None,
    skip_bad: bool,
    val_fraction: float,
    seed: int,
    ferplus_weight: float = 0.4,
) -> FERData:
    """Load a dataset from the shared options, with progress bars and a skipped-rows summary.

    ``ferplus_weight``: the FER+ share of the ``fer2013-ferplus`` soft targets. Errors are
    :class:`~ferlab.errors.FerlabError`, which the ``ferlab`` entry point prints as one line.
    """
    from ferlab.data import load_dataset

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_dataset(
            path,
            ferplus=ferplus,
            labels=labels,
            cache_dir=cache_dir,
            skip_bad=skip_bad,
            val_fraction=val_fraction,
            seed=seed,
            progress=True,
            ferplus_weight=ferplus_weight,
        )
    print_warnings(caught)
    if data.skipped:
        n = len(data.skipped)
        _err.print(f"[yellow]skipped {n} bad row{'s' * (n > 1)}/image{'s' * (n > 1)}:[/]")
        for line in data.skipped[:10]:
            _err.print(f"  {line}", markup=False)
        if n > 10:
            _err.print(f"  ... and {n - 10} more (`ferlab data check` lists them all)")
    return data
