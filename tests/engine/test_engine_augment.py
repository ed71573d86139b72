"""Batched augmentation and the deterministic preprocessing stored in checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ferlab.engine.augment import BatchAugment, norm_stats, normalize_batch
from ferlab.engine.recipe import AugmentSection
from ferlab.inference.preprocess import Preprocess


def _images(n: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 48, 48), generator=g, dtype=torch.uint8)


def test_norm_stats_modes():
    imgs = _images()
    mean, std = norm_stats(imgs, "global")
    assert mean.shape == () and float(mean) == pytest.approx(float(imgs.double().mean() / 255))
    mean, std = norm_stats(imgs, "per_pixel")
    assert mean.shape == (48, 48) and std.shape == (48, 48)
    assert norm_stats(imgs, "none") == (torch.tensor(0.0), torch.tensor(1.0))


def test_plain_crop_and_flip_are_exact_pixels():
    imgs = _images()
    aug = BatchAugment(AugmentSection(flip=True), image_size=48, out_size=44)
    x = imgs.float().unsqueeze(1)
    p = aug.sample(len(imgs), torch.Generator().manual_seed(0))
    out = aug.apply(x, p)
    assert out.shape == (16, 1, 44, 44)
    for i in range(len(imgs)):
        ox, oy = int(p["ox"][i]), int(p["oy"][i])
        want = x[i, :, oy : oy + 44, ox : ox + 44]
        assert torch.equal(out[i], want.flip(-1) if p["flip"][i] else want)


def test_affine_path_without_motion_equals_exact_crop():
    """The fused grid_sample lands on pixel centres: zero shift/rotation gives the plain crop."""
    imgs = _images()
    x = imgs.float().unsqueeze(1)
    g = torch.Generator().manual_seed(0)
    affine = BatchAugment(AugmentSection(flip=True, shift=0.1), image_size=48, out_size=44)
    p = affine.sample(len(imgs), g)
    p["shift"].zero_()
    plain = BatchAugment(AugmentSection(flip=True), image_size=48, out_size=44)
    q = {k: p[k] for k in ("ox", "oy", "flip")}
    # Within float32 rounding of the sampling coordinates (values are 0-255 here).
    assert torch.allclose(affine.apply(x, p), plain.apply(x, q), atol=1e-2)


def test_shift_moves_content():
    x = torch.zeros(1, 1, 48, 48)
    x[..., 20:28, 20:28] = 1.0
    aug = BatchAugment(AugmentSection(shift=0.1), image_size=48, out_size=48)
    p = aug.sample(1, torch.Generator().manual_seed(0))
    p["shift"][:] = torch.tensor(
        [[4 / 48, 0.0]]
    )  # sample 4 pixels to the right: content moves left
    out = aug.apply(x, p)
    assert torch.allclose(out[0, 0, 20:28, 16:24], torch.ones(8, 8), atol=1e-5)


def test_pad_and_crop_fills_with_zero():
    x = torch.ones(4, 1, 48, 48)
    aug = BatchAugment(AugmentSection(pad=4), image_size=48, out_size=48)
    p = aug.sample(4, torch.Generator().manual_seed(0))
    p["ox"][:] = -4
    p["oy"][:] = 0
    out = aug.apply(x, p)
    assert torch.all(out[..., :, :4] == 0) and torch.all(out[..., :, 4:] == 1)


def test_full_augmentation_shapes_determinism_and_slicing():
    imgs = _images(12)
    cfg = AugmentSection(
        flip=True, shift=0.1, rotate=10, scale=0.1, shear=5, elastic=1.5, erase=0.5
    )
    aug = BatchAugment(cfg, image_size=48, out_size=40)
    x = imgs.float().unsqueeze(1) / 255
    p1 = aug.sample(12, torch.Generator().manual_seed(7))
    p2 = aug.sample(12, torch.Generator().manual_seed(7))
    a, b = aug.apply(x, p1), aug.apply(x, p2)
    assert a.shape == (12, 1, 40, 40) and torch.equal(a, b)
    # Data-parallel processes draw for the global batch and apply their slice.
    part = aug.apply(x[4:8], BatchAugment.slice(p1, 4, 8))
    assert torch.allclose(part, a[4:8], atol=1e-6)


def test_random_erasing_zeroes_one_rectangle():
    x = torch.ones(32, 1, 44, 44)
    aug = BatchAugment(AugmentSection(erase=1.0), image_size=44, out_size=44)
    out = aug.apply(x, aug.sample(32, torch.Generator().manual_seed(0)))
    for img in out[:, 0]:
        rows = torch.nonzero((img == 0).any(1)).flatten()
        cols = torch.nonzero((img == 0).any(0)).flatten()
        assert len(rows) > 0
        box = img[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert torch.all(box == 0)  # a filled rectangle, nothing else
        assert int((img == 0).sum()) == box.numel()


@pytest.mark.parametrize("kind", ["mixup", "cutmix"])
def test_mix_keeps_targets_distributions(kind):
    x = torch.rand(8, 1, 44, 44)
    target = torch.nn.functional.one_hot(torch.arange(8) % 7, 7).float()
    aug = BatchAugment(AugmentSection(**{kind: 1.0}), image_size=44, out_size=44)
    mixed, t = aug.mix(x, target, torch.Generator().manual_seed(0))
    assert mixed.shape == x.shape and not torch.equal(mixed, x)
    assert torch.allclose(t.sum(1), torch.ones(8))
    assert (t > 0).sum(1).max() == 2


def test_training_normalisation_is_the_inference_preprocessing_bit_for_bit():
    """Training steps normalise tensor batches (on any device) with ``normalize_batch``; the
    result is the inference core's numpy ``Preprocess.normalize``, bit for bit."""
    imgs = _images(5)
    rng = np.random.default_rng(0)
    for mean, std in (
        (np.float32(0.5077), np.float32(0.255)),
        (rng.uniform(0.3, 0.7, (48, 48)), rng.uniform(0.2, 0.3, (48, 48))),
    ):
        pre = Preprocess(mean=mean, std=std)
        got = normalize_batch(imgs, torch.from_numpy(pre.mean), torch.from_numpy(pre.std))
        np.testing.assert_array_equal(got.numpy(), pre.normalize(imgs.numpy()))
