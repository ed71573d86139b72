"""Reading images for recognition: files through Pillow, arrays as given, all to BGR uint8.

Everything becomes an H×W×3 uint8 BGR array (OpenCV's order, which detection and drawing use):

* **Formats**: whatever Pillow reads — JPEG, PNG, BMP, WebP, TIFF and more. Folders are scanned
  for the extensions in :data:`IMAGE_EXTENSIONS`.
* **EXIF orientation** is applied (``ImageOps.exif_transpose``), so a phone photo stored sideways
  is processed the way it is displayed and boxes refer to the upright image.
* **Modes**: grayscale and 1-bit images are expanded to three equal channels; transparency
  (RGBA, LA, palette with transparency) is composited onto white, as image viewers show it;
  16-bit images (``I;16``, ``I``) are scaled from 0–65535 to 0–255, float images (``F``) from
  0–1 when their maximum is at most 1 and clipped to 0–255 otherwise; CMYK, YCbCr and other
  colour modes go through Pillow's RGB conversion.
* **Decompression bombs**: Pillow refuses images above twice ``Image.MAX_IMAGE_PIXELS`` (about
  179 megapixels by default) and warns above it; both are reported here as a
  :class:`~ferlab.errors.DataError` naming the file, before any pixel is decoded. Large images
  below the limit are read in full and downscaled for detection only (see
  :mod:`ferlab.recognize.detect`).
* **Arrays** are BGR (OpenCV's convention) unless ``color="rgb"``; 2-D arrays are grayscale and a
  fourth channel is dropped. uint8 is taken as is, uint16 is scaled from 0–65535, floats are
  taken as 0–1, booleans as black/white.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import cv2
import numpy as np

from ferlab.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "array_to_bgr",
    "decode_image",
    "folder_images",
    "list_images",
    "load_image",
]

#: Extensions treated as images when a folder is scanned (any file given by name is tried).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
#: Extensions treated as videos.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
)


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted; other files are ignored."""
    return sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )


