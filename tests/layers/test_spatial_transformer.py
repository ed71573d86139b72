"""Spatial transformer: identity at initialisation, Deep-Emotion's sizes, θ and the warp."""

import pytest
import torch

from ferlab.errors import FerlabError
from ferlab.layers.spatial_transformer import SpatialTransformer

IDENTITY = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


@pytest.mark.parametrize(("size", "flat"), [(48, 640), (44, 490), (40, 360), ((44, 40), 420)])
def test_identity_at_init_and_flattened_size(size: int | tuple[int, int], flat: int) -> None:
    torch.manual_seed(0)
    h, w = (size, size) if isinstance(size, int) else size
    stn = SpatialTransformer(1, input_size=size)
    # Deep-Emotion's published localisation network has FC 640 → 32 at 48×48.
    assert stn.fc_loc[0].in_features == flat
    x = torch.randn(2, 1, h, w)
    warped, theta = stn.transform(x)
    torch.testing.assert_close(theta, IDENTITY.expand(2, 2, 3))
    torch.testing.assert_close(warped, x, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(stn(x), x, atol=1e-4, rtol=1e-5)


def test_warp_applies_the_given_affine_map() -> None:
    x = torch.arange(2 * 3 * 6 * 8, dtype=torch.float32).view(2, 3, 6, 8)
    flip = torch.tensor([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(2, 2, 3)
    # With align_corners=False a horizontal flip lands exactly on pixel centres.
    torch.testing.assert_close(SpatialTransformer.warp(x, flip), x.flip(-1))


def test_theta_recorded_and_gradients_flow() -> None:
    stn = SpatialTransformer(3, input_size=40)
    x = torch.randn(2, 3, 40, 40)
    stn(x)
    assert stn.last_theta is None
    stn.record = True
    stn(x).sum().backward()
    assert stn.last_theta is not None and stn.last_theta.shape == (2, 2, 3)
    # The regression layer starts at zero weights, so it is the one that gets gradient first.
    grad = stn.fc_loc[2].weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_configurable_localisation_network() -> None:
    stn = SpatialTransformer(64, input_size=24, loc_channels=(16,), loc_kernels=(5,), loc_hidden=8)
    assert stn.fc_loc[0].in_features == 16 * 10 * 10
    x = torch.randn(2, 64, 24, 24)
    torch.testing.assert_close(stn(x), x, atol=1e-4, rtol=1e-5)


def test_too_small_input_is_a_ferlab_error() -> None:
    with pytest.raises(FerlabError, match="too small"):
        SpatialTransformer(1, input_size=16)
