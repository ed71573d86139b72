"""Metrics against a hand-computed confusion matrix, and TTA-averaged prediction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ferlab.engine.evaluate import confusion_matrix, metrics_from_confusion, predict_proba
from ferlab.inference.preprocess import Preprocess


def test_metrics_from_a_hand_computed_confusion_matrix():
    classes = ("a", "b", "c")
    y_true = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = torch.tensor([0, 0, 0, 1, 1, 1, 0, 2, 1, 1])
    cm = confusion_matrix(y_true, y_pred, 3)
    # Rows: true class; columns: predicted class.
    assert cm.tolist() == [[3, 1, 0], [1, 2, 0], [0, 2, 1]]
    m = metrics_from_confusion(cm, classes)
    assert m["n"] == 10 and m["accuracy"] == pytest.approx(0.6)
    assert m["per_class"] == pytest.approx({"a": 3 / 4, "b": 2 / 3, "c": 1 / 3})
    # Precision a = 3/4, b = 2/5, c = 1/1; F1 = 2PR/(P+R) per class, then the mean.
    f1 = [2 * p * r / (p + r) for p, r in ((3 / 4, 3 / 4), (2 / 5, 2 / 3), (1.0, 1 / 3))]
    assert m["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert m["confusion"] == cm.tolist()


def test_metrics_with_absent_and_never_predicted_classes():
    cm = confusion_matrix(torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0]), 3)
    m = metrics_from_confusion(cm, ("a", "b", "c"))
    assert m["per_class"] == {"a": 1.0, "b": 0.0, "c": 0.0}
    assert m["macro_f1"] == pytest.approx((2 * (2 / 3) * 1 / (2 / 3 + 1)) / 3)


class _LeftRight(nn.Module):
    """Logits from the mean brightness of the left and right image halves."""

    num_classes = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.shape[-1] // 2
        return torch.stack([x[..., :w].mean((1, 2, 3)), x[..., w:].mean((1, 2, 3))], 1) * 20


@pytest.mark.parametrize("crop", [44, 48])
def test_predict_proba_tta_averages_views(crop):
    imgs = torch.zeros(3, 48, 48, dtype=torch.uint8)
    imgs[:, :, :24] = 255  # bright left half
    pre = Preprocess(image_size=48, crop=crop)
    model = _LeftRight()
    plain = predict_proba(model, imgs, pre, tta="none", batch_size=2)
    flip = predict_proba(model, imgs, pre, tta="flip", batch_size=2)
    ten = predict_proba(model, imgs, pre, tta="ten_crop", batch_size=2)
    assert plain.shape == flip.shape == ten.shape == (3, 2)
    assert torch.all(plain[:, 0] > 0.99)
    # Mirrored views swap the halves: flip averaging makes the two classes equally likely.
    assert torch.allclose(flip, torch.full((3, 2), 0.5), atol=1e-6)
    assert torch.allclose(ten.sum(1), torch.ones(3))