def folder_images(folder: Path) -> list[Path]:
    """:func:`list_images` of a folder given as a source; a :class:`DataError` naming it when it
    holds none."""
    files = list_images(folder)
    if not files:
        raise DataError(
            "no images in this folder (JPEG, PNG, BMP, WebP or TIFF, searched recursively; "
            "videos are read when named)",
            path=folder,
        )
    return files


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file as an H×W×3 uint8 BGR array, upright (EXIF orientation applied).

    Raises:
        DataError: the file is missing, not an image, corrupt or truncated, or a decompression
            bomb; the message names the file.
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file", path=path)
    if path.is_dir():
        raise DataError("is a folder, not an image", path=path)
    return _decode(path, path)


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode an encoded image held in memory (an upload, a network frame) like
    :func:`load_image` reads a file, with the same decompression-bomb refusal.

    Raises:
        DataError: the bytes are not an image, corrupt, or a decompression bomb; the message
            names ``name``.
    """
    return _decode(io.BytesIO(data), name)


def _decode(source: Path | io.BytesIO, name: str | Path) -> np.ndarray:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns between one and two times its pixel limit; refuse those too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)  # in place: no copy when upright
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DataError(
            f"refused as a possible decompression bomb ({exc}); raise "
            "PIL.Image.MAX_IMAGE_PIXELS if the image is genuine",
            path=name,
        ) from None
    except UnidentifiedImageError:
        raise DataError(
            "not an image Pillow can read (JPEG, PNG, BMP, WebP, TIFF, ...)", path=name
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        # Pillow reports truncated or corrupt data as OSError (SyntaxError for some headers).
        raise DataError(f"corrupt or unreadable image ({exc})", path=name) from None
    return _pil_to_bgr(image)


def _pil_to_bgr(image) -> np.ndarray:  # noqa: ANN001 - PIL.Image.Image, imported lazily
    from PIL import Image

    mode = image.mode
    if mode.startswith("I"):  # I;16, I;16B, I;16L, I (32-bit): 16-bit range
        gray = np.asarray(image).astype(np.float32)
        return _gray_to_bgr(np.clip(gray / 257.0, 0, 255).round().astype(np.uint8))
    if mode == "F":
        gray = np.asarray(image, dtype=np.float32)
        gray = np.nan_to_num(gray, nan=0.0)
        if gray.size and gray.max() <= 1.0:
            gray = gray * 255.0
        return _gray_to_bgr(np.clip(gray, 0, 255).round().astype(np.uint8))
    if mode in ("1", "L"):
        return _gray_to_bgr(np.asarray(image.convert("L")))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode == "P" and "transparency" in image.info
    )
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        rgb = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    else:
        # convert() copies even an RGB image; a strided channel flip costs more than cvtColor.
        rgb = np.asarray(image if mode == "RGB" else image.convert("RGB"))
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _gray_to_bgr(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(gray), cv2.COLOR_GRAY2BGR)


def array_to_bgr(array: np.ndarray, color: str = "bgr", name: str = "<array>") -> np.ndarray:
    """Turn an image array into an H×W×3 uint8 BGR array (see the module docstring).

    Raises:
        DataError: the array is not an image (wrong shape, dtype or colour order); the message
            names ``name``.
    """
    if color not in ("bgr", "rgb"):
        raise DataError(f"color must be 'bgr' or 'rgb', got {color!r}", path=name)
    if not isinstance(array, np.ndarray):
        raise DataError(f"expected a numpy array, got {type(array).__name__}", path=name)
    shape_ok = array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (1, 3, 4))
    if not shape_ok or min(array.shape[:2], default=0) < 1:
        raise DataError(
            f"array of shape {array.shape} is not an image; expected H×W, H×W×3 or H×W×4",
            path=name,
        )
    if array.dtype == np.uint8:
        image = array
    elif array.dtype == np.uint16:
        image = np.clip(array / 257.0, 0, 255).round().astype(np.uint8)
    elif array.dtype == np.bool_:
        image = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        image = (np.clip(np.nan_to_num(array, nan=0.0), 0.0, 1.0) * 255).round().astype(np.uint8)
    else:
        raise DataError(
            f"array dtype {array.dtype} is not supported; use uint8, uint16, bool or float in 0-1",
            path=name,
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return _gray_to_bgr(image)
    image = image[:, :, :3]
    if color == "rgb":
        image = image[:, :, ::-1]
    return np.ascontiguousarray(image)


#: Columns of a face-box CSV (``ferlab predict --boxes``), in pixels of the image.
BOX_COLUMNS = ("image", "x", "y", "w", "h")


def read_boxes(path: str | Path) -> dict[str, list[tuple[int, int, int, int]]]:
    """Face boxes by image from a CSV with the header ``image,x,y,w,h`` (one row per face).

    Image paths are read relative to the current folder, like paths on the command line, and
    returned resolved (absolute). Every problem is a :class:`~ferlab.errors.DataError` naming
    the file and line: a missing column, a value that is not an integer, a box without area.
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise DataError("box file not found" if not path.exists() else "not a file", path=path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the box file ({exc})", path=path) from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in BOX_COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise DataError(
            f"missing column(s) {', '.join(missing)}; the header must be {','.join(BOX_COLUMNS)}",
            path=path,
            row=1,
        )
    boxes: dict[str, list[tuple[int, int, int, int]]] = {}
    for row in reader:
        line = reader.line_num
        if not (row.get("image") or "").strip():
            raise DataError("the image path is empty", path=path, row=line, field="image")
        values = []
        for key in BOX_COLUMNS[1:]:
            raw = (row.get(key) or "").strip()
            try:
                values.append(int(raw))
            except ValueError:
                raise DataError(
                    f"{raw!r} is not an integer number of pixels", path=path, row=line, field=key
                ) from None
        x, y, w, h = values
        if w < 1 or h < 1 or x < 0 or y < 0:
            raise DataError(
                f"box ({x}, {y}, {w}, {h}) must have x, y >= 0 and w, h >= 1",
                path=path,
                row=line,
            )
        image = str(Path(row["image"].strip()).resolve())
        boxes.setdefault(image, []).append((x, y, w, h))
    return boxes
