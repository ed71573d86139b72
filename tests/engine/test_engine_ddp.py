"""Data-parallel training (DDP over gloo on CPU) follows the single-process run."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.multiprocessing as mp
from engine_helpers import ddp_worker, synthetic_data

from ferlab.engine import read_checkpoint, train
from ferlab.engine.recipe import (
    AugmentSection,
    DataSection,
    EvalSection,
    ModelSection,
    OptimSection,
    Recipe,
    ScheduleSection,
    TrainSection,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one_process_with_the_same_global_batch(tiny_model, tmp_path):
    recipe = Recipe(
        name="ddp",
        # No dropout and no batch norm: those depend on how a batch is split across processes.
        model=ModelSection(name=tiny_model, kwargs={"dropout": 0.0}),
        data=DataSection(crop=44),
        augment=AugmentSection(flip=True, shift=0.1, rotate=5.0),
        optim=OptimSection(name="sgd", lr=0.05, momentum=0.9),
        schedule=ScheduleSection(kind="cosine"),
        # fp32: under bf16 autocast the two halves of a batch round differently from the whole.
        train=TrainSection(epochs=2, batch_size=32, precision="fp32"),
        eval=EvalSection(plots=False),
    )
    single = train(recipe, data=synthetic_data(), out_dir=tmp_path / "single")
    mp.spawn(
        ddp_worker,
        args=(2, _free_port(), str(tmp_path / "ddp"), recipe.to_dict()),
        nprocs=2,
        join=True,
    )
    a = read_checkpoint(tmp_path / "single" / "last.pt")
    b = read_checkpoint(tmp_path / "ddp" / "last.pt")
    assert b["train_state"]["world_size"] == 2 and b["step"] == a["step"] == 18
    for key, value in a["state_dict"].items():
        assert torch.allclose(value, b["state_dict"][key], atol=1e-5), key
    # Same validation accuracy per epoch, up to one of the 63 images flipping at a near-tie.
    for row_a, row_b in zip(a["train_state"]["history"], b["train_state"]["history"], strict=True):
        assert row_b["val_acc"] == pytest.approx(row_a["val_acc"], abs=1 / 63 + 1e-9)
        assert row_b["train_loss"] == pytest.approx(row_a["train_loss"], rel=1e-4)
    assert single.stop_reason == "completed"
