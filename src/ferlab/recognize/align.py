"""Face alignment and cropping: from a detected box to the 48×48 grayscale crop FER models expect.

**Framing.** FER2013's faces were registered automatically with OpenCV's frontal Haar cascade.
Measured here: running that cascade on 600 FER2013 faces (upscaled 4×, on a plain or noisy
border) finds in 84 % of them a box centred on the 48×48 frame, median ``(0.25, 0.5, 46.75,
46.75)`` in 48-pixel units (quartiles of the side 43–50). So a FER2013 image *is* the Haar box,
about 3 % larger: the crop here is the detection box scaled by :data:`FER_CROP_SCALE` = 1.03
around its centre, which includes the forehead up to the eyebrows and the chin, like the training
images. Parts of the crop outside the image are filled by replicating the border.

**Rotation.** A tilted head makes the crop differ from the upright training faces, so the eyes
are levelled first: OpenCV's eye cascade runs on the upper part of the face box (rows 15–55 % of
its height, where Haar boxes place the eyes), the strongest eye in each half of the box is taken,
and the crop is rotated about the box centre by the angle between them. Alignment is skipped
(angle 0) unless it is plausible: one eye in each half, their sizes within a factor 1.6, their
distance 25–70 % of the face width and the angle within ±25° (the frontal cascade itself rarely
finds faces tilted further, so a larger angle means a wrong eye, e.g. an eyebrow or a nostril).
Angles under :data:`MIN_ROLL` = 5° are measured but not corrected: that is within the eye
detector's noise, and FER2013's own faces are tilted by a median 2.9° (quartiles 1.3–6.0°,
measured with the same eye detector on 154 of 238 faces where both eyes were found), so such a
rotation would not bring the crop closer to the training data, only blur it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from ferlab.recognize.detect import thread_cascade

__all__ = [
    "FER_CROP_SCALE",
    "FER_SIZE",
    "MAX_ROLL",
    "MIN_ROLL",
    "align_crop",
    "crop_faces",
    "eye_angle",
    "whole_face",
    "roll_correction",
]

#: Side of FER2013 images and of the crops handed to the classifier.
FER_SIZE = 48
#: Crop side / detection-box side, measured on FER2013 (see the module docstring).
FER_CROP_SCALE = 1.03
#: Largest roll angle (degrees) accepted from the eye detector.
MAX_ROLL = 25.0
#: Smallest roll angle (degrees) that alignment corrects.
MIN_ROLL = 5.0
#: Face width (pixels) the eye search works at; eyes are then about 20 px, the cascade's window.
_EYE_FACE_WIDTH = 100


def eye_angle(gray: np.ndarray, box: tuple[int, int, int, int]) -> float | None:
    """Roll angle of the face in ``box`` in degrees (positive: the face's left eye is lower, in
    image coordinates the right-hand eye lies below the left-hand one), or ``None`` when the eyes
    are not found confidently.
    """
    x, y, w, h = box
    top, bottom = y + round(0.15 * h), y + round(0.55 * h)
    x0, x1 = max(0, x), min(gray.shape[1], x + w)
    top, bottom = max(0, top), min(gray.shape[0], bottom)
    if x1 - x0 < w * 0.8 or bottom - top < h * 0.3:
        return None  # face cut by the image border: the halves would be unbalanced
    region = gray[top:bottom, x0:x1]
    scale = _EYE_FACE_WIDTH / w
    region = cv2.resize(
        region,
        (max(1, round(region.shape[1] * scale)), max(1, round(region.shape[0] * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    eyes, _, weights = thread_cascade("haarcascade_eye.xml").detectMultiScale3(
        region,
        scaleFactor=1.1,
        minNeighbors=3,
        minSize=(12, 12),
        maxSize=(40, 40),
        outputRejectLevels=True,
    )
    half = region.shape[1] / 2
    best: dict[bool, tuple[float, tuple[int, ...]]] = {}
    for eye, weight in zip(eyes, np.ravel(weights), strict=True):
        right_half = eye[0] + eye[2] / 2 >= half
        if right_half not in best or weight > best[right_half][0]:
            best[right_half] = (float(weight), tuple(int(v) for v in eye))
    if len(best) < 2:
        return None
    (lx, ly, lw, lh), (rx, ry, rw, rh) = best[False][1], best[True][1]
    if max(lw, rw) > 1.6 * min(lw, rw):
        return None
    dx = (rx + rw / 2) - (lx + lw / 2)
    dy = (ry + rh / 2) - (ly + lh / 2)
    if not 0.25 * _EYE_FACE_WIDTH <= math.hypot(dx, dy) <= 0.7 * _EYE_FACE_WIDTH:
        return None
    angle = math.degrees(math.atan2(dy, dx))
    return angle if abs(angle) <= MAX_ROLL else None


def roll_correction(roll: float | None) -> float:
    """The rotation :func:`align_crop` should apply for a measured roll (0 below MIN_ROLL)."""
    return roll if roll is not None and abs(roll) >= MIN_ROLL else 0.0


def align_crop(
    gray: np.ndarray,
    box: tuple[int, int, int, int],
    *,
    angle: float = 0.0,
    size: int = FER_SIZE,
    crop_scale: float = FER_CROP_SCALE,
) -> np.ndarray:
    """Cut the face in ``box`` out of ``gray`` as a ``size``×``size`` uint8 crop.

    The crop is the box scaled by ``crop_scale`` about its centre and rotated by ``angle`` degrees
    (from :func:`eye_angle`) so that the eyes end up level.
    """
    x, y, w, h = box
    cx, cy = x + w / 2, y + h / 2
    side = max(w, h) * crop_scale
    # Large faces are first shrunk with area averaging: the affine warp below interpolates
    # bilinearly, which would alias when shrinking a 400-pixel face straight to 48.
    shrink = 2 * size / side
    if shrink < 1.0:
        reach = side * 0.75  # half-diagonal of the rotated crop, with room to spare
        x0, y0 = max(0, math.floor(cx - reach)), max(0, math.floor(cy - reach))
        x1 = min(gray.shape[1], math.ceil(cx + reach))
        y1 = min(gray.shape[0], math.ceil(cy + reach))
        patch = gray[y0:y1, x0:x1]
        dsize = (max(1, round(patch.shape[1] * shrink)), max(1, round(patch.shape[0] * shrink)))
        gray = cv2.resize(patch, dsize, interpolation=cv2.INTER_AREA)
        cx, cy = (cx - x0) * dsize[0] / patch.shape[1], (cy - y0) * dsize[1] / patch.shape[0]
        side *= shrink
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, size / side)
    matrix[:, 2] += (size / 2 - cx, size / 2 - cy)
    return cv2.warpAffine(
        gray, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def crop_faces(
    gray: np.ndarray, boxes: Sequence[tuple[int, int, int, int]], align: bool = True
) -> tuple[np.ndarray, list[float | None]]:
    """The FER crops (uint8 N×48×48) of the faces in ``boxes`` and their measured rolls.

    With ``align``, each face's roll is measured from its eyes (:func:`eye_angle`) and the crop
    is levelled by :func:`roll_correction` of it: rolls under :data:`MIN_ROLL` are reported but
    not corrected. Without ``align`` the rolls are ``None``.
    """
    rolls = [eye_angle(gray, box) if align else None for box in boxes]
    crops = [
        align_crop(gray, box, angle=roll_correction(roll))
        for box, roll in zip(boxes, rolls, strict=True)
    ]
    return np.stack(crops) if crops else np.zeros((0, FER_SIZE, FER_SIZE), np.uint8), rolls


def whole_face(gray: np.ndarray, size: int = FER_SIZE) -> np.ndarray:
    """A whole image taken as one face crop (it is already framed like FER2013), resized to
    ``size``×``size`` with area averaging (unchanged when it has that size)."""
    if gray.shape == (size, size):
        return gray
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
