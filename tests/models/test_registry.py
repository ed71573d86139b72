"""Every registered model honours the zoo's contract; the size/cost helpers count correctly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ferlab.errors import FerlabError, UnknownNameError
from ferlab.models import create_model, get_model_entry, list_models
from ferlab.models._base import FERModel
from ferlab.models._info import count_macs, count_params, model_info, resolve_input_size

MODELS = list_models()
# Default-configuration training steps of more than ~1.2 GMACs per image cost 6-17 CPU-seconds
# each on the 2-core development machine: DenseNet121 (120 convolutions of distinct shapes) and
# the facial-attention models (two VGG19s each; test_facial_attention.py covers every variant at
# quarter width). The others take 0.1-4 CPU-seconds.
_SLOW = {"densenet121", "facial_attention_m1", "facial_attention_m2", "facial_attention_m3"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in MODELS]
)
def test_model_trains_and_forward_splits_into_features_and_head(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name)
    assert isinstance(model, FERModel)
    assert isinstance(model.num_classes, int) and model.num_classes >= 2
    c, h, w = model.input_size
    assert c == model.in_chans and h > 0 and w > 0
    assert get_model_entry(name).source, f"{name} registered without its paper"

    x = torch.randn(2, *model.input_size)
    model.train()
    logits = model(x)
    assert logits.shape == (2, model.num_classes)
    assert torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.tensor([0, 1])).backward()
    for pname, p in model.named_parameters():
        if p.requires_grad:
            assert p.grad is not None, f"{name}.{pname} gets no gradient"
            assert torch.isfinite(p.grad).all(), f"{name}.{pname} has a non-finite gradient"

    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_head(model.forward_features(x)))


def test_unknown_model_name_lists_the_known_ones() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_model("vgg20")
    message = str(info.value)
    assert "vgg20" in message
    for name in MODELS:
        assert name in message


def test_this_zoo_part_is_registered() -> None:
    expected = {
        "vgg19",
        "face_vgg19",
        "facial_attention_m1",
        "facial_attention_m2",
        "facial_attention_m3",
        "resnet18",
        "densenet121",
    }
    assert expected <= set(MODELS)


def test_count_macs_counts_convolutions_and_linear_layers() -> None:
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),  # 8×8 out: 64 · 4 · (2·9) = 4608
        nn.Conv2d(4, 4, 3, stride=2, padding=1, groups=2),  # 4×4 out: 16 · 4 · (2·9) = 1152
        nn.BatchNorm2d(4),  # not counted
        nn.Flatten(),
        nn.Linear(64, 10),  # 640
    )
    assert count_macs(model, (2, 8, 8)) == 4608 + 1152 + 640
    assert count_params(model) == (4 * 2 * 9 + 4) + (4 * 2 * 9 + 4) + 8 + (640 + 10)
    assert model.training, "count_macs must restore train mode"


def test_count_macs_counts_matrix_products() -> None:
    class Attend(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = x.flatten(2).transpose(1, 2)  # 1×16×3
            return torch.softmax(tokens @ tokens.transpose(1, 2), dim=-1) @ tokens

    model = nn.Sequential(nn.Conv2d(1, 3, 1), Attend())
    # conv 16·3·1, q·kᵀ 16·16·3, attention·v 16·3·16
    assert count_macs(model, (1, 4, 4)) == 48 + 768 + 768


def test_model_info_matches_a_real_build() -> None:
    info = model_info("resnet18")
    model = create_model("resnet18")
    assert info.params == count_params(model)
    assert info.mflops == count_macs(model, model.input_size) / 1e6
    assert info.input_size == tuple(model.input_size)
    assert info.source == get_model_entry("resnet18").source


@pytest.mark.parametrize(
    ("given", "expected"),
    [(None, (1, 44, 44)), (40, (1, 40, 40)), ((40, 36), (1, 40, 36)), ((1, 48, 48), (1, 48, 48))],
)
def test_resolve_input_size_accepts_side_hw_and_chw(given: object, expected: tuple) -> None:
    assert resolve_input_size(1, given, (44, 44), 32, "m") == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("given", [(3, 44, 44), 16, (1, 2, 3, 4)])
def test_resolve_input_size_rejects_bad_sizes(given: object) -> None:
    with pytest.raises(FerlabError, match="input_size"):
        resolve_input_size(1, given, (44, 44), 32, "m")  # type: ignore[arg-type]
