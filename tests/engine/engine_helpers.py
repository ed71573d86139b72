"""Shared pieces of the engine tests: a tiny registered model and synthetic datasets."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from ferlab.data.dataset import FER2013_CLASSES, FERPLUS_CLASSES, FERData
from ferlab.engine.recipe import Recipe
from ferlab.models._registry import _REGISTRY, register_model

TINY = "engine_test_tiny"


class TinyNet(nn.Module):
    """A few thousand parameters: fast enough for many short runs in the test suite."""

    def __init__(
        self, num_classes: int = 7, in_chans: int = 1, input_size: int = 48, dropout: float = 0.1
    ) -> None:
        super().__init__()
        self.num_classes, self.in_chans = num_classes, in_chans
        self.input_size = (in_chans, input_size, input_size)
        self.features = nn.Sequential(
            nn.Conv2d(in_chans, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten()
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def engine_test_tiny(**kwargs) -> TinyNet:
    return TinyNet(**kwargs)


def register_tiny() -> str:
    if TINY not in _REGISTRY:
        register_model(source="engine tests")(engine_test_tiny)
    return TINY


def unregister_tiny() -> None:
    _REGISTRY.pop(TINY, None)


def synthetic_data(n: int = 420, seed: int = 0, ferplus: str | None = None) -> FERData:
    """Images whose vertical brightness ramp encodes the class (learnable in a few steps).

    Splits: 70 % train, 15 % val, 15 % test. With ``ferplus`` (a FER+ mode such as
    ``"probability"``) labels are over the eight FER+ classes and ``targets`` hold a vote
    distribution peaking on the label.
    """
    classes = FERPLUS_CLASSES if ferplus else FER2013_CLASSES
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(classes), (n,), generator=g)
    ramp = torch.linspace(0, 1, 48)[None, :, None]
    noise = torch.rand(n, 48, 48, generator=g) * 60
    images = (noise + labels[:, None, None].float() * 24 * ramp).clamp(0, 255).to(torch.uint8)
    split = torch.zeros(n, dtype=torch.int8)
    split[int(n * 0.7) : int(n * 0.85)] = 1
    split[int(n * 0.85) :] = 2
    targets = None
    if ferplus:
        targets = torch.rand(n, len(classes), generator=g) * 0.2
        targets[torch.arange(n), labels] += 1.0
        if ferplus == "multi":
            targets = (targets > 0.15).float()
        else:
            targets = targets / targets.sum(1, keepdim=True)
    return FERData(
        images=images,
        labels=labels,
        split=split,
        classes=tuple(classes),
        targets=targets,
        source="synthetic",
        label_mode=f"ferplus-{ferplus}" if ferplus else "fer2013",
    )


def ddp_worker(rank: int, world: int, port: int, out_dir: str, recipe_dict: dict) -> None:
    """One process of a CPU (gloo) data-parallel run, started by ``torch.multiprocessing``."""
    import os

    from ferlab.engine import recipe_from_dict, train

    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
    )
    register_tiny()
    train(recipe_from_dict(recipe_dict), data=synthetic_data(), out_dir=out_dir)


def write_synthetic_csv(path: Path, n: int = 210) -> Path:
    """:func:`synthetic_data` as a challenge CSV: two thirds Training, then PublicTest and
    PrivateTest in equal parts."""
    from tests.data.fer_builders import csv_row, write_csv

    data = synthetic_data(n=n)
    rows = []
    for i, (label, image) in enumerate(zip(data.labels.tolist(), data.images.numpy(), strict=True)):
        part = 0 if i < 2 * n // 3 else (1 if i < 5 * n // 6 else 2)
        usage = ("Training", "PublicTest", "PrivateTest")[part]
        rows.append(csv_row(label, image, usage))
    return write_csv(path, rows)


def trained_checkpoint(
    out_dir: Path, model: str, *, epochs: int, n: int, crop: int | None = None
) -> Path:
    """``best.pt`` of a short real run of ``model`` on ``n`` learnable synthetic faces (Adam at
    lr 0.01, batch 64; ``crop``: train on centre crops of that side)."""
    from ferlab.engine import recipe_from_dict, train

    raw: dict = {
        "model": {"name": model},
        "optim": {"name": "adam", "lr": 0.01},
        "train": {"epochs": epochs, "batch_size": 64},
        "eval": {"plots": False},
    }
    if crop is not None:
        raw["data"] = {"crop": crop}
    train(recipe_from_dict(raw), data=synthetic_data(n), out_dir=out_dir)
    return out_dir / "best.pt"


def train_killed_at_step_14(recipe: Recipe, data: FERData, out_dir: Path) -> None:
    """Train until step 14, then stop the way a killed process would: no checkpoint at exit."""

    class Killed(Exception):
        pass

    def kill(info):
        if info.step == 14:
            raise Killed

    from ferlab.engine import train

    with pytest.raises(Killed):
        train(recipe, data=data, out_dir=out_dir, callbacks=[kill])
