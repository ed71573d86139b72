"""``ferlab serve`` on a port already in use: one clear line, and no "serving on" before it."""

from __future__ import annotations

import socket

import pytest
from cli_helpers import run

pytest.importorskip("uvicorn", reason="the serve extra is not installed")


def test_a_port_in_use_is_one_clear_line_before_serving(capsys: pytest.CaptureFixture) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run(["serve", "--port", str(port), "--model", "default"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: Address already in use (choose another --port?)"
    ]
    assert "serving" not in out + err
