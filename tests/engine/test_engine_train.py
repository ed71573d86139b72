"""End-to-end behaviour of the training loop on a tiny model and synthetic data."""

from __future__ import annotations

import json
import os
import signal
import time
from types import SimpleNamespace

import pytest
import torch
from engine_helpers import synthetic_data, train_killed_at_step_14

from ferlab.data.dataset import FERData
from ferlab.engine import checkpoint as checkpoint_mod
from ferlab.engine import load_checkpoint, read_checkpoint, train
from ferlab.engine.recipe import (
    AugmentSection,
    DataSection,
    EvalSection,
    ModelSection,
    OptimSection,
    Recipe,
    ScheduleSection,
    TrainSection,
    apply_overrides,
)
from ferlab.errors import DataError, FerlabError


def _recipe(model: str, **train_kw) -> Recipe:
    kw = {"epochs": 2, "batch_size": 32}
    kw.update(train_kw)
    return Recipe(
        name="tiny",
        model=ModelSection(name=model),
        data=DataSection(crop=44, normalize="global"),
        augment=AugmentSection(flip=True, shift=0.1, rotate=8.0, erase=0.25),
        optim=OptimSection(name="sgd", lr=0.05, momentum=0.9, nesterov=True),
        schedule=ScheduleSection(kind="cosine", warmup_epochs=0.5),
        train=TrainSection(**kw),
        eval=EvalSection(tta="flip", plots=False),
    )


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_run_folder_contents_and_checkpoint_reload(tiny_model, tmp_path):
    data = synthetic_data()
    recipe = _recipe(tiny_model)
    recipe.eval.plots = True
    result = train(recipe, data=data, out_dir=tmp_path / "run")
    out = result.out_dir
    files = "config.yaml history.csv metrics.json last.pt best.pt curves.png confusion_val.png"
    for name in [*files.split(), "confusion_test.png", "misclassified_test.png"]:
        assert (out / name).is_file(), name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stop_reason"] == "completed" and metrics["steps"] == 2 * (294 // 32)
    assert metrics["test"]["n"] == 63 and metrics["val"]["n"] == 63
    # The synthetic classes are separable: two short epochs must beat chance (1/7) clearly.
    assert metrics["val"]["accuracy"] > 0.3
    history = (out / "history.csv").read_text().splitlines()
    assert len(history) == 3 and history[0].startswith("epoch,steps,lr")

    model, meta = load_checkpoint(out / "best.pt")
    assert not model.training
    assert meta["classes"] == list(data.classes)
    assert meta["input_size"] == (1, 44, 44) and meta["model"]["name"] == tiny_model
    # The checkpoint alone reproduces the reported test accuracy.
    test = data.subset("test")
    views = torch.from_numpy(meta["preprocess"](test.images.numpy(), tta="flip"))
    with torch.no_grad():
        probs = torch.stack([model(v).softmax(1) for v in views]).mean(0)
    acc = float((probs.argmax(1) == test.labels).float().mean())
    assert acc == pytest.approx(metrics["test"]["accuracy"])


def test_resume_after_kill_gives_identical_weights(tiny_model, tmp_path):
    """A run killed mid-epoch and resumed from its last checkpoint ends exactly like one that
    was never interrupted (same weights, EMA, history and metrics)."""
    data = synthetic_data()
    recipe = _recipe(tiny_model, epochs=3, ema=0.9, checkpoint_every_steps=4)
    a = train(recipe, data=data, out_dir=tmp_path / "a")
    # Epoch 2 runs steps 10-18; the last checkpoint was at step 12.
    train_killed_at_step_14(recipe, data, tmp_path / "b")
    saved = read_checkpoint(tmp_path / "b" / "last.pt")
    assert saved["step"] == 12 and saved["train_state"]["step_in_epoch"] == 3
    b = train(None, data=data, out_dir=tmp_path / "b", resume=True)

    last_a = read_checkpoint(a.out_dir / "last.pt")
    last_b = read_checkpoint(b.out_dir / "last.pt")
    assert _same_weights(last_a["state_dict"], last_b["state_dict"])  # EMA weights
    assert _same_weights(last_a["train_state"]["model_raw"], last_b["train_state"]["model_raw"])
    hist = ["train_loss", "train_acc", "val_acc", "val_loss", "lr", "steps"]
    rows_a, rows_b = last_a["train_state"]["history"], last_b["train_state"]["history"]
    assert [[r[k] for k in hist] for r in rows_a] == [[r[k] for k in hist] for r in rows_b]
    assert a.metrics["test"] == b.metrics["test"] and a.metrics["val"] == b.metrics["val"]


