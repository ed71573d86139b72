"""Shared pieces of the CLI tests: running ``ferlab`` in-process as the console script does."""

from __future__ import annotations

import pytest

from ferlab.cli.app import main


def run(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run ``ferlab ARGV`` through the real entry point; its exit status, stdout and stderr.

    The entry point ends with ``SystemExit`` on errors (and on ``--help``), so that is caught and
    turned into the status a shell would see.
    """
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
