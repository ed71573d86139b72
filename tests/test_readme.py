"""README's fresh-machine commands: the test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_shows_two_commands_and_the_test_one_is_ci() -> None:
    quick_start = (ROOT / "README.md").read_text().split("## Quick start")[1].split("\n## ")[0]
    commands = re.findall(r"```bash\n(.*?)\n```", quick_start, re.S)
    assert len(commands) == 2, commands  # the main job, the tests
    assert commands[1] == "bash .ci/run"
    assert "pytest -q" in (ROOT / ".ci" / "run").read_text()
