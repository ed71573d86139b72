"""Batched augmentation and the deterministic preprocessing stored in checkpoints."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ferlab.engine.augment import BatchAugment, Preprocess, equalize_hist, norm_stats
from ferlab.engine.recipe import AugmentSection


def _images(n: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 48, 48), generator=g, dtype=torch.uint8)


def test_equalize_hist_matches_opencv():
    g = torch.Generator().manual_seed(1)
    # Low-contrast images exercise the lookup table; one constant (all-black) image too.
    imgs = (torch.rand(8, 48, 48, generator=g) * 60 + 40).to(torch.uint8)
    imgs[3] = 0
    ours = equalize_hist(imgs)
    for i in range(len(imgs)):
        assert np.array_equal(ours[i].numpy(), cv2.equalizeHist(imgs[i].numpy())), i


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


@pytest.mark.parametrize("crop", [44, 48])
def test_preprocess_views(crop):
    imgs = _images(5)
    pre = Preprocess(
        image_size=48, crop=crop, hist_eq=True, mean=torch.tensor(0.5), std=torch.tensor(0.25)
    )
    x = pre.normalize(imgs)
    assert torch.allclose(x[:, 0], (equalize_hist(imgs).float() / 255 - 0.5) / 0.25)
    none, flip, ten = pre(imgs, "none"), pre(imgs, "flip"), pre(imgs, "ten_crop")
    assert none.shape == (1, 5, 1, crop, crop)
    assert flip.shape == (2, 5, 1, crop, crop) and torch.equal(flip[1], flip[0].flip(-1))
    assert ten.shape == (10, 5, 1, crop, crop)
    assert torch.equal(ten[4], none[0])  # the fifth view is the centre crop
    assert torch.equal(ten[5:], ten[:5].flip(-1))
    restored = Preprocess.from_dict(pre.to_dict())
    assert torch.equal(restored(imgs, "ten_crop"), ten)
    with pytest.raises(ValueError, match="expected N×48×48"):
        pre(torch.zeros(2, 40, 40, dtype=torch.uint8))
