"""Image shifts that real inputs bring, as batched operations on uint8 faces.

Every function takes a uint8 tensor N×H×W (grayscale faces) and one parameter per image (a
tensor of N values, or a number for all), and returns a new uint8 N×H×W tensor; nothing is drawn
at random here. Two users share them so that what the model is trained against is exactly what
it is tested against:

* :mod:`ferlab.engine.shift_augment` draws the parameters per image during training;
* :mod:`ferlab.engine.shifts` (the shift suite) fixes them per column and seed.

Geometry follows FER2013's framing: a 48×48 face has its eyes near 38 % of the height and its
mouth near 75 %, which is where the occluders are placed.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "blur",
    "brightness",
    "contrast",
    "gamma",
    "jpeg",
    "noise",
    "occlude_glasses",
    "occlude_hand",
    "reframe",
]


def _per_image(value: torch.Tensor | float, n: int) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.float32).expand(n).reshape(n, 1, 1)


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    return x.round_().clamp_(0, 255).to(torch.uint8)


def brightness(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Multiply every pixel by ``factor`` (0.3: a dim room; values above 255 clip)."""
    return _to_uint8(images.float() * _per_image(factor, len(images)))


def contrast(images: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Scale the deviations from each image's mean by ``factor`` (0.4: flat, hazy light)."""
    x = images.float()
    mean = x.mean(dim=(1, 2), keepdim=True)
    return _to_uint8((x - mean) * _per_image(factor, len(images)) + mean)


def gamma(images: torch.Tensor, value: torch.Tensor | float) -> torch.Tensor:
    """``255 · (x / 255) ** value``: above 1 darkens the mid-tones (under-exposure), below 1
    brightens them."""
    x = images.float() / 255.0
    return _to_uint8(x.pow(_per_image(value, len(images))) * 255.0)


def noise(
    images: torch.Tensor, sigma: torch.Tensor | float, generator: torch.Generator
) -> torch.Tensor:
    """Add Gaussian sensor noise of standard deviation ``sigma`` grey levels."""
    z = torch.randn(images.shape, generator=generator)
    return _to_uint8(images.float() + z * _per_image(sigma, len(images)))


def blur(images: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Gaussian blur (out of focus, motion-free) of standard deviation ``sigma`` pixels.

    One grouped convolution for the whole batch: every image gets its own kernel (σ 0 keeps it
    unchanged), reflect-padded at the borders.
    """
    n = len(images)
    s = torch.as_tensor(sigma, dtype=torch.float32).expand(n).clamp(min=1e-3)
    radius = max(1, math.ceil(3 * float(s.max())))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t[None] ** 2) / (2 * s[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # N × K, separable
    x = images.float()[None]  # 1 × N × H × W: images as channels of one grouped conv
    x = F.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = F.conv2d(x, k[:, None, None, :], groups=n)
    x = F.pad(x, (0, 0, radius, radius), mode="reflect")
    x = F.conv2d(x, k[:, None, :, None], groups=n)
    return _to_uint8(x[0])


def jpeg(images: torch.Tensor, quality: torch.Tensor | int) -> torch.Tensor:
    """Encode and decode every image as JPEG at ``quality`` (1-95; 20 is a heavily compressed
    web or messenger image). Quality 100 or more leaves an image unchanged."""
    n = len(images)
    q = torch.as_tensor(quality).expand(n).tolist()
    out = images.clone()
    arr = images.numpy()
    for i, qi in enumerate(q):
        if qi >= 100:
            continue
        buf = io.BytesIO()
        Image.fromarray(arr[i], mode="L").save(buf, format="JPEG", quality=int(qi))
        buf.seek(0)
        out[i] = torch.from_numpy(np.asarray(Image.open(buf).convert("L")).copy())
    return out


def reframe(
    images: torch.Tensor,
    scale: torch.Tensor | float,
    angle: torch.Tensor | float = 0.0,
    fill: str = "reflection",
) -> torch.Tensor:
    """Re-crop every face at ``scale`` times FER2013's framing, rotated by ``angle`` degrees.

    ``scale`` 0.8 is a tight crop (the face fills more of the image, hair and chin are cut, like
    lab datasets' crops); 1.3 is a loose one (pixels from outside the original image are filled
    by ``fill``: ``reflection``, ``border`` or ``zeros`` (black)). The output keeps the input's
    size.
    """
    n, h, w = images.shape
    s = torch.as_tensor(scale, dtype=torch.float32).expand(n)
    a = torch.deg2rad(torch.as_tensor(angle, dtype=torch.float32).expand(n))
    cos, sin = torch.cos(a) * s, torch.sin(a) * s
    zero = torch.zeros(n)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    x = F.grid_sample(
        images.float()[:, None], grid, mode="bilinear", padding_mode=fill, align_corners=False
    )
    return _to_uint8(x[:, 0])


def _ellipse_mask(
    h: int, w: int, cy: torch.Tensor, cx: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor
) -> torch.Tensor:
    """Soft (1-pixel ramp) filled ellipses N×H×W with centres and radii in pixels."""
    yy = torch.arange(h, dtype=torch.float32)[None, :, None] + 0.5
    xx = torch.arange(w, dtype=torch.float32)[None, None, :] + 0.5
    d = ((yy - cy[:, None, None]) / ry[:, None, None]) ** 2 + (
        (xx - cx[:, None, None]) / rx[:, None, None]
    ) ** 2
    # d = 1 on the rim; the ramp is about one pixel wide at the smaller radius.
    width = 2.0 / torch.minimum(ry, rx)[:, None, None]
    return ((1.0 + width - d) / width).clamp(0.0, 1.0)


def occlude_hand(
    images: torch.Tensor,
    shift: torch.Tensor | float = 0.0,
    tone: torch.Tensor | float = 170.0,
    side: torch.Tensor | float = 1.0,
) -> torch.Tensor:
    """A hand-like blob over the mouth and chin, coming in from one side.

    A uniform, lightly shaded ellipse of grey level ``tone`` (skin) covering about a quarter of the
    face at mouth height; ``shift`` moves it up or down by that fraction of the height and
    ``side`` (+1 right, -1 left) picks where the hand comes from.
    """
    n, h, w = images.shape
    shift_t = torch.as_tensor(shift, dtype=torch.float32).expand(n)
    side_t = torch.as_tensor(side, dtype=torch.float32).expand(n).sign()
    cy = (0.78 + shift_t) * h
    cx = (0.5 + 0.22 * side_t) * w
    mask = _ellipse_mask(h, w, cy, cx, torch.full((n,), 0.2 * h), torch.full((n,), 0.36 * w))
    xx = torch.arange(w, dtype=torch.float32)[None, None, :] / w
    # Light falls from the top: shade the blob a little from top to bottom and across.
    shade = _per_image(tone, n) * (1.0 - 0.15 * (xx - 0.5) * side_t[:, None, None])
    return _to_uint8(images.float() * (1 - mask) + shade * mask)


def occlude_glasses(
    images: torch.Tensor,
    shift: torch.Tensor | float = 0.0,
    darkness: torch.Tensor | float = 0.85,
) -> torch.Tensor:
    """Dark glasses: two lenses at eye height joined by a bridge.

    ``darkness`` 1 is opaque black sunglasses, 0 leaves the eyes visible (the frames remain);
    ``shift`` moves the glasses up or down by that fraction of the height.
    """
    n, h, w = images.shape
    shift_t = torch.as_tensor(shift, dtype=torch.float32).expand(n)
    cy = (0.39 + shift_t) * h
    ry, rx = torch.full((n,), 0.1 * h), torch.full((n,), 0.15 * w)
    left = _ellipse_mask(h, w, cy, torch.full((n,), 0.31 * w), ry, rx)
    right = _ellipse_mask(h, w, cy, torch.full((n,), 0.69 * w), ry, rx)
    yy = torch.arange(h, dtype=torch.float32)[None, :, None] + 0.5
    xx = torch.arange(w, dtype=torch.float32)[None, None, :] + 0.5
    bridge = ((yy - cy[:, None, None]).abs() < 0.03 * h) & ((xx - 0.5 * w).abs() < 0.06 * w)
    lenses = torch.maximum(left, right)
    # Rims (the outer 1.2 pixels of each lens) are opaque, lenses as dark as asked.
    inner = torch.maximum(
        _ellipse_mask(h, w, cy, torch.full((n,), 0.31 * w), ry - 1.2, rx - 1.2),
        _ellipse_mask(h, w, cy, torch.full((n,), 0.69 * w), ry - 1.2, rx - 1.2),
    )
    rim = (lenses - inner).clamp(0, 1)
    alpha = torch.maximum(lenses * _per_image(darkness, n), torch.maximum(rim, bridge.float()))
    return _to_uint8(images.float() * (1 - alpha) + 15.0 * alpha)
