"""``ferlab serve`` as a user runs it: a separate process on localhost, stopped with Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from tests.cli.cli_helpers import run

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_runs_until_ctrl_c(checkpoint):
    port = free_port()
    env = {**os.environ, "FERLAB_API_KEY": "from-env", "OMP_NUM_THREADS": "1"}
    argv = [
        sys.executable,
        "-m",
        "ferlab",
        "serve",
        "--port",
        str(port),
        "--model",
        str(checkpoint),
    ]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "ferlab serve did not come up"
            time.sleep(0.2)
        assert httpx.get(f"{url}/v1/models").status_code == 401  # the key came from the env
        info = httpx.get(f"{url}/v1/models", headers={"X-API-Key": "from-env"}).json()
        assert info["name"] == "best" and len(info["labels"]) == 7
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert f"on http://127.0.0.1:{port}" in err and "Traceback" not in err


def test_serve_usage_errors_are_one_line(checkpoint, capsys):
    code, _, err = run(["serve", "--model", "no-such-model", "--port", "1"], capsys)
    assert code == 2 and "unknown model" in err and "Traceback" not in err
    code, _, err = run(["serve", "--color", "joy=#ffffff", "--model", str(checkpoint)], capsys)
    assert code == 2 and "'joy'" in err and "happy" in err
    code, _, err = run(
        ["serve", "--webhook", "file:///etc/passwd", "--model", str(checkpoint)], capsys
    )
    assert code == 2 and "http:// or https://" in err


def test_api_key_from_a_file_never_both_and_a_warning_for_the_command_line(tmp_path, capsys):
    from ferlab.cli.serve import _api_key

    key_file = tmp_path / "key.txt"
    key_file.write_text("s3cret-from-file\nsecond line ignored\n")
    assert _api_key(None, key_file) == "s3cret-from-file"
    assert capsys.readouterr().err == ""
    assert _api_key("typed", None) == "typed"
    assert "visible to every local user" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("\n")
    for argv, words in (
        (["--api-key", "a", "--api-key-file", str(key_file)], "not both"),
        (["--api-key-file", str(tmp_path / "missing.txt")], "cannot read the API key file"),
        (["--api-key-file", str(tmp_path / "empty.txt")], "is empty"),
    ):
        code, _, err = run(["serve", *argv, "--port", "1"], capsys)
        assert code == 2 and words in err and "Traceback" not in err
