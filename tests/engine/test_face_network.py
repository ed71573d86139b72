"""Meen et al.'s face network through the engine: its own run, then frozen inside Models 1–3."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from engine_helpers import synthetic_data

from ferlab.data.dataset import FERData
from ferlab.engine import load_checkpoint, read_checkpoint, train
from ferlab.engine.face_network import face_recipe
from ferlab.engine.recipe import (
    AugmentSection,
    DataSection,
    EvalSection,
    ModelSection,
    OptimSection,
    Recipe,
    TrainSection,
    apply_overrides,
    load_recipe,
)
from ferlab.errors import DataError
from ferlab.models import create_model

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
SLIM = {"width": 0.0625}  # VGG19 at a sixteenth of its channels: the shapes, in seconds


def _face_data() -> FERData:
    data = synthetic_data(n=160, seed=1)
    return FERData(
        images=data.images, labels=data.labels % 2, split=data.split, classes=("face", "nonface")
    )


def _train_face(out: Path, *, width: float = 0.0625, normalize: str = "global") -> Path:
    recipe = Recipe(
        name="face",
        model=ModelSection(name="face_vgg19", kwargs={"width": width}),
        data=DataSection(crop=44, normalize=normalize),
        train=TrainSection(epochs=1, batch_size=32),
        eval=EvalSection(plots=False),
    )
    train(recipe, data=_face_data(), out_dir=out)
    return out / "best.pt"


@pytest.fixture(scope="module")
def face_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (barely) trained face / non-face run at a sixteenth of VGG19's width."""
    return _train_face(tmp_path_factory.mktemp("face") / "run")


def _emotion_recipe(model: str, kwargs: dict, face: Path, **data_kw) -> Recipe:
    return Recipe(
        name="emotion",
        model=ModelSection(name=model, kwargs={**kwargs, **SLIM}, face_checkpoint=str(face)),
        data=DataSection(crop=44, **data_kw),
        augment=AugmentSection(flip=True),
        # Weight decay and an EMA too: neither may reach the frozen face network.
        optim=OptimSection(name="sgd", lr=0.05, momentum=0.9, weight_decay=5e-4),
        train=TrainSection(epochs=1, batch_size=32, ema=0.9),
        eval=EvalSection(plots=False),
    )


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        ("facial_attention_m1", {"features": "all", "combine": "weighted"}),
        ("facial_attention_m2", {"features": "all", "combine": "concat"}),
        ("facial_attention_m3", {"mode": "facial"}),
        ("facial_attention_m3", {"mode": "combination"}),
        ("facial_attention_m3", {"mode": "separately"}),
    ],
)
def test_models_1_to_3_train_with_the_face_network_bit_for_bit_unchanged(
    model: str, kwargs: dict, face_checkpoint: Path, tmp_path: Path
) -> None:
    data = synthetic_data(n=200)  # 140 training images: four steps of 32
    result = train(_emotion_recipe(model, kwargs, face_checkpoint), data=data, out_dir=tmp_path)
    assert result.metrics["steps"] == 4
    # Both metrics.json record the face network's file digest: the report matches them.
    sha = hashlib.sha256(face_checkpoint.read_bytes()).hexdigest()
    face_metrics = json.loads((face_checkpoint.parent / "metrics.json").read_text())
    emotion_metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert face_metrics["best_sha256"] == sha == emotion_metrics["face_network"]["sha256"]
    assert (
        emotion_metrics["best_sha256"]
        == hashlib.sha256((tmp_path / "best.pt").read_bytes()).hexdigest()
    )
    face = read_checkpoint(face_checkpoint)
    emotion = read_checkpoint(tmp_path / "best.pt")
    for key, value in face["state_dict"].items():  # weights and batch-norm statistics
        assert torch.equal(emotion["state_dict"][f"face_net.{key}"], value), key
    torch.manual_seed(0)  # the engine builds the model right after seeding with train.seed
    initial = create_model(model, **kwargs, **SLIM, num_classes=7, input_size=44).state_dict()
    changed = [
        k
        for k, v in emotion["state_dict"].items()
        if k.startswith("emotion_net.") and not torch.equal(v, initial[k])
    ]
    assert changed, "the emotion network did not train"
    # The face network sees its own data's normalisation.
    pre, face_pre = emotion["preprocess"], face["preprocess"]
    torch.testing.assert_close(
        emotion["state_dict"]["face_input_scale"], pre["std"] / face_pre["std"]
    )
    torch.testing.assert_close(
        emotion["state_dict"]["face_input_shift"],
        (pre["mean"] - face_pre["mean"]) / face_pre["std"],
    )


