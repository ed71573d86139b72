"""Checkpoints carry a SHA-256 digest of their tensors: damaged weights are a clear error."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import cv2
import pytest
import torch
from engine_helpers import synthetic_data

from ferlab.engine import load_checkpoint, read_checkpoint, train
from ferlab.engine.checkpoint import DIGEST_KEY, release_checkpoint, tensors_sha256
from ferlab.engine.recipe import DataSection, EvalSection, ModelSection, Recipe, TrainSection
from ferlab.errors import DataError
from tests.cli.cli_helpers import run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small ``best.pt`` written by the engine (a few thousand weights)."""
    from engine_helpers import register_tiny, unregister_tiny

    out = tmp_path_factory.mktemp("integrity") / "run"
    recipe = Recipe(
        name="tiny",
        model=ModelSection(name=register_tiny()),
        data=DataSection(crop=44),
        train=TrainSection(epochs=1, batch_size=32),
        eval=EvalSection(plots=False),
    )
    train(recipe, data=synthetic_data(n=100), out_dir=out)
    yield out / "best.pt"
    unregister_tiny()


def _flip(path: Path, start: int, count: int = 200) -> None:
    data = bytearray(path.read_bytes())
    for i in range(start, start + count):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def _largest_tensor_offset(path: Path) -> int:
    """Where the bytes of the checkpoint's largest stored tensor start in the file."""
    with zipfile.ZipFile(path) as archive:
        info = max(
            (i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size
        )
    with path.open("rb") as f:  # the local header: 30 bytes, the name, the extra field
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
    return info.header_offset + 30 + name_len + extra_len


def test_engine_checkpoints_carry_a_digest_of_their_tensors(checkpoint: Path, tmp_path) -> None:
    for name in ("best.pt", "last.pt"):
        ckpt = read_checkpoint(checkpoint.with_name(name))
        assert ckpt[DIGEST_KEY] == tensors_sha256(ckpt)
    released = release_checkpoint(checkpoint, tmp_path / "model.pt", tta="flip")
    assert read_checkpoint(tmp_path / "model.pt")[DIGEST_KEY] == tensors_sha256(released)


def test_flipped_weight_bytes_are_a_clear_error(checkpoint: Path, tmp_path) -> None:
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(checkpoint.read_bytes())
    _flip(damaged, _largest_tensor_offset(damaged) + 16)
    # torch alone reads the damaged file without complaint: the digest is what notices.
    torch.load(damaged, map_location="cpu", weights_only=True)
    with pytest.raises(DataError, match="corrupted.*SHA-256") as err:
        load_checkpoint(damaged)
    assert str(damaged) in str(err.value)


def test_cli_exits_non_zero_naming_the_damaged_file(checkpoint: Path, tmp_path, capsys) -> None:
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(checkpoint.read_bytes())
    _flip(damaged, damaged.stat().st_size // 2)  # the middle of the file, whatever lies there
    photo = tmp_path / "photo.png"
    cv2.imwrite(str(photo), synthetic_data(n=1).images[0].numpy())
    for argv in (
        ["evaluate", str(damaged), "--data", str(tmp_path)],
        ["predict", str(photo), "--model", str(damaged)],
    ):
        code, out, err = run(argv, capsys)
        assert code != 0, argv
        assert f"{damaged}: " in err and "Traceback" not in err + out, err
        assert len(err.strip().splitlines()) == 1, err


def test_checkpoints_without_a_digest_still_load(checkpoint: Path, tmp_path) -> None:
    old = {k: v for k, v in read_checkpoint(checkpoint).items() if k != DIGEST_KEY}
    torch.save(old, tmp_path / "old.pt")  # as ferlab wrote checkpoints before the digest
    model, meta = load_checkpoint(tmp_path / "old.pt")
    assert DIGEST_KEY not in meta and sum(p.numel() for p in model.parameters()) > 0


def test_stale_temp_files_are_removed_when_a_run_resumes(checkpoint: Path, tmp_path) -> None:
    import io
    import shutil
    import subprocess
    import sys

    from rich.console import Console

    from ferlab.engine.recipe import apply_overrides
    from ferlab.engine.trainer import resume_recipe

    run_dir = shutil.copytree(checkpoint.parent, tmp_path / "run")
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    stale = run_dir / f".last.pt.{int(gone.stdout)}.tmp"  # left by a process killed mid-write
    live = run_dir / f".best.pt.{os.getppid()}.tmp"  # a process still running: not touched
    stale.write_bytes(b"partial")
    live.write_bytes(b"partial")
    # The run used its whole (tiny) budget: resuming says the budget is a total.
    recipe = apply_overrides(resume_recipe(run_dir), {"train.time_budget": "0.001s"})
    log = io.StringIO()
    train(
        recipe,
        data=synthetic_data(n=100),
        out_dir=run_dir,
        resume=True,
        console=Console(file=log, width=200),
    )
    assert not stale.exists() and live.exists()
    assert "the budget is the whole run's, across resumes; nothing is left" in log.getvalue()