def test_last_checkpoint_alone_resumes_a_moved_run(tiny_model, tmp_path):
    """last.pt carries a copy of best.pt, so a run folder reduced to last.pt (copied to another
    machine, or kept in git between sessions) resumes and finishes like the original."""
    data = synthetic_data()
    recipe = _recipe(tiny_model, epochs=3, ema=0.9, checkpoint_every_steps=4)
    a = train(recipe, data=data, out_dir=tmp_path / "a")
    # Killed after epoch 1's best.pt and the step-12 last.pt.
    train_killed_at_step_14(recipe, data, tmp_path / "b")
    moved = tmp_path / "moved"
    moved.mkdir()
    os.replace(tmp_path / "b" / "last.pt", moved / "last.pt")
    b = train(None, data=data, out_dir=moved, resume=True)
    assert (moved / "best.pt").exists()
    assert a.metrics["test"] == b.metrics["test"] and a.metrics["val"] == b.metrics["val"]


def test_interrupt_signal_saves_and_resumes(tiny_model, tmp_path):
    """SIGINT (Ctrl-C) stops at the next step boundary with a checkpoint there."""
    data = synthetic_data()
    recipe = _recipe(tiny_model, epochs=2)

    def ctrl_c(info):
        if info.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    result = train(recipe, data=data, out_dir=tmp_path / "run", callbacks=[ctrl_c])
    assert result.interrupted and result.metrics == {}
    assert read_checkpoint(tmp_path / "run" / "last.pt")["step"] == 4
    assert signal.getsignal(signal.SIGINT) is handler  # the handler is restored
    done = train(None, data=data, out_dir=tmp_path / "run", resume=True)
    assert done.stop_reason == "completed" and done.metrics["steps"] == 18


def test_crash_while_writing_keeps_previous_checkpoint(tiny_model, tmp_path, monkeypatch):
    data = synthetic_data()
    out = tmp_path / "run"
    train(_recipe(tiny_model, epochs=1), data=data, out_dir=out)
    before = read_checkpoint(out / "last.pt")

    real_save = torch.save

    def torn_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(100)  # half-written file, then the "crash"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_mod.torch, "save", torn_save)
    with pytest.raises(OSError):
        train(_recipe(tiny_model, epochs=3), data=data, out_dir=out, resume=True)
    monkeypatch.undo()
    after = read_checkpoint(out / "last.pt")
    assert after["step"] == before["step"]
    assert _same_weights(after["state_dict"], before["state_dict"])
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []
    load_checkpoint(out / "last.pt")


