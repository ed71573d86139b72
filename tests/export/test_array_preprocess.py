"""The numpy preprocessing of the ONNX runtime is bit-identical to PyTorch's ``Preprocess``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ferlab.engine.augment import Preprocess, equalize_hist
from ferlab.export.preprocess import ArrayPreprocess
from ferlab.export.preprocess import equalize_hist as equalize_hist_np


def test_histogram_equalisation_matches_torch(drawn_faces):
    rng = np.random.default_rng(0)
    faces = np.concatenate(
        [
            drawn_faces,
            np.zeros((1, 48, 48), np.uint8),  # FER2013's all-black rows: unchanged
            np.full((1, 48, 48), 200, np.uint8),
            rng.integers(90, 110, (2, 48, 48), dtype=np.uint8),  # low contrast
        ]
    )
    want = equalize_hist(torch.from_numpy(faces)).numpy()
    np.testing.assert_array_equal(equalize_hist_np(faces), want)
    assert len(equalize_hist_np(np.zeros((0, 48, 48), np.uint8))) == 0


@pytest.mark.parametrize("tta", ["none", "flip", "ten_crop"])
@pytest.mark.parametrize(
    "settings",
    [
        {"crop": 44, "hist_eq": True, "mean": 0.5077, "std": 0.255},
        {"crop": 48, "mean": 0.4, "std": 0.3},  # whole faces: ten-crop pads by 2 pixels
        {"crop": 40, "per_pixel": True},
    ],
)
def test_views_match_torch_bit_for_bit(drawn_faces, settings, tta):
    settings = dict(settings)
    if settings.pop("per_pixel", False):
        rng = np.random.default_rng(1)
        settings["mean"] = torch.from_numpy(rng.uniform(0.3, 0.7, (48, 48)).astype(np.float32))
        settings["std"] = torch.from_numpy(rng.uniform(0.2, 0.3, (48, 48)).astype(np.float32))
    reference = Preprocess(**settings)
    # Through JSON, as the ONNX metadata carries it.
    array = ArrayPreprocess.from_dict(
        json.loads(json.dumps(ArrayPreprocess.from_dict(reference.to_dict()).to_dict()))
    )
    want = reference(torch.from_numpy(drawn_faces), tta).numpy()
    got = array(drawn_faces, tta)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_bad_input_is_refused():
    pre = ArrayPreprocess()
    with pytest.raises(ValueError, match="48"):
        pre(np.zeros((1, 40, 40), np.uint8))
    with pytest.raises(ValueError, match="test-time augmentation"):
        pre(np.zeros((1, 48, 48), np.uint8), "rotate")
    with pytest.raises(ValueError, match="uint8"):
        equalize_hist_np(np.zeros((1, 48, 48), np.float32))