@pytest.mark.slow
def test_the_emotion_checkpoint_works_without_the_face_checkpoint(
    face_checkpoint: Path, tmp_path: Path
) -> None:
    face = shutil.copy(face_checkpoint, tmp_path / "face.pt")
    sha = hashlib.sha256(Path(face).read_bytes()).hexdigest()
    recipe = _emotion_recipe("facial_attention_m1", {"features": "average"}, Path(face))
    train(recipe, data=synthetic_data(n=200), out_dir=tmp_path / "m1")
    x = torch.randn(3, 1, 44, 44)
    model, meta = load_checkpoint(tmp_path / "m1" / "best.pt")
    with torch.no_grad():
        before = model(x)
    Path(face).unlink()

    for name in ("best.pt", "last.pt"):
        model, meta = load_checkpoint(tmp_path / "m1" / name)
        provenance = meta["face_network"]
        assert provenance["sha256"] == sha and provenance["path"] == str(Path(face).resolve())
        assert provenance["classes"] == ["face", "nonface"]
        assert provenance["model"]["name"] == "face_vgg19"
    model, _ = load_checkpoint(tmp_path / "m1" / "best.pt")
    with torch.no_grad():
        assert torch.equal(model(x), before)
    # Resuming needs no face checkpoint either: the weights come from last.pt.
    more = apply_overrides(recipe, {"train.epochs": 2})
    result = train(more, data=synthetic_data(n=200), out_dir=tmp_path / "m1", resume=True)
    assert result.metrics["epochs"] == 2
    assert read_checkpoint(tmp_path / "m1" / "best.pt")["face_network"]["sha256"] == sha


def test_a_face_network_that_does_not_fit_is_a_clear_error(
    face_checkpoint: Path, tmp_path: Path
) -> None:
    data = synthetic_data(n=200)
    wide = _emotion_recipe("facial_attention_m1", {}, face_checkpoint)
    wide.model.kwargs["width"] = 0.125
    with pytest.raises(DataError, match="trained with width 0.0625") as err:
        train(wide, data=data, out_dir=tmp_path / "wide")
    assert str(face_checkpoint) in str(err.value)
    uncropped = _emotion_recipe("facial_attention_m1", {}, face_checkpoint)
    uncropped.data.crop = None
    with pytest.raises(DataError, match="trained on 44×44 input but this recipe feeds 48×48"):
        train(uncropped, data=data, out_dir=tmp_path / "uncropped")
    equalised = _emotion_recipe("facial_attention_m1", {}, face_checkpoint, hist_eq=True)
    with pytest.raises(DataError, match="hist_eq"):
        train(equalised, data=data, out_dir=tmp_path / "equalised")
    per_pixel = _train_face(tmp_path / "face_pp", normalize="per_pixel")
    with pytest.raises(DataError, match="per_pixel"):
        train(
            _emotion_recipe("facial_attention_m1", {}, per_pixel),
            data=data,
            out_dir=tmp_path / "pp",
        )


def test_train_face_is_the_face_recipe_of_the_paper() -> None:
    """``ferlab train face`` trains what recipes/meen_face_vgg19.yaml describes."""
    from ferlab.cli.train import _resolve_recipe

    builtin = _resolve_recipe("face")
    assert builtin.to_dict() == face_recipe().to_dict()
    shipped = load_recipe(RECIPES / "meen_face_vgg19.yaml")
    for section in ("model", "augment", "optim", "schedule", "train", "eval"):
        assert getattr(builtin, section) == getattr(shipped, section), section
    assert builtin.data.path is None and builtin.data.crop == shipped.data.crop
    assert builtin.name == "meen_face_vgg19"  # writes runs/meen_face_vgg19, where recipes look
    small = load_recipe(RECIPES / "meen_small_face.yaml")
    assert small.model.kwargs == {"width": 0.125}
    assert small.optim == shipped.optim and small.schedule == shipped.schedule


@pytest.mark.slow
def test_the_small_face_network_beats_89_percent_on_face_nonface(
    datasets_dir: Path, tmp_path: Path
) -> None:
    """A short CPU run of recipes/meen_small_face.yaml separates faces from non-faces."""
    data_dir = datasets_dir / "face-nonface"
    if not data_dir.is_dir():
        pytest.skip(f"face-nonface not found at {data_dir}")
    recipe = apply_overrides(
        load_recipe(RECIPES / "meen_small_face.yaml"),
        {"data.path": str(data_dir), "train.epochs": 4, "train.batch_size": 32},
    )
    recipe.eval.plots = False
    result = train(recipe, out_dir=tmp_path)
    test = result.metrics["test"]
    assert test["n"] == 500
    # Four epochs reach 93-95 %, and where in that range depends on the CPU: oneDNN's kernels
    # differ per CPU kind, so the run takes another path, as with another seed. Measured on an
    # Intel Xeon (AVX-512 BF16): 0.946 (seed 0, the default), 0.940, 0.928, 0.938 (seeds 1-3).
    # The floor is the lowest of these minus three binomial standard errors of a 500-image
    # test (sqrt(0.928 × 0.072 / 500) = 0.012): 0.928 - 0.035 ≈ 0.89, far above chance (0.5).
    assert test["accuracy"] > 0.89, test["confusion"]