def test_time_budget_stops_and_evaluates(tiny_model, tmp_path, monkeypatch):
    import ferlab.engine.trainer as trainer_mod

    # The trainer's wall clock advances 10 ms per reading (a few readings a step), so the outcome
    # does not depend on how fast or busy the machine is: on a real clock a CI machine loaded
    # 8x over spent the 3 s before the steps that measure the rate had run.
    ticks = iter(range(10**9))
    clock = SimpleNamespace(perf_counter=lambda: 1e-2 * next(ticks), process_time=time.process_time)
    monkeypatch.setattr(trainer_mod, "time", clock)
    data = synthetic_data(n=3000)
    recipe = _recipe(tiny_model, epochs=1000, time_budget="3s")
    result = train(recipe, data=data, out_dir=tmp_path / "run")
    m = result.metrics
    assert result.stop_reason == "time_budget"
    assert 0 < m["epochs"] < 1000 and m["test"] is not None
    # The schedule was laid over the estimated number of steps, not over 1000 epochs.
    total = read_checkpoint(tmp_path / "run" / "last.pt")["train_state"]["total_steps"]
    assert total < 1000 * (2100 // 32)


def test_cpu_budget_clock_counts_process_time(tiny_model, tmp_path, monkeypatch):
    """With ``budget_clock: cpu`` the budget runs on process CPU time, not on the wall clock."""
    import ferlab.engine.trainer as trainer_mod

    ticks = iter(range(10**9))
    # A fake CPU clock that advances 10 s per reading: a 1-hour CPU budget is spent within a few
    # hundred readings (a few per step), long before an hour of wall-clock time.
    monkeypatch.setattr(trainer_mod.time, "process_time", lambda: 10.0 * next(ticks))
    recipe = _recipe(tiny_model, epochs=1000, time_budget="1h", budget_clock="cpu")
    result = train(recipe, data=synthetic_data(n=600), out_dir=tmp_path / "run")
    m = result.metrics
    assert result.stop_reason == "time_budget" and m["budget_clock"] == "cpu"
    assert m["epochs"] < 100 and m["cpu_time_s"] >= 3000 and m["train_time_s"] < 3600


def test_early_stopping_and_plateau(tiny_model, tmp_path):
    data = synthetic_data()
    recipe = _recipe(tiny_model, epochs=30, early_stopping=2)
    recipe.optim.lr = 0.0  # nothing improves after the first epoch
    recipe.schedule = ScheduleSection(kind="plateau", patience=1)
    result = train(recipe, data=data, out_dir=tmp_path / "run")
    assert result.stop_reason == "early_stopping"
    assert result.metrics["epochs"] == 3 and result.metrics["best_epoch"] == 1


def test_min_epochs_holds_off_early_stopping_also_for_a_stopped_run(tiny_model, tmp_path):
    """A minimum given when resuming a run that early stopping ended takes it on from its last
    epoch to the minimum (what reproduce.py does for a recipe that gained one)."""
    data = synthetic_data()
    recipe = _recipe(tiny_model, epochs=30, early_stopping=2)
    recipe.optim.lr = 0.0  # nothing improves after the first epoch
    out = tmp_path / "run"
    assert train(recipe, data=data, out_dir=out).metrics["epochs"] == 3
    recipe.train.min_epochs = 6
    result = train(recipe, data=data, out_dir=out, resume=True)
    assert result.stop_reason == "early_stopping"
    assert result.metrics["epochs"] == 6 and result.metrics["best_epoch"] == 1
    epochs = (out / "history.csv").read_text().splitlines()[1:]
    assert [float(row.split(",")[0]) for row in epochs] == [1, 2, 3, 4, 5, 6]
    with pytest.raises(DataError, match="'train.min_epochs' \\(40\\) is more than"):
        apply_overrides(_recipe(tiny_model, epochs=30), {"train.min_epochs": 40})


@pytest.mark.parametrize("mode", ["probability", "crossentropy", "multi"])
def test_ferplus_soft_targets_train(tiny_model, tmp_path, mode):
    data = synthetic_data(ferplus=mode)
    recipe = _recipe(tiny_model, epochs=1, balanced_sampling=True, label_smoothing=0.1)
    result = train(recipe, data=data, out_dir=tmp_path / "run")
    assert result.metrics["label_mode"] == f"ferplus-{mode}"
    assert len(result.metrics["val"]["per_class"]) == 8


def test_existing_run_folder_is_not_overwritten(tiny_model, tmp_path):
    data = synthetic_data()
    train(_recipe(tiny_model, epochs=1), data=data, out_dir=tmp_path / "run")
    with pytest.raises(DataError, match="already holds a run"):
        train(_recipe(tiny_model, epochs=1), data=data, out_dir=tmp_path / "run")
    with pytest.raises(DataError, match="nothing to resume"):
        train(_recipe(tiny_model), data=data, out_dir=tmp_path / "other", resume=True)


def test_missing_corrupt_and_foreign_checkpoints(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"PK\x03\x04 definitely not a whole zip")
    with pytest.raises(DataError, match="not a readable checkpoint") as err:
        load_checkpoint(corrupt)
    assert str(corrupt) in str(err.value)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(2)}, foreign)
    with pytest.raises(DataError, match="not a ferlab checkpoint"):
        load_checkpoint(foreign)


def test_bad_options_are_user_errors(tiny_model, tmp_path):
    data = synthetic_data()
    with pytest.raises(FerlabError, match="fp16 needs CUDA"):
        train(_recipe(tiny_model, precision="fp16"), data=data, out_dir=tmp_path / "a")
    no_val = synthetic_data()
    no_val.split[no_val.split == 1] = 0
    with pytest.raises(DataError, match="no validation images"):
        train(_recipe(tiny_model), data=no_val, out_dir=tmp_path / "b")


def test_face_checkpoint_is_loaded_into_the_frozen_face_network(tiny_model, tmp_path):
    """Meen et al.'s attention models take a separately trained face / non-face network."""
    data = synthetic_data(n=200)
    faces = FERData(
        images=data.images, labels=data.labels % 2, split=data.split, classes=("face", "nonface")
    )
    slim = {"width": 0.125}  # an eighth of VGG19's channels keeps the test fast
    face_recipe = Recipe(
        name="face",
        model=ModelSection(name="face_vgg19", kwargs=slim),
        data=DataSection(crop=44),
        train=TrainSection(epochs=1, batch_size=32),
        eval=EvalSection(plots=False),
    )
    train(face_recipe, data=faces, out_dir=tmp_path / "face")
    face_ckpt = tmp_path / "face" / "best.pt"
    recipe = Recipe(
        name="m1",
        model=ModelSection(name="facial_attention_m1", kwargs=slim, face_checkpoint=str(face_ckpt)),
        data=DataSection(crop=44),
        optim=OptimSection(name="sgd", lr=0.05),
        train=TrainSection(epochs=1, batch_size=32),
        eval=EvalSection(plots=False),
    )
    train(recipe, data=data, out_dir=tmp_path / "m1")
    model, _ = load_checkpoint(tmp_path / "m1" / "last.pt")
    face_weights = read_checkpoint(face_ckpt)["state_dict"]
    trained = model.face_net.state_dict()
    assert all(torch.equal(face_weights[k], trained[k]) for k in face_weights)  # stayed frozen

    recipe.model = ModelSection(name=tiny_model, face_checkpoint=str(face_ckpt))
    with pytest.raises(FerlabError, match="has no face network"):
        train(recipe, data=data, out_dir=tmp_path / "tiny")


