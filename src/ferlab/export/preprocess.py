"""The checkpoint's image preparation in numpy, for runtimes that run without PyTorch.

:class:`ArrayPreprocess` mirrors :class:`ferlab.engine.augment.Preprocess` operation by
operation (same histogram-equalisation lookup table, same float32 division order, same crops,
padding and mirrors for test-time augmentation), so an ONNX model fed by it sees bit-identical
input to the PyTorch model fed by ``Preprocess``. It imports neither torch nor OpenCV.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ArrayPreprocess", "equalize_hist"]


def equalize_hist(images: np.ndarray) -> np.ndarray:
    """Histogram-equalise every image of a uint8 N×H×W array (the lookup table of
    :func:`ferlab.engine.augment.equalize_hist`; constant images are returned unchanged)."""
    if images.dtype != np.uint8:
        raise ValueError("equalize_hist expects uint8 images")
    n = images.shape[0]
    if n == 0:
        return images.copy()
    flat = images.reshape(n, -1).astype(np.int64)
    n_pix = flat.shape[1]
    hist = np.bincount((flat + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n)
    cdf = hist.reshape(n, 256).cumsum(1)
    cdf_min = np.take_along_axis(cdf, flat.min(1, keepdims=True), 1)
    denom = np.maximum(n_pix - cdf_min, 1)
    lut = (np.maximum(cdf - cdf_min, 0) * 255 + denom // 2) // denom
    lut = np.where(n_pix - cdf_min == 0, np.arange(256), lut)
    return np.take_along_axis(lut, flat, 1).astype(np.uint8).reshape(images.shape)


@dataclass
class ArrayPreprocess:
    """Equalise, normalise, crop and build test-time views of uint8 faces, in numpy.

    Attributes are those of :class:`ferlab.engine.augment.Preprocess`: ``image_size`` (side of
    the stored faces), ``crop`` (side of the network input), ``hist_eq``, and ``mean``/``std`` on
    the [0, 1] scale (scalars, or ``image_size`` × ``image_size`` maps).
    """

    image_size: int = 48
    crop: int = 48
    hist_eq: bool = False
    mean: np.ndarray = field(default_factory=lambda: np.float32(0.0))
    std: np.ndarray = field(default_factory=lambda: np.float32(1.0))

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32)
        self.std = np.asarray(self.std, dtype=np.float32)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArrayPreprocess:
        """From ``Preprocess.to_dict()`` (tensors) or its JSON form (numbers and lists)."""
        return cls(
            image_size=int(d["image_size"]),
            crop=int(d["crop"]),
            hist_eq=bool(d["hist_eq"]),
            mean=np.asarray(d["mean"], dtype=np.float32),
            std=np.asarray(d["std"], dtype=np.float32),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: floats exactly as stored in float32, maps as nested lists."""
        return {
            "image_size": self.image_size,
            "crop": self.crop,
            "hist_eq": self.hist_eq,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
        }

    def normalize(self, images: np.ndarray) -> np.ndarray:
        """uint8 N×S×S → normalised float32 N×1×S×S (equalised first when ``hist_eq``)."""
        if images.ndim != 3 or images.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(
                f"expected N×{self.image_size}×{self.image_size} images, got {images.shape}"
            )
        if self.hist_eq:
            images = equalize_hist(images)
        # The same float32 operations in the same order as Preprocess.normalize.
        x = images.astype(np.float32) / np.float32(255.0)
        x = (x - self.mean) / self.std
        return x[:, None]

    def crop_offsets(self) -> list[tuple[int, int]]:
        """Top-left corners (x, y) of the five ten-crop windows: 4 corners, then the centre."""
        if self.crop < self.image_size:
            full, c = self.image_size, self.crop
        else:  # whole-image models: windows of the image padded by 2 pixels (see Preprocess)
            full, c = self.image_size + 4, self.crop
        far = full - c
        return [(0, 0), (far, 0), (0, far), (far, far), (far // 2, far // 2)]

    def views(self, x: np.ndarray, tta: str = "none") -> np.ndarray:
        """Test-time views V×N×1×crop×crop of normalised faces N×1×S×S (see ``Preprocess``)."""
        c = self.crop
        if tta in ("none", "flip"):
            o = (self.image_size - c) // 2
            centre = x[..., o : o + c, o : o + c]
            if tta == "none":
                return np.ascontiguousarray(centre[None])
            return np.stack([centre, centre[..., ::-1]])
        if tta == "ten_crop":
            src = x if c < self.image_size else np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
            crops = [src[..., oy : oy + c, ox : ox + c] for ox, oy in self.crop_offsets()]
            return np.stack(crops + [v[..., ::-1] for v in crops])
        raise ValueError(f"unknown test-time augmentation {tta!r}")

    def __call__(self, images: np.ndarray, tta: str = "none") -> np.ndarray:
        """uint8 N×S×S → the network's input views V×N×1×crop×crop."""
        return self.views(self.normalize(images), tta)
