"""Image preparation and augmentation on whole batches of tensors.

The dataset stays in memory as uint8 N×48×48 (:class:`~ferlab.data.FERData`). Every training
step gathers one batch of it and runs, as a handful of tensor operations on the whole batch:

1. normalisation (global or per-pixel mean/std, computed once on the training split),
2. one affine sampling grid + ``grid_sample`` that performs the random crop (or pad-and-crop),
   horizontal flip, shift, rotation, zoom, shear and elastic distortion together, and
3. random erasing, then optionally mixup or CutMix.

Histogram equalisation is deterministic, so it is computed once over the whole dataset
(:func:`ferlab.inference.preprocess.equalize_hist`) instead of per batch. No per-image PIL work
happens in the hot path.

Random draws are split from their application (:meth:`BatchAugment.sample` /
:meth:`BatchAugment.apply`) so that data-parallel processes can draw the parameters of the whole
global batch with the same generator and each apply only its own slice: the result is then
identical to one process augmenting the whole batch.

The deterministic half (equalise, normalise, centre crop, test-time views) is
:class:`ferlab.inference.preprocess.Preprocess`, stored in every checkpoint so that prediction
prepares images exactly as training did; :func:`normalize_batch` is its normalisation on a
tensor batch, for training steps on any device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ferlab.engine.recipe import AugmentSection

__all__ = ["BatchAugment", "normalize_batch", "norm_stats"]


def norm_stats(images: torch.Tensor, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of uint8 images scaled to [0, 1].

    ``global`` gives scalars, ``per_pixel`` gives H×W maps (Jahromi & Fyshe normalise every pixel
    by its own training-set statistics), ``none`` gives (0, 1).
    """
    if mode == "none":
        return torch.tensor(0.0), torch.tensor(1.0)
    x = images.double() / 255.0
    if mode == "global":
        return x.mean().float(), x.std().clamp(min=1e-3).float()
    if mode == "per_pixel":
        return x.mean(0).float(), x.std(0).clamp(min=1e-3).float()
    raise ValueError(f"unknown normalisation {mode!r}")


