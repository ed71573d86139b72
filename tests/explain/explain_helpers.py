"""A synthetic task whose class only one image region decides, to check where heat maps point.

Shared by the localisation test and ``benchmarks/bench_explain.py``.
"""

from __future__ import annotations

import numpy as np
import torch

import ferlab

#: Region (top, left, side) whose content alone decides the class of the synthetic faces.
REGION = (8, 28, 16)


def region_task(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noise faces whose class is an 8×8 square somewhere inside :data:`REGION`: bright for
    class 0, dark for class 1; nothing else in the image depends on the class."""
    rng = np.random.default_rng(seed)
    images = rng.normal(110, 25, (n, 48, 48)).clip(0, 255)
    labels = rng.integers(0, 2, n)
    top, left, side = REGION
    for i in range(n):
        y, x = top + rng.integers(0, side - 7), left + rng.integers(0, side - 7)
        images[i, y : y + 8, x : x + 8] = 235 if labels[i] == 0 else 15
    return images.astype(np.uint8), labels


def train_on_region_task(name: str, steps: int = 60, **kwargs) -> torch.nn.Module:
    """A two-class zoo model trained ``steps`` Adam steps (batch 32) on :func:`region_task`."""
    torch.manual_seed(0)
    model = ferlab.create_model(name, num_classes=2, input_size=48, **kwargs)
    images, labels = region_task(512, seed=0)
    x = torch.from_numpy(images).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        batch = torch.randint(0, len(x), (32,), generator=gen)
        loss = torch.nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def heat_in_region(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per map: the share of its heat inside :data:`REGION` (the region is 11 % of the image; 0
    for an empty map), and whether its peak lies within 3 pixels of the region."""
    top, left, side = REGION
    total = maps.sum((1, 2))
    region = maps[:, top : top + side, left : left + side].sum((1, 2))
    inside = np.divide(region, total, out=np.zeros_like(total), where=total > 0)  # empty: 0
    peaks = np.array([np.unravel_index(m.argmax(), m.shape) for m in maps])
    near = (abs(peaks - (top + side / 2, left + side / 2)) <= side / 2 + 3).all(1)
    return inside, near
