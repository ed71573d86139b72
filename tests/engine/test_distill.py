"""Offline distillation: the teacher's cached probabilities as the student's soft targets."""

from __future__ import annotations

import shutil

import pytest
import torch
from engine_helpers import synthetic_data, train_killed_at_step_14, trained_checkpoint

from ferlab.engine import distill, load_checkpoint, read_checkpoint, recipe_from_dict, train
from ferlab.engine.evaluate import predict_proba
from ferlab.engine.trainer import cpu_has_native_bf16
from ferlab.errors import DataError
from ferlab.inference.shipped import file_sha256


@pytest.fixture
def teacher(tiny_model, tmp_path):
    """``best.pt`` of a tiny FER2013-class network trained for one epoch."""
    return trained_checkpoint(tmp_path / "teacher", tiny_model, epochs=1, n=420)


def _train_images() -> torch.Tensor:
    return synthetic_data().subset("train").images


def _classes() -> tuple[str, ...]:
    return synthetic_data().classes


def test_targets_mix_the_label_with_the_softened_teacher():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    labels = torch.tensor([1, 2])
    onehot = torch.nn.functional.one_hot(labels, 3).float()
    torch.testing.assert_close(distill.distill_targets(probs, labels, 0.0, 2.0), onehot)
    torch.testing.assert_close(distill.distill_targets(probs, labels, 1.0, 1.0), probs)
    mixed = distill.distill_targets(probs, labels, 0.7, 2.0)
    torch.testing.assert_close(mixed.sum(1), torch.ones(2))
    # The label keeps at least its 30 %; the teacher's ranking survives the temperature.
    assert (mixed[torch.arange(2), labels] >= 0.3).all()
    assert mixed[0, 0] > mixed[0, 2]
    # A higher temperature flattens the teacher's part: its top class gets less mass.
    hotter = distill.distill_targets(probs, labels, 1.0, 4.0)
    assert hotter[0, 0] < distill.distill_targets(probs, labels, 1.0, 2.0)[0, 0] < 0.7
    with pytest.raises(ValueError, match="temperature"):
        distill.distill_targets(probs, labels, 0.5, 0.0)


def test_teacher_probabilities_are_its_own_predictions_cached_by_digest(
    teacher, tmp_path, monkeypatch
):
    images, cache = _train_images(), tmp_path / "cache"
    precision = "bf16" if cpu_has_native_bf16() else "fp32"
    got = distill.teacher_probabilities(
        str(teacher), images, _classes(), tta="flip", cache_dir=cache, precision=precision
    )
    model, meta = load_checkpoint(teacher)
    want = predict_proba(model, images, meta["preprocess"], tta="flip", bf16=precision == "bf16")
    assert got.probs.shape == (len(images), 7)
    torch.testing.assert_close(got.probs, want, atol=1e-6, rtol=0)
    sha = file_sha256(teacher)
    assert got.meta["teacher_sha256"] == sha and got.meta["tta"] == "flip"
    assert got.meta["precision"] == precision and got.meta["n"] == len(images)
    cached = list((cache / "teacher").glob("*.npz"))
    assert [p.name for p in cached] == [
        f"teacher-v{distill.TEACHER_CACHE_VERSION}-{sha[:16]}-flip-{precision}-"
        f"{got.meta['images_sha256'][:16]}.npz"
    ]

    def no_teacher_run(*args, **kwargs):
        raise AssertionError("the teacher ran although its probabilities are cached")

    monkeypatch.setattr(distill, "_run_teacher", no_teacher_run)
    again = distill.teacher_probabilities(
        str(teacher), images, _classes(), tta="flip", cache_dir=cache, precision=precision
    )
    assert torch.equal(again.probs, got.probs)
    # Other images, or a damaged entry, are computed afresh.
    with pytest.raises(AssertionError, match="the teacher ran"):
        distill.teacher_probabilities(
            str(teacher), images[:10], _classes(), tta="flip", cache_dir=cache, precision=precision
        )
    cached[0].write_bytes(b"not a zip")
    with pytest.raises(AssertionError, match="the teacher ran"):
        distill.teacher_probabilities(
            str(teacher), images, _classes(), tta="flip", cache_dir=cache, precision=precision
        )


