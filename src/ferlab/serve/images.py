"""Decoding uploads within a pixel budget, judged from the image's header before any decoding.

A 260 kB PNG can hold 90 megapixels (270 MB of RGB, seconds of one core to inflate). The size
in the header decides, before a pixel is decoded:

* within the budget: decoded as ``ferlab predict`` decodes a file
  (:func:`ferlab.recognize.decode_image`);
* a larger JPEG: decoded reduced by 2, 4 or 8 (the JPEG decoder's own scaling, which skips most
  of the work), the least reduction that fits; faces' boxes are scaled back to the original's
  pixels, so answers do not depend on the reduction;
* any other larger image: refused (413, code ``too_many_pixels``) with a message stating the
  budget.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass

import numpy as np

from ferlab.errors import DataError
from ferlab.recognize import decode_image
from ferlab.serve.errors import ApiError

__all__ = ["Decoded", "decode_within"]

#: The reductions the JPEG decoder does itself.
_JPEG_SCALES = (2, 4, 8)


@dataclass(frozen=True)
class Decoded:
    """A decoded BGR image and the factor that takes its pixels back to the original's."""

    image: np.ndarray
    scale: int = 1

    def box(self, box: tuple[int, ...] | list[int]) -> list[int]:
        """``box`` (x, y, w, h) in the original image's pixels."""
        return [int(v) * self.scale for v in box]


def _header(data: bytes) -> tuple[int, int, str | None] | None:
    """Width, height and format from the header, or ``None`` when Pillow cannot tell (the full
    decoder then gives the precise error)."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                return image.size[0], image.size[1], image.format
    except Image.DecompressionBombError as exc:
        # Beyond twice Pillow's own limit it will not even open; the size is in the message.
        pixels = re.search(r"\d+", str(exc))
        return (int(pixels.group()), 1, None) if pixels else None
    except Exception:  # unreadable: let decode_image say why
        return None


def _jpeg_ceiling(budget: int) -> int:
    """Most pixels of a JPEG decoded reduced: 1/8 of each side must fit, and Pillow opens
    nothing beyond twice its own bomb limit."""
    from PIL import Image

    return min(64 * budget, 2 * (Image.MAX_IMAGE_PIXELS or 64 * budget))


def _refuse(name: str, width: int, height: int, budget: int) -> ApiError:
    size = f"{width}×{height} = " if height > 1 else ""
    return ApiError(
        413,
        f"'{name}' is {size}{width * height / 1e6:.1f} megapixels, over this server's pixel "
        f"budget of {budget / 1e6:g} megapixels (--max-megapixels); a JPEG up to "
        f"{_jpeg_ceiling(budget) / 1e6:.0f} megapixels is decoded reduced to fit, any other "
        "format must be within the budget",
        "too_many_pixels",
    )


def decode_within(data: bytes, name: str, budget: int) -> Decoded:
    """``data`` decoded to BGR within ``budget`` pixels (see the module).

    Raises:
        ApiError: 413 beyond the budget (see the module); 422 when ``data`` is not a readable
            image.
    """
    header = _header(data)
    try:
        if header is None or header[0] * header[1] <= budget:
            return Decoded(decode_image(data, name))
        width, height, fmt = header
        scale = next(
            (s for s in _JPEG_SCALES if math.ceil(width / s) * math.ceil(height / s) <= budget),
            None,
        )
        if fmt != "JPEG" or scale is None or width * height > _jpeg_ceiling(budget):
            raise _refuse(name, width, height, budget)
        return Decoded(_jpeg_reduced(data, name, width, height, scale), scale)
    except DataError as exc:
        raise ApiError(422, str(exc), "invalid_image") from None


def _jpeg_reduced(data: bytes, name: str, width: int, height: int, scale: int) -> np.ndarray:
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                image.draft("RGB", (math.ceil(width / scale), math.ceil(height / scale)))
                image.load()
                upright = ImageOps.exif_transpose(image).convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"corrupt or unreadable image ({exc})", path=name) from None
    return np.ascontiguousarray(np.asarray(upright)[:, :, ::-1])
