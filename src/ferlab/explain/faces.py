"""Faces to explain from image files: face crops as they are, photos through the recognizer's
detection and alignment.

A FER2013-style crop (48×48, or any image up to :data:`CROP_MAX` pixels a side) is one face.
In a larger photo the faces are found and cut out exactly as ``ferlab predict`` does, with the
recognizer's detector, eye-levelling and FER framing (:mod:`ferlab.recognize`), so an
explanation shows the crop the model classified.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferlab.errors import DataError, UnknownNameError
from ferlab.recognize.recognizer import CROP_MAX, FACE_MODES

__all__ = ["FaceCrop", "faces_from_images"]


@dataclass(frozen=True)
class FaceCrop:
    """One face to explain.

    Attributes:
        name: file-name-safe identifier, ``<image stem>`` or ``<image stem>_face<i>``.
        source: the image file.
        box: ``(x, y, w, h)`` of the detected face in the image; ``None`` for whole images.
        face: uint8 grayscale crop (48×48 for detected faces, the image itself otherwise).
    """

    name: str
    source: str
    box: tuple[int, int, int, int] | None
    face: np.ndarray


def _image_files(paths: Iterable[str | Path]) -> list[Path]:
    from ferlab.recognize.io import list_images

    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = list_images(p)
            if not found:
                raise DataError("folder holds no images", path=p)
            files += found
        else:
            files.append(p)
    return files


def faces_from_images(
    paths: Iterable[str | Path],
    mode: str = "auto",
    *,
    detector: str = "haar",
    align: bool = True,
) -> tuple[list[FaceCrop], list[str]]:
    """Faces of image files and folders (searched recursively).

    Args:
        mode: ``auto`` (images up to :data:`CROP_MAX` px are crops, larger ones are searched),
            ``detect`` (search every image) or ``whole`` (every image is one face).
        detector: the recognizer's face detector (``haar``, ``haar-profile``).
        align: level the eyes before cropping, as the recognizer does.

    Returns the faces and one note per image where no face was found.
    """
    from ferlab.recognize import create_detector, crop_faces, load_image

    if mode not in FACE_MODES:
        raise UnknownNameError("face mode", mode, list(FACE_MODES))
    finder = create_detector(detector) if mode != "whole" else None
    faces: list[FaceCrop] = []
    notes: list[str] = []
    used: set[str] = set()
    for file in _image_files(paths):
        gray = cv2.cvtColor(load_image(file), cv2.COLOR_BGR2GRAY)
        stem = _unique(file.stem, used)
        if mode == "whole" or (mode == "auto" and max(gray.shape) <= CROP_MAX):
            faces.append(FaceCrop(stem, str(file), None, gray))
            continue
        assert finder is not None
        found = finder.detect(gray)
        if not found:
            notes.append(
                f"{file}: no face found (mode 'whole', --faces whole, explains it as one face)"
            )
        crops, _ = crop_faces(gray, [det.box for det in found], align)
        for i, (det, crop) in enumerate(zip(found, crops, strict=True)):
            box = tuple(int(v) for v in det.box)
            faces.append(FaceCrop(f"{stem}_face{i}", str(file), box, crop))  # type: ignore[arg-type]
    return faces, notes


def _unique(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``... when images of different folders share a name."""
    name, n = stem, 1
    while name in used:
        n += 1
        name = f"{stem}-{n}"
    used.add(name)
    return name
