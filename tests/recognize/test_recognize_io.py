"""Image input: formats, colour modes, EXIF orientation, and every kind of bad input."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from recognize_helpers import background, box_iou, paste

from ferlab.errors import DataError
from ferlab.recognize import Recognizer, array_to_bgr, load_image

BOX = (300, 150, 160, 160)


@pytest.fixture
def scene(face: np.ndarray) -> np.ndarray:
    """640×480 BGR scene with one face at :data:`BOX`."""
    return paste(background(), face, *BOX[:2], BOX[2])


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(bgr[:, :, ::-1])


def _one_face_at_box(recognizer: Recognizer, source) -> None:
    results = recognizer(source)
    assert len(results) == 1, results.faces
    assert box_iou(results[0].box, BOX) > 0.6


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".bmp", ".webp", ".tiff"])
def test_formats(tmp_path: Path, scene: np.ndarray, recognizer: Recognizer, suffix: str) -> None:
    path = tmp_path / f"photo{suffix}"
    Image.fromarray(_rgb(scene)).save(path)
    image = load_image(path)
    assert image.shape == scene.shape and image.dtype == np.uint8
    _one_face_at_box(recognizer, path)
    assert recognizer(str(path))[0].source == str(path)


def test_grayscale_png(tmp_path: Path, scene: np.ndarray, recognizer: Recognizer) -> None:
    path = tmp_path / "gray.png"
    gray = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    Image.fromarray(gray).save(path)
    image = load_image(path)
    assert image.shape == (480, 640, 3)
    assert (image[:, :, 0] == gray).all() and (image[:, :, 2] == gray).all()
    _one_face_at_box(recognizer, path)


def test_16_bit_png_is_scaled(tmp_path: Path, scene: np.ndarray, recognizer: Recognizer) -> None:
    path = tmp_path / "deep.png"
    gray16 = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY).astype(np.uint16) * 257
    Image.fromarray(gray16).save(path)
    assert Image.open(path).mode.startswith("I")
    image = load_image(path)
    assert image.dtype == np.uint8
    assert np.abs(image[:, :, 0].astype(int) - cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)).max() <= 1
    _one_face_at_box(recognizer, path)


def test_rgba_is_composited_on_white(
    tmp_path: Path, scene: np.ndarray, recognizer: Recognizer
) -> None:
    rgba = np.dstack([_rgb(scene), np.full(scene.shape[:2], 255, np.uint8)])
    rgba[:100, :100, 3] = 0  # a transparent corner
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_image(path)
    assert (image[:100, :100] == 255).all()
    assert (image[200:, 200:] == scene[200:, 200:]).all()
    _one_face_at_box(recognizer, path)


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_exif_rotated_jpeg_is_processed_upright(
    tmp_path: Path, scene: np.ndarray, recognizer: Recognizer, orientation: int
) -> None:
    # A camera stores the sensor image and an orientation tag; viewers rotate it for display.
    # Orientation 6 means "rotate 90° clockwise to display", so the stored pixels are the
    # upright scene turned 90° counter-clockwise (and 8 the opposite, 3 upside down).
    turns = {6: 1, 8: -1, 3: 2}[orientation]
    stored = np.ascontiguousarray(np.rot90(_rgb(scene), turns))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.shape == scene.shape
    _one_face_at_box(recognizer, path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such file") as info:
        load_image(tmp_path / "nope.jpg")
    assert "nope.jpg" in str(info.value)


def test_text_file_named_jpg(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a photo\n")
    with pytest.raises(DataError, match="not an image") as info:
        load_image(path)
    assert "notes.jpg" in str(info.value)


def test_corrupt_and_truncated_files(tmp_path: Path, scene: np.ndarray) -> None:
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    with pytest.raises(DataError) as info:
        load_image(garbage)
    assert "garbage.png" in str(info.value)

    good = tmp_path / "good.jpg"
    Image.fromarray(_rgb(scene)).save(good)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(DataError, match="corrupt") as info:
        load_image(truncated)
    assert "truncated.jpg" in str(info.value)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width``×``height`` pixels but holds almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize("side", [30_000, 10_000])  # above 2× and above 1× Pillow's limit
def test_decompression_bomb_is_refused(tmp_path: Path, side: int) -> None:
    path = _png_header_only(tmp_path / "bomb.png", side, side)
    with pytest.raises(DataError, match="decompression bomb") as info:
        load_image(path)
    assert "bomb.png" in str(info.value)


def test_folder_skips_other_files_and_collects_errors(
    tmp_path: Path, scene: np.ndarray, recognizer: Recognizer
) -> None:
    Image.fromarray(_rgb(scene)).save(tmp_path / "a.png")
    (tmp_path / "sub").mkdir()
    Image.fromarray(_rgb(background())).save(tmp_path / "sub" / "empty.jpg")
    (tmp_path / "b.jpg").write_text("not an image")
    (tmp_path / "README.txt").write_text("photos of the team")

    results = recognizer(tmp_path, errors="collect")
    assert [Path(s).name for s in results.sources] == ["a.png", "b.jpg", "empty.jpg"]
    assert len(results) == 1 and Path(results[0].source).name == "a.png"
    assert [Path(s).name for s, _ in results.errors] == ["b.jpg"]
    assert "b.jpg" in results.errors[0][1]

    with pytest.raises(DataError, match="b.jpg"):
        recognizer(tmp_path)


def test_list_of_sources_goes_on_after_a_bad_one(
    tmp_path: Path, scene: np.ndarray, recognizer: Recognizer
) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(_rgb(scene)).save(good)
    results = recognizer([tmp_path / "missing.png", good, scene], errors="collect")
    assert results.sources == [str(tmp_path / "missing.png"), str(good), "<array>"]
    assert len(results) == 2 and len(results.errors) == 1
    with pytest.raises(DataError, match="missing.png"):
        recognizer([tmp_path / "missing.png", good])


def test_array_colour_order(scene: np.ndarray) -> None:
    rgb = _rgb(scene)
    assert (array_to_bgr(rgb, color="rgb") == scene).all()
    assert (array_to_bgr(scene) == scene).all()
    gray = cv2.cvtColor(scene, cv2.COLOR_BGR2GRAY)
    assert array_to_bgr(gray).shape == (480, 640, 3)
    bgra = np.dstack([scene, np.zeros(scene.shape[:2], np.uint8)])
    assert (array_to_bgr(bgra) == scene).all()
    as_float = array_to_bgr(scene.astype(np.float32) / 255.0)
    assert np.abs(as_float.astype(int) - scene).max() <= 1


def test_rgb_arrays_are_found_too(scene: np.ndarray, recognizer: Recognizer) -> None:
    _one_face_at_box(recognizer, scene)
    results = recognizer(_rgb(scene), color="rgb")
    assert len(results) == 1 and box_iou(results[0].box, BOX) > 0.6


@pytest.mark.parametrize(
    ("array", "problem"),
    [
        (np.zeros(10, np.uint8), "not an image"),
        (np.zeros((10, 10, 2), np.uint8), "not an image"),
        (np.zeros((0, 10), np.uint8), "not an image"),
        (np.zeros((10, 10), np.int64), "dtype"),
    ],
)
def test_bad_arrays(array: np.ndarray, problem: str) -> None:
    with pytest.raises(DataError, match=problem):
        array_to_bgr(array)
    with pytest.raises(DataError, match="color"):
        array_to_bgr(np.zeros((4, 4), np.uint8), color="hsv")


def test_unsupported_source_type(recognizer: Recognizer) -> None:
    with pytest.raises(DataError, match="cannot read a dict"):
        recognizer({"image": 1})
