"""Spatial transformer (Jaderberg, Simonyan & Zisserman, "Spatial Transformer Networks", 2015).

A small *localisation network* looks at the input and regresses the six parameters θ of a 2×3
affine map; ``F.affine_grid`` turns θ into a sampling grid over the input and ``F.grid_sample``
reads the input at those points (bilinear), producing a warped map of the same size. The whole
module is differentiable, so the network learns where to look. Deep-Emotion (Minaee et al.) puts
one in front of its classifier as its attention mechanism; Caciolai keeps it in his variants.

Choices:

* The default localisation network is Deep-Emotion's: conv 8@7×7 → max-pool 2 → ReLU →
  conv 10@5×5 → max-pool 2 → ReLU → FC 32 → ReLU → FC 6. Its channel counts, kernel sizes and
  hidden width are arguments; the flattened size is computed from ``input_size`` (640 at 48×48,
  as published) instead of being hard-coded, so crops of 40 or 44 pixels work too.
* The last FC layer starts at the identity transform (weights 0, bias ``[1, 0, 0, 0, 1, 0]``), as
  Jaderberg et al. recommend: at initialisation the module returns its input unchanged.
* ``align_corners=False`` in both grid calls, so the identity θ samples exactly the pixel centres
  and the same θ means the same warp at every resolution (θ found on a feature map can be
  applied to the image, see :meth:`SpatialTransformer.warp`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ferlab.errors import FerlabError
from ferlab.layers import register_attention

__all__ = ["SpatialTransformer"]


@register_attention("stn")
class SpatialTransformer(nn.Module):
    """Affine spatial transformer with a configurable convolutional localisation network.

    Args:
        channels: channels of the input it warps (1 for a grayscale face).
        input_size: spatial size of that input, ``int`` or ``(H, W)``.
        loc_channels: output channels of the localisation convolutions.
        loc_kernels: their kernel sizes (same length as ``loc_channels``); each convolution is
            unpadded and followed by a 2×2 max-pool and a ReLU.
        loc_hidden: width of the hidden fully connected layer that regresses θ.

    For explanation, :meth:`transform` returns the warped input together with θ (``(B, 2, 3)``);
    with ``record = True`` every forward also keeps the last θ, detached, in ``last_theta``.
    """

    def __init__(
        self,
        channels: int,
        input_size: int | tuple[int, int] = 48,
        loc_channels: Sequence[int] = (8, 10),
        loc_kernels: Sequence[int] = (7, 5),
        loc_hidden: int = 32,
    ) -> None:
        super().__init__()
        if len(loc_channels) != len(loc_kernels) or not loc_channels:
            raise FerlabError(
                "spatial transformer: loc_channels and loc_kernels must be non-empty and of the "
                f"same length; got {list(loc_channels)} and {list(loc_kernels)}"
            )
        h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
        layers: list[nn.Module] = []
        c_in = channels
        for c_out, k in zip(loc_channels, loc_kernels, strict=True):
            layers += [nn.Conv2d(c_in, c_out, k), nn.MaxPool2d(2, 2), nn.ReLU(inplace=True)]
            h, w = (h - k + 1) // 2, (w - k + 1) // 2
            if h < 1 or w < 1:
                raise FerlabError(
                    f"spatial transformer: input of {input_size} pixels is too small for a "
                    f"localisation network with kernels {list(loc_kernels)}"
                )
            c_in = c_out
        self.localization = nn.Sequential(*layers)
        self.fc_loc = nn.Sequential(
            nn.Linear(c_in * h * w, loc_hidden), nn.ReLU(inplace=True), nn.Linear(loc_hidden, 6)
        )
        # Start at the identity so that training begins from the un-warped input.
        nn.init.zeros_(self.fc_loc[2].weight)
        with torch.no_grad():
            self.fc_loc[2].bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))
        self.record = False
        self.last_theta: torch.Tensor | None = None

    def theta(self, x: torch.Tensor) -> torch.Tensor:
        """The affine parameters regressed for ``x``, shape ``(B, 2, 3)``."""
        return self.fc_loc(self.localization(x).flatten(1)).view(-1, 2, 3)

    @staticmethod
    def warp(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Sample ``x`` on the grid of ``theta`` (also usable to show θ applied to an image)."""
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def transform(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Warp ``x``; returns ``(warped, theta)``."""
        theta = self.theta(x)
        return self.warp(x, theta), theta

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        warped, theta = self.transform(x)
        if self.record:
            self.last_theta = theta.detach()
        return warped
