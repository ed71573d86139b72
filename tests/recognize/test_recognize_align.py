"""Alignment and cropping: FER2013 framing, eye levelling, large and border faces."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from recognize_helpers import background, corr, paste

from ferlab.recognize import FER_SIZE, HaarDetector, Recognizer, align_crop, eye_angle


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def _rotate(gray: np.ndarray, centre: tuple[float, float], degrees: float) -> np.ndarray:
    matrix = cv2.getRotationMatrix2D(centre, degrees, 1.0)
    return cv2.warpAffine(gray, matrix, gray.shape[::-1], borderMode=cv2.BORDER_REPLICATE)


def test_crop_of_the_true_box_gives_back_the_fer_face(face: np.ndarray) -> None:
    gray = _gray(paste(background(), face, 200, 120, 192))
    crop = align_crop(gray, (200, 120, 192, 192), crop_scale=1.0)
    assert crop.shape == (FER_SIZE, FER_SIZE) and crop.dtype == np.uint8
    assert corr(crop, face) > 0.97


def test_recognizer_feeds_the_classifier_fer_framed_crops(
    real_fer_faces: dict[int, np.ndarray], classifier, recognizer: Recognizer
) -> None:
    fer_faces = real_fer_faces  # the FER2013 framing is a property of the real faces

    # Detection box × 1.03 reproduces the FER2013 framing: the crop the classifier receives
    # matches the original 48×48 image (compared slightly blurred, so that a one-pixel shift of
    # the box does not dominate), far better than it matches another face.
    def smooth(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (0, 0), 1.5)

    for row, other in [(4, 14), (14, 15), (15, 4)]:
        recognizer(paste(background(), fer_faces[row], 300, 150, 192))
        assert classifier.batches[-1].shape == (1, FER_SIZE, FER_SIZE)
        crop = smooth(classifier.batches[-1][0])
        assert corr(crop, smooth(fer_faces[row])) > 0.9, row
        assert corr(crop, smooth(fer_faces[row])) > corr(crop, smooth(fer_faces[other])) + 0.1


def test_tilted_face_is_levelled(real_face: np.ndarray) -> None:
    face = real_face  # the eyes must be real for their angle to be measured
    scene = _gray(paste(background(), face, 220, 120, 200))
    box = HaarDetector().detect(scene)[0].box
    upright_roll = eye_angle(scene, box)
    assert upright_roll is not None
    reference = align_crop(scene, box, angle=upright_roll)

    tilted = _rotate(scene, (320, 220), -12.0)  # clockwise by 12°
    tilted_box = HaarDetector().detect(tilted)[0].box
    roll = eye_angle(tilted, tilted_box)
    assert roll is not None and abs(roll - (upright_roll + 12.0)) < 4.0
    levelled = align_crop(tilted, tilted_box, angle=roll)
    unlevelled = align_crop(tilted, tilted_box)
    assert corr(levelled, reference) > corr(unlevelled, reference) + 0.05


def test_eye_angles_measured_on_several_threads_match_one_thread(real_face: np.ndarray) -> None:
    """OpenCV's cascades are not safe to share between threads (serve's workers once got
    ``None`` for a face whose eyes one thread finds): each thread has an eye cascade of its own."""
    scenes = [_gray(paste(background(), real_face, 220 + 8 * i, 120, 200)) for i in range(4)]
    boxes = [HaarDetector().detect(scene)[0].box for scene in scenes]
    alone = [eye_angle(scene, box) for scene, box in zip(scenes, boxes, strict=True)]
    assert all(angle is not None for angle in alone)
    with ThreadPoolExecutor(4) as pool:
        for _ in range(5):
            together = list(pool.map(eye_angle, scenes * 8, boxes * 8))
            assert together == alone * 8


def test_no_eyes_no_rotation() -> None:
    flat = np.full((300, 300), 128, np.uint8)
    assert eye_angle(flat, (50, 50, 200, 200)) is None
    assert eye_angle(flat, (250, 250, 200, 200)) is None  # box mostly outside the image


def test_large_face_is_area_averaged(face: np.ndarray) -> None:
    big = cv2.resize(face, (960, 960), interpolation=cv2.INTER_NEAREST)
    crop = align_crop(big, (0, 0, 960, 960), crop_scale=1.0)
    expected = cv2.resize(big, (FER_SIZE, FER_SIZE), interpolation=cv2.INTER_AREA)
    assert np.abs(crop.astype(int) - expected.astype(int)).mean() < 3.0


def test_face_at_the_border_is_padded_not_an_error(face: np.ndarray) -> None:
    gray = _gray(paste(background(), face, 0, 0, 120))
    crop = align_crop(gray, (-30, -30, 120, 120), angle=10.0)
    assert crop.shape == (FER_SIZE, FER_SIZE)
    # The replicated border repeats the image edge instead of inventing black.
    assert crop[0, 0] == crop[0, 1] or crop.min() > 0
