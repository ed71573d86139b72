"""The shipped models' predictions on FER2013 PrivateTest faces, both runtimes, every TTA.

Each prediction is recomputed here from the formulas the inference core replaced, written out
independently (PyTorch tensor preprocessing for the PyTorch runtime, ONNX Runtime fed the same
tensors), and must agree bit for bit, on whatever CPU runs the test. With
``FERLAB_REFERENCE_DIR`` set to a folder of predictions saved before the change
(``<model>_<runtime>_<tta>.npy`` on all 3,589 faces, same CPU), those are compared bit for bit
too.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

import ferlab
from ferlab.inference.onnx_backend import softmax

pytestmark = [pytest.mark.dataset, pytest.mark.slow]

TTAS = ("none", "flip", "ten_crop")
#: Faces of the formula comparison, in batches of BATCH: two batches, one of them partial.
N_FORMULA, BATCH = 100, 64


@pytest.fixture(scope="module")
def private_test(fer2013_csv: Path) -> np.ndarray:
    """The 3,589 PrivateTest faces in file order (uint8 N×48×48)."""
    faces = []
    with gzip.open(fer2013_csv, "rt") as f:
        next(f)
        for line in f:
            _, pixels, usage = line.rstrip("\n").split(",")
            if usage == "PrivateTest":
                faces.append(np.array(pixels.split(), dtype=np.uint8).reshape(48, 48))
    assert len(faces) == 3589
    return np.stack(faces)


def _torch_views(faces: np.ndarray, pre, tta: str):
    """The views as the PyTorch preprocessing computed them before the numpy definition."""
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    assert not pre.hist_eq  # the shipped models do not equalise
    mean, std = torch.from_numpy(pre.mean), torch.from_numpy(pre.std)
    x = torch.from_numpy(faces).float().div_(255.0).sub_(mean).div_(std).unsqueeze(1)
    c, o = pre.crop, (pre.image_size - pre.crop) // 2
    centre = x[..., o : o + c, o : o + c]
    if tta == "none":
        return centre.unsqueeze(0)
    if tta == "flip":
        return torch.stack([centre, centre.flip(-1)])
    src = x if c < pre.image_size else F.pad(x, (2, 2, 2, 2))
    crops = [src[..., oy : oy + c, ox : ox + c] for ox, oy in pre.crop_offsets()]
    return torch.stack(crops + [v.flip(-1) for v in crops])


@pytest.mark.parametrize("tta", TTAS)
@pytest.mark.parametrize("name", ["default", "ferplus"])
def test_both_runtimes_match_the_replaced_formulas(private_test, name, tta):
    torch = pytest.importorskip("torch")
    faces = private_test[:N_FORMULA]
    by_torch = ferlab.load_model(name, runtime="torch", tta=tta, device="cpu")
    by_onnx = ferlab.load_model(name, runtime="onnx", tta=tta, device="cpu")
    want_torch, want_onnx = [], []
    for lo in range(0, len(faces), BATCH):
        views = _torch_views(faces[lo : lo + BATCH], by_torch.preprocess, tta)
        np.testing.assert_array_equal(
            by_torch.preprocess(faces[lo : lo + BATCH], tta), views.numpy()
        )
        v, n = views.shape[:2]
        x = views.reshape(v * n, *views.shape[2:])
        with torch.inference_mode():
            logits = by_torch.network(x.contiguous(memory_format=torch.channels_last)).float()
        want_torch.append(torch.softmax(logits, 1).reshape(v, n, -1).mean(0).numpy())
        raw = by_onnx.backend.logits(x.numpy()).astype(np.float32)
        want_onnx.append(softmax(raw).reshape(v, n, -1).mean(0))
    got_torch = by_torch.predict_proba(faces, batch_size=BATCH)
    got_onnx = by_onnx.predict_proba(faces, batch_size=BATCH)
    assert got_torch.tobytes() == np.concatenate(want_torch).tobytes()
    assert got_onnx.tobytes() == np.concatenate(want_onnx).tobytes()


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_predictions_saved_before_the_change(private_test, runtime):
    folder = os.environ.get("FERLAB_REFERENCE_DIR")
    if not folder:
        pytest.skip("FERLAB_REFERENCE_DIR (predictions saved before the change) is not set")
    if runtime == "torch":
        torch = pytest.importorskip("torch")
        torch.set_num_threads(1)  # as the saved predictions were made
    for name in ("default", "ferplus"):
        for tta in TTAS:
            if runtime == "onnx":
                from ferlab.inference.onnx_backend import load_onnx
                from ferlab.inference.shipped import model_file

                path = model_file(name, onnx=True)
                model = load_onnx(path, device="cpu", tta=tta, threads=1, name=name)
            else:
                model = ferlab.load_model(name, runtime="torch", tta=tta, device="cpu")
            saved = np.load(Path(folder) / f"{name}_{runtime}_{tta}.npy")
            got = model.predict_proba(private_test)
            assert got.tobytes() == saved.tobytes(), f"{name} {runtime} {tta}"
