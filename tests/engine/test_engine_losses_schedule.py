"""FER+ target schemes, losses, and learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ferlab.engine.losses import batch_targets, class_balance_weights, loss_fn, target_mode
from ferlab.engine.recipe import ScheduleSection
from ferlab.engine.schedule import LRSchedule


@pytest.mark.parametrize(
    ("label_mode", "has_targets", "expected"),
    [
        ("fer2013", False, "hard"),
        ("ferplus-majority", True, "hard"),
        ("ferplus-probability", True, "probability"),
        ("ferplus-crossentropy", True, "crossentropy"),
        ("ferplus-multi", True, "multi_target"),
        ("ferplus-crossentropy", False, "hard"),
        ("fer2013-ferplus", True, "crossentropy"),
        ("fer2013-ferplus", False, "hard"),
    ],
)
def test_target_mode(label_mode, has_targets, expected):
    assert target_mode(label_mode, has_targets) == expected


def test_hard_and_soft_cross_entropy_match_pytorch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 8, generator=g)
    labels = torch.randint(0, 8, (6,), generator=g)
    hard = batch_targets("hard", labels, None, 8, g)
    assert torch.allclose(loss_fn(logits, hard, "hard"), F.cross_entropy(logits, labels))
    smooth = loss_fn(logits, hard, "hard", label_smoothing=0.1)
    assert torch.allclose(smooth, F.cross_entropy(logits, labels, label_smoothing=0.1))
    votes = torch.rand(6, 8, generator=g)
    dist = batch_targets("crossentropy", labels, votes, 8, g)
    assert torch.allclose(dist.sum(1), torch.ones(6))
    assert torch.allclose(loss_fn(logits, dist, "crossentropy"), F.cross_entropy(logits, dist))


def test_probability_mode_draws_labels_from_the_votes():
    votes = torch.tensor([[0.0, 0.75, 0.25, 0.0]]).repeat(4000, 1)
    drawn = batch_targets(
        "probability",
        torch.zeros(4000, dtype=torch.long),
        votes,
        4,
        torch.Generator().manual_seed(0),
    )
    assert torch.all(drawn.sum(1) == 1)
    share = drawn.mean(0)
    assert share[0] == 0 and share[3] == 0
    assert share[1] == pytest.approx(0.75, abs=0.03)


def test_multi_target_loss_credits_the_best_acceptable_label():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    mask = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    target = batch_targets("multi_target", torch.zeros(2, dtype=torch.long), mask, 3, None)
    loss = loss_fn(logits, target, "multi_target")
    # -log max over acceptable labels: row 1 → 0.3, row 2 → 0.8.
    assert float(loss) == pytest.approx(-(math.log(0.3) + math.log(0.8)) / 2, rel=1e-5)


def test_step_schedule_divides_at_fractions():
    s = LRSchedule(ScheduleSection(kind="step", milestones=[0.5, 0.75, 0.9], gamma=0.1), 0.01, 10)
    total = 100
    assert s.lr(0, total) == pytest.approx(0.01)
    assert s.lr(49, total) == pytest.approx(0.01)
    assert s.lr(50, total) == pytest.approx(0.001)
    assert s.lr(75, total) == pytest.approx(1e-4)
    assert s.lr(95, total) == pytest.approx(1e-5)


def test_cosine_with_warmup_and_onecycle():
    cos = LRSchedule(ScheduleSection(kind="cosine", warmup_epochs=1), 0.1, steps_per_epoch=10)
    assert cos.lr(0, 110) == pytest.approx(0.01)  # warm-up: 1/10 of the rate
    assert cos.lr(10, 110) == pytest.approx(0.1)
    assert cos.lr(60, 110) == pytest.approx(0.05)
    assert cos.lr(110, 110) == pytest.approx(0.0, abs=1e-12)
    one = LRSchedule(ScheduleSection(kind="onecycle", pct_start=0.25), 0.1, steps_per_epoch=10)
    assert one.lr(0, 100) == pytest.approx(0.1 / 25)
    assert one.lr(25, 100) == pytest.approx(0.1)
    assert one.lr(100, 100) == pytest.approx(0.1 / 25 / 1e4)
    peak = max(one.lr(i, 100) for i in range(100))
    assert peak == pytest.approx(0.1)


def test_plateau_uses_keras_semantics_and_state_round_trips():
    s = LRSchedule(ScheduleSection(kind="plateau", factor=0.5, patience=2), 0.01, 10)
    accs = [0.50, 0.60, 0.55, 0.58, 0.61, 0.60, 0.60]
    reduced = [s.epoch_end(a) for a in accs]
    # Two epochs without a new best (0.55, 0.58) → halve; then 0.61 is a new best, two more → halve.
    assert reduced == [False, False, False, True, False, False, True]
    assert s.lr(5, 100) == pytest.approx(0.0025)
    fresh = LRSchedule(ScheduleSection(kind="plateau", factor=0.5, patience=2), 0.01, 10)
    fresh.load_state_dict(s.state_dict())
    assert fresh.lr(5, 100) == s.lr(5, 100) and fresh.bad_epochs == s.bad_epochs


def test_class_balanced_loss_matches_weighted_cross_entropy():
    labels = torch.tensor([0] * 8 + [1] * 2 + [2] * 6)
    w = class_balance_weights(labels, 3, power=1.0)
    # Inverse frequency, mean weight 1 over the training images.
    assert torch.allclose(w * torch.tensor([8.0, 2.0, 6.0]), torch.full((3,), w[0] * 8))
    assert torch.isclose(w[labels].mean(), torch.tensor(1.0))
    assert torch.equal(class_balance_weights(labels, 3, power=0.0), torch.ones(3))
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(5, 3, generator=g)
    y = torch.tensor([0, 1, 2, 1, 0])
    hard = F.one_hot(y, 3).float()
    # With one-hot targets it is PyTorch's weighted cross-entropy without its renormalisation.
    expected = (F.cross_entropy(logits, y, reduction="none") * w[y]).mean()
    assert torch.allclose(loss_fn(logits, hard, "crossentropy", class_weights=w), expected)