def normalize_batch(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 N×H×W → normalised float N×1×H×W, the float32 arithmetic of
    :meth:`ferlab.inference.preprocess.Preprocess.normalize` on a tensor (any device)."""
    return images.float().div_(255.0).sub_(mean).div_(std).unsqueeze(1)


class BatchAugment:
    """Random augmentation of a normalised batch N×1×H×W into N×1×S×S network inputs."""

    def __init__(self, cfg: AugmentSection, image_size: int, out_size: int) -> None:
        self.cfg = cfg
        self.image_size = image_size
        self.out_size = out_size
        if out_size > image_size + 2 * cfg.pad:
            raise ValueError(f"crop {out_size} is larger than the padded image")

    def sample(self, n: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw the parameters of ``n`` images (only for the augmentations that are on)."""
        c, full, s = self.cfg, self.image_size, self.out_size
        p: dict[str, torch.Tensor] = {}
        lo, hi = -c.pad, full + c.pad - s
        p["ox"] = torch.randint(lo, hi + 1, (n,), generator=gen)
        p["oy"] = torch.randint(lo, hi + 1, (n,), generator=gen)
        if c.flip:
            p["flip"] = torch.rand(n, generator=gen) < 0.5
        if c.shift:
            p["shift"] = (torch.rand(n, 2, generator=gen) * 2 - 1) * c.shift
        if c.rotate:
            p["rotate"] = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(c.rotate)
        if c.scale:
            p["scale"] = 1 + (torch.rand(n, generator=gen) * 2 - 1) * c.scale
        if c.shear:
            p["shear"] = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(c.shear)
        if c.elastic:
            p["elastic"] = torch.rand(n, 2, 4, 4, generator=gen) * 2 - 1
        if c.erase:
            p["erase"] = torch.rand(n, generator=gen) < c.erase
            p["erase_area"] = 0.02 + torch.rand(n, generator=gen) * 0.23
            p["erase_logr"] = (torch.rand(n, generator=gen) * 2 - 1) * math.log(3.3)
            p["erase_pos"] = torch.rand(n, 2, generator=gen)
        return p

    @staticmethod
    def slice(params: dict[str, torch.Tensor], lo: int, hi: int) -> dict[str, torch.Tensor]:
        return {k: v[lo:hi] for k, v in params.items()}

    def _geometric(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        n, full, s, dev = x.shape[0], self.image_size, self.out_size, x.device
        plain = not any(k in p for k in ("shift", "rotate", "scale", "shear", "elastic"))
        if plain:
            # Integer crops and flips only: exact gather, no resampling.
            pad = self.cfg.pad
            src = F.pad(x, (pad,) * 4, mode=_pad_mode(self.cfg.fill)) if pad else x
            ar = torch.arange(s, device=dev)
            rows = (p["oy"] + pad)[:, None] + ar
            cols = (p["ox"] + pad)[:, None] + ar
            if "flip" in p:
                cols = torch.where(p["flip"][:, None], cols.flip(1), cols)
            idx = torch.arange(n, device=dev)[:, None, None]
            return src[idx, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)
        # Output normalised coords u ∈ [-1, 1] map to input normalised coords x = M u + t
        # (align_corners=False, so integer crop offsets land exactly on pixel centres), with
        # M = rotation · shear · diag(±k, k) and k = crop/size / zoom. The 2×2 entries are kept
        # as per-image vectors: batches of tiny matrices cost more in overhead than arithmetic.
        dtype = x.dtype
        k = torch.full((n,), s / full, device=dev)
        if "scale" in p:
            k = k / p["scale"]
        m00 = torch.where(p["flip"], -k, k) if "flip" in p else k
        m01, m10, m11 = torch.zeros_like(k), torch.zeros_like(k), k
        if "shear" in p:
            tan = torch.tan(p["shear"])
            m00, m01 = m00 + tan * m10, m01 + tan * m11
        if "rotate" in p:
            cos, sin = torch.cos(p["rotate"]), torch.sin(p["rotate"])
            m00, m01, m10, m11 = (
                cos * m00 - sin * m10,
                cos * m01 - sin * m11,
                sin * m00 + cos * m10,
                sin * m01 + cos * m11,
            )
        tx = (p["ox"] * 2 + s) / full - 1
        ty = (p["oy"] * 2 + s) / full - 1
        if "shift" in p:
            tx, ty = tx + p["shift"][:, 0] * 2, ty + p["shift"][:, 1] * 2
        # The sampling grid N×S×S×2 by broadcasting (F.affine_grid computes the same as a batched
        # matrix product with an inner dimension of 3, measured 20-40× slower on CPU).
        u = (torch.arange(s, device=dev, dtype=dtype) * 2 + 1) / s - 1  # output pixel centres
        along_x = torch.stack([m00, m10], -1).to(dtype)[:, None, None, :]
        along_y = torch.stack([m01, m11], -1).to(dtype)[:, None, None, :]
        offset = torch.stack([tx, ty], -1).to(dtype)[:, None, None, :]
        grid = u[None, None, :, None] * along_x + (u[None, :, None, None] * along_y + offset)
        if "elastic" in p:
            field = F.interpolate(p["elastic"], size=(s, s), mode="bicubic", align_corners=True)
            grid = grid + (field * (2 * self.cfg.elastic / full)).permute(0, 2, 3, 1).to(dtype)
        return F.grid_sample(
            x, grid, mode="bilinear", padding_mode=self.cfg.fill, align_corners=False
        )

    def _erase(self, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        s = x.shape[-1]
        ratio = torch.exp(p["erase_logr"])
        h = (torch.sqrt(p["erase_area"] * ratio) * s).clamp(1, s).floor()
        w = (torch.sqrt(p["erase_area"] / ratio) * s).clamp(1, s).floor()
        y0 = (p["erase_pos"][:, 0] * (s - h + 1)).floor()
        x0 = (p["erase_pos"][:, 1] * (s - w + 1)).floor()
        ar = torch.arange(s, dtype=h.dtype, device=x.device)
        inside_r = (ar[None] >= y0[:, None]) & (ar[None] < (y0 + h)[:, None])
        inside_c = (ar[None] >= x0[:, None]) & (ar[None] < (x0 + w)[:, None])
        mask = inside_r[:, :, None] & inside_c[:, None, :] & p["erase"][:, None, None]
        # Erased pixels get 0: the dataset mean after normalisation.
        return x.masked_fill(mask[:, None], 0.0)

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augment normalised images N×1×H×W with parameters drawn by :meth:`sample`."""
        x = self._geometric(x, params)
        if "erase" in params:
            x = self._erase(x, params)
        return x

    def mix(
        self, x: torch.Tensor, target: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixup or CutMix of a batch and its probability targets N×C (no-op when both are off)."""
        c = self.cfg
        if not (c.mixup or c.cutmix):
            return x, target
        seed = int(torch.randint(2**62, (1,), generator=gen))
        rng = np.random.default_rng(seed)
        use_cutmix = bool(c.cutmix) and (not c.mixup or rng.random() < 0.5)
        alpha = c.cutmix if use_cutmix else c.mixup
        lam = float(rng.beta(alpha, alpha))
        perm = torch.randperm(x.shape[0], generator=gen).to(x.device)
        if use_cutmix:
            s = x.shape[-1]
            cut = math.sqrt(1 - lam)
            h = w = int(s * cut)
            cy, cx = int(rng.integers(s)), int(rng.integers(s))
            y0, y1 = max(cy - h // 2, 0), min(cy + h // 2, s)
            x0, x1 = max(cx - w // 2, 0), min(cx + w // 2, s)
            x = x.clone()
            x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
            lam = 1 - (y1 - y0) * (x1 - x0) / (s * s)
        else:
            x = x * lam + x[perm] * (1 - lam)
        return x, target * lam + target[perm] * (1 - lam)


def _pad_mode(fill: str) -> str:
    return {"zeros": "constant", "border": "replicate", "reflection": "reflect"}[fill]
