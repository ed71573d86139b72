"""SAGAN self-attention and Caciolai's Multiple Self-Attention."""

import pytest
import torch

from ferlab.errors import FerlabError
from ferlab.layers.self_attention import MultipleSelfAttention, SelfAttention


def _reference(sa: SelfAttention, x: torch.Tensor) -> torch.Tensor:
    """y = γ·Conv(Σ_i β_ji v_i) + x written out with explicit loops over nothing but matmuls."""
    b, c, h, w = x.shape
    q = sa.query(x).flatten(2)  # (B, C', N)
    k = sa.key(x).flatten(2)
    v = sa.value(x).flatten(2)  # (B, C, N)
    beta = torch.softmax(q.transpose(1, 2) @ k, dim=-1)  # (B, N_j, N_i)
    o = sa.out((v @ beta.transpose(1, 2)).view(b, c, h, w))
    return sa.gamma * o + x


def test_gamma_zero_returns_the_input_exactly() -> None:
    sa = SelfAttention(16)
    x = torch.randn(2, 16, 6, 5)
    assert torch.equal(sa(x), x)


def test_matches_the_sagan_formula_and_trains_gamma() -> None:
    torch.manual_seed(0)
    sa = SelfAttention(16)
    with torch.no_grad():
        sa.gamma.fill_(0.5)
    x = torch.randn(2, 16, 6, 5)
    y = sa(x)
    torch.testing.assert_close(y, _reference(sa, x))
    y.square().sum().backward()
    assert sa.gamma.grad is not None and sa.gamma.grad.abs() > 0


def test_attention_map_rows_are_distributions() -> None:
    sa = SelfAttention(16)
    x = torch.randn(2, 16, 4, 6)
    beta = sa.attention_map(x)
    assert beta.shape == (2, 24, 24)
    assert bool((beta >= 0).all())
    torch.testing.assert_close(beta.sum(-1), torch.ones(2, 24))
    sa.record = True
    sa(x)
    torch.testing.assert_close(sa.last_attention, beta.detach())


def test_narrow_maps_keep_one_query_channel() -> None:
    assert SelfAttention(4).query.out_channels == 1
    assert SelfAttention(64).query.out_channels == 8


@pytest.mark.parametrize("size", [9, (8, 6), 22])
def test_msa_weights_sum_to_one_and_it_is_the_identity_at_init(size: int | tuple[int, int]) -> None:
    torch.manual_seed(0)
    h, w = (size, size) if isinstance(size, int) else size
    msa = MultipleSelfAttention(10, spatial_size=size, heads=4)
    x = torch.randn(3, 10, h, w)
    weights = msa.head_weights(x)
    assert weights.shape == (3, 4)
    assert bool((weights > 0).all())
    torch.testing.assert_close(weights.sum(1), torch.ones(3))
    # Every head starts with γ = 0 and the weights are convex, so the module passes x through.
    torch.testing.assert_close(msa(x), x)


def test_msa_output_is_the_weighted_sum_of_its_heads() -> None:
    torch.manual_seed(0)
    msa = MultipleSelfAttention(8, spatial_size=6, heads=3)
    with torch.no_grad():
        for i, head in enumerate(msa.heads):
            head.gamma.fill_(0.3 * (i + 1))
    msa.record = True
    x = torch.randn(2, 8, 6, 6)
    y = msa(x)
    weights = msa.head_weights(x)
    expected = sum(weights[:, i, None, None, None] * head(x) for i, head in enumerate(msa.heads))
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(msa.last_weights, weights.detach())
    y.square().sum().backward()
    assert msa.weight_fc.weight.grad is not None
    assert all(head.gamma.grad is not None for head in msa.heads)


def test_msa_defaults_to_eight_heads() -> None:
    assert len(MultipleSelfAttention(8, spatial_size=4).heads) == 8


def test_msa_too_small_map_is_a_ferlab_error() -> None:
    with pytest.raises(FerlabError, match="2×2"):
        MultipleSelfAttention(8, spatial_size=1)