def test_init_from_fine_tunes_onto_another_label_set(tiny_model, tmp_path):
    """The FER+ model starts from the FER2013 one: trained features kept, a fresh classifier."""
    source_run = train(_recipe(tiny_model, epochs=1), data=synthetic_data(), out_dir=tmp_path / "a")
    source = read_checkpoint(source_run.out_dir / "best.pt")
    recipe = _recipe(tiny_model, epochs=1)
    recipe.model.init_from = str(source_run.out_dir / "best.pt")
    recipe.optim.lr = 0.0  # no update: the run's weights are exactly what it started from
    recipe.data.normalize = "none"  # ignored: fine-tuning keeps the source's statistics
    tuned = train(recipe, data=synthetic_data(ferplus="majority"), out_dir=tmp_path / "b")
    ckpt = read_checkpoint(tuned.out_dir / "best.pt")
    for key in ("mean", "std", "crop"):
        assert torch.equal(*(torch.as_tensor(c["preprocess"][key]) for c in (ckpt, source)))
    weights, start = ckpt["state_dict"], source["state_dict"]
    assert torch.equal(weights["features.0.weight"], start["features.0.weight"])
    assert weights["head.1.weight"].shape == (8, 128) != start["head.1.weight"].shape
    info = ckpt["init_from"]
    assert info["fresh"] == ["head.1.bias", "head.1.weight"]
    assert info["sha256"] == checkpoint_mod.file_sha256(source_run.out_dir / "best.pt")
    assert info["classes"] == list(source["classes"])


def test_init_from_errors_name_the_source(tiny_model, tmp_path):
    source_run = train(_recipe(tiny_model, epochs=1), data=synthetic_data(), out_dir=tmp_path / "a")
    recipe = _recipe(tiny_model, epochs=1)
    recipe.model.init_from = str(tmp_path / "missing.pt")
    with pytest.raises(DataError, match="checkpoint not found"):
        train(recipe, data=synthetic_data(), out_dir=tmp_path / "b")
    recipe.model.init_from = str(source_run.out_dir / "best.pt")
    recipe.data.crop = 40
    with pytest.raises(DataError, match="crop 44") as err:
        train(recipe, data=synthetic_data(), out_dir=tmp_path / "c")
    assert "best.pt" in str(err.value)


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_cpu_follows_native_bf16(
    tiny_model, tmp_path, monkeypatch, native, expected
):
    from ferlab.engine import trainer

    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: native)
    result = train(
        _recipe(tiny_model, epochs=1, device="cpu"), data=synthetic_data(), out_dir=tmp_path / "r"
    )
    assert result.metrics["precision"] == expected
    assert result.metrics["val"]["accuracy"] > 1.5 / 7  # above chance under either precision


def test_robust_default_pieces_train_and_resume_identically(tiny_model, tmp_path):
    """The robust default's recipe pieces (FER2013 labels with blended soft targets, train-time
    shifts, class-balanced loss, mixup) train, and a killed run resumes to the same weights."""
    from dataclasses import replace

    from ferlab.engine.recipe import ShiftAugmentSection

    base = synthetic_data()
    g = torch.Generator().manual_seed(3)
    votes = torch.rand(len(base), 7, generator=g)
    soft = 0.6 * torch.nn.functional.one_hot(base.labels, 7) + 0.4 * votes / votes.sum(1, True)
    data = replace(base, targets=soft, label_mode="fer2013-ferplus")
    recipe = _recipe(tiny_model, epochs=3, ema=0.9, checkpoint_every_steps=4, class_balance=0.3)
    recipe.augment.mixup = 0.2
    recipe.shift_augment = ShiftAugmentSection(
        occlude=0.5, light=0.5, blur=0.5, noise=0.5, jpeg=0.5
    )
    a = train(recipe, data=data, out_dir=tmp_path / "a")
    assert a.metrics["label_mode"] == "fer2013-ferplus" and a.metrics["val"]["accuracy"] > 0.2
    train_killed_at_step_14(recipe, data, tmp_path / "b")
    b = train(None, data=data, out_dir=tmp_path / "b", resume=True)
    last_a = read_checkpoint(a.out_dir / "last.pt")
    last_b = read_checkpoint(b.out_dir / "last.pt")
    assert _same_weights(last_a["state_dict"], last_b["state_dict"])
    assert last_b["recipe"]["shift_augment"]["jpeg"] == 0.5
