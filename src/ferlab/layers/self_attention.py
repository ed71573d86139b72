"""Self-attention over feature-map locations: SAGAN's layer and Caciolai's Multiple Self-Attention.

**Self-attention** (Zhang, Goodfellow, Metaxas & Odena, "Self-Attention Generative Adversarial
Networks", 2019). Every location j of a C×H×W map attends to every location i: 1×1 convolutions
give queries and keys (C → C/8 channels) and values (C → C), the attention score is
β_{j,i} = softmax_i(q_jᵀ k_i), the attended values Σ_i β_{j,i} v_i pass through another 1×1
convolution to give o_j, and the layer returns ``y = γ·o + x`` with a learnable scalar γ that
starts at 0 — so the layer is the identity at initialisation and the network learns how much
non-local evidence to mix in. As in SAGAN the scores are not scaled by 1/√d.

**Multiple Self-Attention, MSA** (Caciolai, "Facial Emotion Recognition", seminar report, after the
weight-learning branch of Gan et al.'s Multiple Attention Network). N self-attention heads run in
parallel on the same input; a *weight-learning branch* — 1×1 convolution → pooling that halves
the spatial size → flatten → fully connected layer → sigmoid — gives one weight per head, and the
output is the weighted sum ``y = Σ_i w_i · SA_i(x)``.

Choices for MSA, where the report leaves details open:

* **Normalisation.** The report writes ``w = w̃ / ‖w̃‖`` but says in words that "the weights are
  normalized to sum up to 1", and the author's public notebook uses an L1 normalisation. Since the
  sigmoid outputs are positive, we divide by their sum: the weights are a convex combination, and
  because every head is the identity at initialisation (γ = 0) so is the module.
* **Number of heads.** Not given in the report; the author's notebook builds the module with 8
  heads, which is our default (``heads``).
* **Pooling.** A 2×2 max-pool with stride 2 (floor for odd sizes), as in the author's notebook;
  its FC layer therefore has C·⌊H/2⌋·⌊W/2⌋ inputs, which is why the module needs the spatial
  size of its input at construction (``spatial_size``).
* **Independent heads.** Each head is a full SAGAN layer with its own projections, as the report
  describes ("N sub-branches with an SA layer each"); the notebook instead ran one attention layer
  over N stacked copies of the input.
"""

from __future__ import annotations

import torch
from torch import nn

from ferlab.errors import FerlabError
from ferlab.layers import register_attention

__all__ = ["MultipleSelfAttention", "SelfAttention"]


@register_attention("self_attention")
class SelfAttention(nn.Module):
    """SAGAN self-attention: ``y = γ · Conv1×1(Σ_i β_{j,i} v_i) + x`` with γ initialised to 0.

    Args:
        channels: channels C of the feature map.
        reduction: queries and keys have ``max(1, C // reduction)`` channels (SAGAN: 8).

    :meth:`attention_map` returns β (``(B, N, N)``, N = H·W, row j = output location, each row
    sums to 1); with ``record = True`` every forward keeps it, detached, in ``last_attention``.
    """

    def __init__(self, channels: int, reduction: int = 8) -> None:
        super().__init__()
        if channels < 1 or reduction < 1:
            raise FerlabError(
                f"self-attention needs channels and reduction >= 1; got channels={channels}, "
                f"reduction={reduction}"
            )
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))
        self.record = False
        self.last_attention: torch.Tensor | None = None

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # (B, C, H, W) → (B, N, C): one row per location.
        def rows(t: torch.Tensor) -> torch.Tensor:
            return t.flatten(2).transpose(1, 2)

        return rows(self.query(x)), rows(self.key(x)), rows(self.value(x))

    def attention_map(self, x: torch.Tensor) -> torch.Tensor:
        """β for ``x``: ``(B, N, N)``, row j gives how much output location j reads from each i."""
        q, k, _ = self._qkv(x)
        return torch.softmax(q @ k.transpose(1, 2), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self._qkv(x)
        # Explicit softmax(q kᵀ) v: with these narrow queries it ran about twice as fast on CPU
        # as F.scaled_dot_product_attention (forward + backward, 576 locations).
        attention = torch.softmax(q @ k.transpose(1, 2), dim=-1)
        if self.record:
            self.last_attention = attention.detach()
        o = self.out((attention @ v).transpose(1, 2).reshape(b, c, h, w))
        return self.gamma * o + x


@register_attention("msa")
class MultipleSelfAttention(nn.Module):
    """Caciolai's Multiple Self-Attention: a learned convex combination of N self-attention heads.

    Args:
        channels: channels C of the feature map.
        spatial_size: its spatial size, ``int`` or ``(H, W)`` (fixes the weight branch's FC).
        heads: number N of self-attention heads.
        reduction: query/key reduction of each head.

    :meth:`head_weights` returns the weights ``(B, N)`` (each row sums to 1); with
    ``record = True`` every forward keeps them, detached, in ``last_weights``.
    """

    def __init__(
        self,
        channels: int,
        spatial_size: int | tuple[int, int],
        heads: int = 8,
        reduction: int = 8,
    ) -> None:
        super().__init__()
        h, w = (spatial_size, spatial_size) if isinstance(spatial_size, int) else spatial_size
        if heads < 1 or h < 2 or w < 2:
            raise FerlabError(
                f"multiple self-attention needs heads >= 1 and a map of at least 2×2; got "
                f"heads={heads}, spatial_size={spatial_size}"
            )
        self.spatial_size = (h, w)
        self.heads = nn.ModuleList(SelfAttention(channels, reduction) for _ in range(heads))
        self.weight_conv = nn.Conv2d(channels, channels, 1)
        self.weight_pool = nn.MaxPool2d(2, 2)
        self.weight_fc = nn.Linear(channels * (h // 2) * (w // 2), heads)
        self.record = False
        self.last_weights: torch.Tensor | None = None

    def head_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Weights of the heads for ``x``: ``(B, N)``, positive, each row summing to 1."""
        raw = torch.sigmoid(self.weight_fc(self.weight_pool(self.weight_conv(x)).flatten(1)))
        return raw / raw.sum(dim=1, keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.head_weights(x)
        if self.record:
            self.last_weights = weights.detach()
        out = weights[:, 0, None, None, None] * self.heads[0](x)
        for i in range(1, len(self.heads)):
            out = out + weights[:, i, None, None, None] * self.heads[i](x)
        return out