def test_teacher_of_other_classes_or_another_file_is_refused(tiny_model, teacher, tmp_path):
    images = _train_images()
    ferplus_teacher = tmp_path / "ferplus"
    ferplus_teacher.mkdir()
    raw = {"model": {"name": tiny_model}, "train": {"epochs": 1}, "eval": {"plots": False}}
    train(recipe_from_dict(raw), data=synthetic_data(ferplus="majority"), out_dir=ferplus_teacher)
    with pytest.raises(DataError, match="predicts") as err:
        distill.teacher_probabilities(
            str(ferplus_teacher / "best.pt"), images, _classes(), cache_dir=tmp_path / "c"
        )
    assert "best.pt" in str(err.value)
    recorded = {"teacher_sha256": "0" * 64, "tta": "none", "precision": "fp32"}
    with pytest.raises(DataError, match="another file than the one this run was started with"):
        distill.teacher_probabilities(
            str(teacher), images, _classes(), cache_dir=tmp_path / "c", expect=recorded
        )


def _recipe(model: str, teacher, cache, **distill_kw) -> dict:
    return {
        "model": {"name": model},
        "data": {"crop": 44, "cache_dir": str(cache)},
        "augment": {"flip": True, "shift": 0.1},
        "distill": {"teacher": str(teacher), "tta": "flip", **distill_kw},
        "optim": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "train": {"epochs": 2, "batch_size": 32, "ema": 0.9, "checkpoint_every_steps": 4},
        "eval": {"plots": False},
    }


def test_student_trains_on_teacher_targets_and_resumes_without_the_teacher(
    tiny_model, teacher, tmp_path
):
    data = synthetic_data()
    recipe = recipe_from_dict(_recipe(tiny_model, teacher, tmp_path / "cache"))
    a = train(recipe, data=data, out_dir=tmp_path / "a")
    info = read_checkpoint(a.out_dir / "best.pt")["distill"]
    assert info["teacher_sha256"] == file_sha256(teacher) and info["tta"] == "flip"
    assert info["n"] == int((data.split == 0).sum())  # training images only
    assert a.metrics["label_mode"] == "fer2013"  # val and test keep their labels

    # A different weight gives other targets, hence other weights after the same steps.
    other = recipe_from_dict(_recipe(tiny_model, teacher, tmp_path / "cache", weight=0.0))
    c = train(other, data=data, out_dir=tmp_path / "c")
    wa = read_checkpoint(a.out_dir / "last.pt")["state_dict"]
    wc = read_checkpoint(c.out_dir / "last.pt")["state_dict"]
    assert any(not torch.equal(wa[k], wc[k]) for k in wa)

    train_killed_at_step_14(recipe, data, tmp_path / "b")
    # The teacher file is gone: the resumed run takes the cached probabilities it recorded.
    shutil.rmtree(teacher.parent)
    b = train(None, data=data, out_dir=tmp_path / "b", resume=True)
    wb = read_checkpoint(b.out_dir / "last.pt")["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert a.metrics["val"] == b.metrics["val"]


def test_distillation_refuses_data_with_soft_targets_of_its_own(tiny_model, teacher, tmp_path):
    recipe = recipe_from_dict(_recipe(tiny_model, teacher, tmp_path / "cache"))
    with pytest.raises(DataError, match="distillation replaces the targets"):
        train(recipe, data=synthetic_data(ferplus="probability"), out_dir=tmp_path / "run")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [("weight", 1.5, "between 0 and 1"), ("temperature", 0, "positive"), ("tta", "five", "one of")],
)
def test_recipe_checks_the_distill_section(key, value, message):
    with pytest.raises(DataError, match=message):
        recipe_from_dict({"model": {"name": "ferlab_fast"}, "distill": {key: value}})
