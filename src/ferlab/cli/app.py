"""Entry point of the ``ferlab`` command.

Each area of the package contributes its verbs from its own module (``ferlab.cli.<area>``) through
a ``register(app)`` function, so the modules stay small and heavy imports (torch, OpenCV) happen
inside the verbs that need them, keeping ``ferlab --help`` fast.
"""

from __future__ import annotations

import sys

import typer

from ferlab import __version__
from ferlab.cli.console import CliConsole, escape
from ferlab.errors import FerlabError

app = typer.Typer(
    name="ferlab",
    help="Facial emotion recognition: data, models, training, prediction and serving.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

err_console = CliConsole(stderr=True)

_AREAS = ("data", "models", "train", "predict", "serve", "explain", "export")

#: Packages only ``ferlab[train]`` installs: training, evaluation, explanations and export.
_TRAIN_EXTRA_MODULES = ("torch", "onnx")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ferlab {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Facial emotion recognition toolkit."""


def _register_areas() -> None:
    import importlib

    for area in _AREAS:
        try:
            module = importlib.import_module(f"ferlab.cli.{area}")
        except ModuleNotFoundError as exc:
            if exc.name != f"ferlab.cli.{area}":
                raise
            continue  # area not built in this install
        module.register(app)


_register_areas()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors print one clear line and exit with status 2."""
    try:
        # standalone_mode=False returns a command's typer.Exit code instead of exiting.
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except FerlabError as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(2)
    except ModuleNotFoundError as exc:
        if exc.name not in _TRAIN_EXTRA_MODULES:
            raise
        command = " ".join(a for a in (argv or sys.argv[1:])[:1] if not a.startswith("-"))
        err_console.print(
            f"[bold red]error:[/] ferlab {command} needs {exc.name}, which this install lacks: "
            f"pip install 'ferlab\\[train]' (the plain install predicts with ONNX Runtime)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(1)
    except Exception as exc:  # click usage errors carry their own exit code
        if isinstance(exc, _usage_errors()):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _usage_errors() -> tuple[type[Exception], ...]:
    """Click's usage-error classes: recent typer releases vendor their own copy of click, whose
    errors (e.g. a value below an option's ``min``) are not ``click.ClickException``."""
    import click

    found: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException
    except ImportError:
        return tuple(found)
    return (*found, ClickException)
