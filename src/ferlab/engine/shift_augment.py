"""Train-time augmentation against the shifts of real inputs (the shift suite's kinds).

The geometric shifts (framing 0.8-1.3×, in-plane rotation) are the ordinary
:class:`~ferlab.engine.augment.BatchAugment` zoom and rotation; this module adds what a camera
and a scene do to a face, on the uint8 images before normalisation, in the order they happen:

1. occlusion (``occlude``): a hand over mouth and chin, or dark glasses (half each);
2. light (``light``): one of dimmed brightness, low contrast or a gamma curve (a third each);
3. blur (``blur``): Gaussian, σ 0.3-2 pixels;
4. sensor noise (``noise``): Gaussian, σ 2-20 grey levels;
5. compression (``jpeg``): JPEG quality 10-60.

Each recipe key is the probability that an image gets that shift (0 = off), drawn
independently per image, so most images still show several clean or mildly shifted faces per
batch. The parameter ranges are wider than and include the shift suite's fixed settings
(:mod:`ferlab.engine.shifts`); faces from other datasets bring shifts beyond this list, which
is why the suite is a floor, not a proof. All randomness comes from the generator passed in
(seeded per step by the trainer), so a resumed run sees the same images.
"""

from __future__ import annotations

import math

import torch

from ferlab.engine import shift_ops as ops
from ferlab.engine.recipe import ShiftAugmentSection

__all__ = ["ShiftAugment"]


def _uniform(n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=gen)


class ShiftAugment:
    """Random shifts of uint8 faces N×H×W (see the module docstring)."""

    def __init__(self, cfg: ShiftAugmentSection) -> None:
        for key in ("occlude", "light", "blur", "noise", "jpeg"):
            p = getattr(cfg, key)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"shift_augment.{key} is a probability, not {p!r}")
        self.cfg = cfg

    @property
    def enabled(self) -> bool:
        c = self.cfg
        return any((c.occlude, c.light, c.blur, c.noise, c.jpeg))

    def __call__(self, images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Shifted copies of ``images`` (uint8 N×H×W, on the CPU)."""
        c, n = self.cfg, len(images)
        out = images.clone()
        # Every draw happens whether or not a shift is on, so that switching one shift off
        # leaves the others' random numbers unchanged (ablations compare like with like).
        picks = {k: torch.rand(n, generator=gen) < getattr(c, k) for k in _ORDER}
        occ_kind = torch.rand(n, generator=gen) < 0.5
        occ_shift = _uniform(n, -0.06, 0.06, gen)
        occ_tone = _uniform(n, 90, 230, gen)
        occ_side = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
        occ_dark = _uniform(n, 0.5, 1.0, gen)
        light_kind = torch.randint(3, (n,), generator=gen)
        light_bright = _uniform(n, 0.25, 1.4, gen)
        light_contrast = _uniform(n, 0.3, 1.2, gen)
        light_gamma = torch.exp(_uniform(n, math.log(0.4), math.log(2.5), gen))
        blur_sigma = _uniform(n, 0.3, 2.0, gen)
        noise_sigma = _uniform(n, 2.0, 20.0, gen)
        noise_gen = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=gen)))
        jpeg_q = torch.randint(10, 61, (n,), generator=gen)

        def on(mask: torch.Tensor, fn, *params: torch.Tensor) -> None:
            idx = torch.nonzero(mask).flatten()
            if len(idx):
                out[idx] = fn(out[idx], *(p[idx] for p in params))

        on(picks["occlude"] & occ_kind, ops.occlude_hand, occ_shift, occ_tone, occ_side)
        on(picks["occlude"] & ~occ_kind, ops.occlude_glasses, occ_shift, occ_dark)
        on(picks["light"] & (light_kind == 0), ops.brightness, light_bright)
        on(picks["light"] & (light_kind == 1), ops.contrast, light_contrast)
        on(picks["light"] & (light_kind == 2), ops.gamma, light_gamma)
        on(picks["blur"], ops.blur, blur_sigma)
        on(picks["noise"], lambda x, s: ops.noise(x, s, noise_gen), noise_sigma)
        on(picks["jpeg"], ops.jpeg, jpeg_q)
        return out


_ORDER = ("occlude", "light", "blur", "noise", "jpeg")
