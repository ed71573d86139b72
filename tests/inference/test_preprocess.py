"""The one preprocessing and TTA definition (numpy), checked against independent references."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ferlab.errors import UnknownNameError
from ferlab.inference.preprocess import (
    STREAM_TTA,
    TTA_CHOICES,
    Preprocess,
    equalize_hist,
    resolve_tta,
)


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    rng = np.random.default_rng(0)
    smooth = cv2.GaussianBlur(rng.integers(0, 256, (6, 48, 48), dtype=np.uint8), (0, 0), 2)
    return np.concatenate(
        [
            smooth,
            np.zeros((1, 48, 48), np.uint8),  # FER2013's all-black rows: unchanged
            np.full((1, 48, 48), 200, np.uint8),
            rng.integers(90, 110, (2, 48, 48), dtype=np.uint8),  # low contrast
        ]
    )


def test_histogram_equalisation_is_opencvs(faces):
    # OpenCV's equalizeHist is the definition the lookup table follows.
    want = np.stack([cv2.equalizeHist(f) for f in faces])
    np.testing.assert_array_equal(equalize_hist(faces), want)
    np.testing.assert_array_equal(equalize_hist(faces, chunk=3), want)
    assert len(equalize_hist(np.zeros((0, 48, 48), np.uint8))) == 0


def test_normalisation_is_float32_arithmetic(faces):
    pre = Preprocess(mean=0.5077, std=0.255)
    x = pre.normalize(faces)
    want = (faces.astype(np.float32) / np.float32(255) - np.float32(0.5077)) / np.float32(0.255)
    assert x.dtype == np.float32 and x.shape == (len(faces), 1, 48, 48)
    np.testing.assert_array_equal(x[:, 0], want)


@pytest.mark.parametrize("crop", [44, 48])
def test_views_are_the_documented_crops_and_mirrors(faces, crop):
    pre = Preprocess(crop=crop)
    x = pre.normalize(faces)
    none, flip, ten = (pre.views(x, t) for t in TTA_CHOICES)
    o = (48 - crop) // 2
    np.testing.assert_array_equal(none[0], x[..., o : o + crop, o : o + crop])
    np.testing.assert_array_equal(flip[1], none[0][..., ::-1])
    assert ten.shape == (10, len(faces), 1, crop, crop)
    src = x if crop < 48 else np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    far = src.shape[-1] - crop
    np.testing.assert_array_equal(ten[3], src[..., far:, far:])  # bottom-right corner
    np.testing.assert_array_equal(ten[4], none[0])  # the centre crop
    np.testing.assert_array_equal(ten[5:], ten[:5][..., ::-1])


def test_the_json_form_is_exact():
    rng = np.random.default_rng(1)
    pre = Preprocess(
        crop=40,
        hist_eq=True,
        mean=rng.uniform(0.3, 0.7, (48, 48)),
        std=rng.uniform(0.2, 0.3, (48, 48)),
    )
    back = Preprocess.from_dict(json.loads(json.dumps(pre.to_dict())))
    assert back.mean.tobytes() == pre.mean.tobytes() and back.std.tobytes() == pre.std.tobytes()
    assert (back.image_size, back.crop, back.hist_eq) == (48, 40, True)


def test_bad_input_is_refused():
    pre = Preprocess()
    with pytest.raises(ValueError, match="48"):
        pre(np.zeros((1, 40, 40), np.uint8))
    with pytest.raises(UnknownNameError, match="test-time augmentation"):
        pre(np.zeros((1, 48, 48), np.uint8), "rotate")
    with pytest.raises(ValueError, match="uint8"):
        equalize_hist(np.zeros((1, 48, 48), np.float32))


def test_no_choice_means_the_models_own_or_the_stream_default():
    assert resolve_tta(None, "ten_crop") == "ten_crop"
    assert resolve_tta(None, None) == "none"
    assert resolve_tta(None, "ten_crop", stream=True) == STREAM_TTA == "none"
    assert resolve_tta("flip", "ten_crop", stream=True) == "flip"
    with pytest.raises(UnknownNameError, match="known test-time augmentations"):
        resolve_tta("ten-crop")
