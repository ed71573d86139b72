"""Deep-Emotion and Caciolai's variants (no STN; STN + Multiple Self-Attention)."""

import pytest
import torch
from model_helpers import check_forward_backward

from ferlab.errors import FerlabError
from ferlab.layers.self_attention import MultipleSelfAttention
from ferlab.layers.spatial_transformer import SpatialTransformer
from ferlab.models import create_model

NAMES = ["deep_emotion", "deep_emotion_nostn", "deep_emotion_msa"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("in_chans", "size", "num_classes"), [(1, 48, 7), (3, 44, 8), (1, 40, 7)])
def test_forward_backward(name: str, in_chans: int, size: int, num_classes: int) -> None:
    torch.manual_seed(0)
    model = create_model(name, num_classes=num_classes, in_chans=in_chans, input_size=size)
    check_forward_backward(model, in_chans, size, num_classes, every_param=False)


def test_published_sizes_at_48() -> None:
    model = create_model("deep_emotion")
    # FC 810 → 50 → 7 and the localisation network's FC 640 → 32 → 6.
    linears = [m for m in model.head if isinstance(m, torch.nn.Linear)]
    assert [(fc.in_features, fc.out_features) for fc in linears] == [(810, 50), (50, 7)]
    assert isinstance(model.stn, SpatialTransformer)
    assert model.stn.fc_loc[0].in_features == 640
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    backbone = [c for c in convs if c.out_channels == 10 and c.kernel_size == (3, 3)]
    assert len(backbone) == 4


def test_variants_expose_their_attention() -> None:
    assert create_model("deep_emotion_nostn").stn is None
    assert create_model("deep_emotion").msa is None
    msa_model = create_model("deep_emotion_msa")
    assert isinstance(msa_model.stn, SpatialTransformer)
    assert isinstance(msa_model.msa, MultipleSelfAttention)
    assert msa_model.msa.spatial_size == (9, 9)  # the last feature map at 48×48
    assert len(msa_model.msa.heads) == 8


def test_attention_modules_are_the_identity_at_init() -> None:
    # The STN starts at the identity warp and MSA at γ = 0, so with shared weights the three
    # variants compute the same function until training moves them apart.
    torch.manual_seed(0)
    full = create_model("deep_emotion_msa").eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        expected = full(x)
        for name in ("deep_emotion", "deep_emotion_nostn"):
            other = create_model(name).eval()
            other.load_state_dict(full.state_dict(), strict=False)
            torch.testing.assert_close(other(x), expected, atol=1e-5, rtol=1e-4)


def test_warp_can_be_recorded_for_explanation() -> None:
    model = create_model("deep_emotion").eval()
    model.stn.record = True
    with torch.no_grad():
        model(torch.randn(3, 1, 48, 48))
    assert model.stn.last_theta.shape == (3, 2, 3)


@pytest.mark.parametrize(("name", "smallest"), [("deep_emotion_nostn", 16), ("deep_emotion", 18)])
def test_smallest_input_works_and_one_less_is_a_ferlab_error(name: str, smallest: int) -> None:
    model = create_model(name, input_size=smallest).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, smallest, smallest)).shape == (1, 7)
    with pytest.raises(FerlabError, match="too small"):
        create_model(name, input_size=smallest - 1)
