"""How faces become network input: one definition, in numpy, for every runtime.

:class:`Preprocess` is stored in every checkpoint and ONNX export. It histogram-equalises when
the model was trained so, normalises, takes the centre crop and builds the test-time views; the
PyTorch backend, the ONNX Runtime backend and the training engine's evaluation all feed their
networks from it, so the three see bit-identical input. It imports neither PyTorch nor OpenCV.

Test-time augmentation (TTA) is chosen here too: :data:`TTA_CHOICES`, :func:`check_tta` and
:func:`resolve_tta`, which decides what "no choice" means (the model's own, or
:data:`STREAM_TTA` for tracked video and camera frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ferlab.errors import UnknownNameError

__all__ = [
    "STREAM_TTA",
    "TTA_CHOICES",
    "TTA_VIEWS",
    "Preprocess",
    "check_tta",
    "equalize_hist",
    "resolve_tta",
]

#: ``none``: the centre crop; ``flip``: and its mirror; ``ten_crop``: four corner crops and the
#: centre crop, each also mirrored (10 network inputs per face).
TTA_CHOICES = ("none", "flip", "ten_crop")
#: Network inputs per face under each TTA: its cost relative to ``none``.
TTA_VIEWS = {"none": 1, "flip": 2, "ten_crop": 10}

#: TTA of tracked video and camera frames when none is chosen: per-track smoothing already
#: averages each face over frames, and one input per face instead of ten doubles the frame rate
#: (docs/benchmarks.md, "Recognizer").
STREAM_TTA = "none"


def check_tta(tta: str) -> str:
    """``tta`` when it is one of :data:`TTA_CHOICES`, else a one-line error listing them."""
    if tta not in TTA_CHOICES:
        raise UnknownNameError("test-time augmentation", tta, list(TTA_CHOICES))
    return tta


def resolve_tta(chosen: str | None, recorded: str | None = None, *, stream: bool = False) -> str:
    """The TTA to apply: ``chosen`` when given; otherwise :data:`STREAM_TTA` for streams, else
    the one the model records (``recorded``), else ``none``."""
    if chosen is not None:
        return check_tta(chosen)
    if stream:
        return STREAM_TTA
    return check_tta(recorded or "none")


def equalize_hist(images: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Histogram-equalise every image of a uint8 N×H×W array (OpenCV's ``equalizeHist``).

    The lookup table of each image is ``round((cdf(v) - cdf_min) * 255 / (n - cdf_min))``;
    constant images (e.g. FER2013's all-black rows) are returned unchanged. Works in chunks of
    images so that a whole dataset needs little extra memory.
    """
    if images.dtype != np.uint8:
        raise ValueError("equalize_hist expects uint8 images")
    out = np.empty_like(images)
    n_pix = images.shape[-1] * images.shape[-2] if images.ndim == 3 else 0
    for lo in range(0, images.shape[0], chunk):
        flat = images[lo : lo + chunk].reshape(-1, n_pix).astype(np.int64)
        n = flat.shape[0]
        hist = np.bincount((flat + 256 * np.arange(n)[:, None]).ravel(), minlength=256 * n)
        cdf = hist.reshape(n, 256).cumsum(1)
        # cdf_min: the cdf at the darkest pixel value present.
        cdf_min = np.take_along_axis(cdf, flat.min(1, keepdims=True), 1)
        denom = np.maximum(n_pix - cdf_min, 1)
        lut = (np.maximum(cdf - cdf_min, 0) * 255 + denom // 2) // denom
        lut = np.where(n_pix - cdf_min == 0, np.arange(256), lut)
        block = np.take_along_axis(lut, flat, 1).astype(np.uint8)
        out[lo : lo + chunk] = block.reshape(-1, *images.shape[1:])
    return out


@dataclass
class Preprocess:
    """The deterministic preparation of faces, identical in training, evaluation and serving.

    Attributes:
        image_size: side of the stored faces (48 for FER2013).
        crop: side of the network input; smaller than ``image_size`` for crop-trained models.
        hist_eq: histogram-equalise faces first.
        mean, std: normalisation statistics on the [0, 1] scale, float32 scalars or
            ``image_size`` × ``image_size`` maps.
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
    def from_dict(cls, d: dict[str, Any]) -> Preprocess:
        """From :meth:`to_dict`, a checkpoint's ``preprocess`` (tensors) or its JSON form."""
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

    def normalize(self, images: np.ndarray, *, equalized: bool = False) -> np.ndarray:
        """uint8 N×S×S → normalised float32 N×1×S×S (equalised first when ``hist_eq``, unless
        the faces are ``equalized`` already, as the training engine stores its data)."""
        if images.ndim != 3 or images.shape[1:] != (self.image_size, self.image_size):
            raise ValueError(
                f"expected N×{self.image_size}×{self.image_size} images, got {images.shape}"
            )
        if self.hist_eq and not equalized:
            images = equalize_hist(images)
        # float32 throughout: (x / 255 - mean) / std, each step rounded to float32.
        x = images.astype(np.float32) / np.float32(255.0)
        x = (x - self.mean) / self.std
        return x[:, None]

    def crop_offsets(self) -> list[tuple[int, int]]:
        """Top-left corners (x, y) of the five ten-crop windows: 4 corners, then the centre."""
        if self.crop < self.image_size:
            full, c = self.image_size, self.crop
        else:
            # Models trained on whole images: pad by 2 pixels each side (zeros: the mean after
            # normalisation) and take whole-size windows, the centre view plus ±2-pixel shifts.
            full, c = self.image_size + 4, self.crop
        far = full - c
        return [(0, 0), (far, 0), (0, far), (far, far), (far // 2, far // 2)]

    def views(self, x: np.ndarray, tta: str = "none") -> np.ndarray:
        """Test-time views V×N×1×crop×crop of normalised faces N×1×S×S; the caller averages the
        softmax over the V views (see :data:`TTA_CHOICES`)."""
        c = self.crop
        check_tta(tta)
        if tta in ("none", "flip"):
            o = (self.image_size - c) // 2
            centre = x[..., o : o + c, o : o + c]
            if tta == "none":
                return np.ascontiguousarray(centre[None])
            return np.stack([centre, centre[..., ::-1]])
        src = x if c < self.image_size else np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
        crops = [src[..., oy : oy + c, ox : ox + c] for ox, oy in self.crop_offsets()]
        return np.stack(crops + [v[..., ::-1] for v in crops])

    def __call__(self, images: np.ndarray, tta: str = "none", *, equalized: bool = False):
        """uint8 N×S×S → the network's input views V×N×1×crop×crop (float32)."""
        return self.views(self.normalize(images, equalized=equalized), tta)
