"""The shift operations, the train-time shift augmentation and the shift suite."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from engine_helpers import synthetic_data, trained_checkpoint, write_synthetic_csv

from ferlab.data.dataset import FER2013_CLASSES
from ferlab.engine import shift_ops as ops
from ferlab.engine.recipe import ShiftAugmentSection
from ferlab.engine.shift_augment import ShiftAugment
from ferlab.engine.shifts import SHIFT_NAMES, iter_framed, run_shift_suite, shifted
from ferlab.errors import DataError
from tests.cli.cli_helpers import run


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    """Smooth face-sized images with detail (a blurred random field plus edges)."""
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(6, 1, 12, 12, generator=g) * 200 + 20
    x = torch.nn.functional.interpolate(coarse, size=(48, 48), mode="bicubic")[:, 0]
    x[:, 20:24, 10:38] += 40  # a bar of detail for blur to remove
    return x.clamp(0, 255).round().to(torch.uint8)


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


def test_neutral_settings_keep_the_faces(faces):
    assert _diff(ops.brightness(faces, 1.0), faces) == 0
    assert _diff(ops.contrast(faces, 1.0), faces) <= 1  # float mean, rounded back
    assert _diff(ops.gamma(faces, 1.0), faces) <= 1
    assert _diff(ops.reframe(faces, 1.0), faces) <= 1  # pixel centres land on pixel centres
    assert torch.equal(ops.jpeg(faces, 100), faces)
    assert _diff(ops.blur(faces, 0.0), faces) <= 1


def test_each_shift_does_what_it_says(faces):
    f = faces.float()
    dim = float(ops.brightness(faces, 0.3).float().mean())
    assert dim == pytest.approx(0.3 * float(f.mean()), rel=0.02)
    low = float(ops.contrast(faces, 0.4).float().std())
    assert low == pytest.approx(0.4 * float(f.std()), rel=0.05)
    assert ops.gamma(faces, 2.2).float().mean() < f.mean() < ops.gamma(faces, 0.45).float().mean()

    def roughness(x: torch.Tensor) -> float:  # second differences: fine detail
        return float(x.float().diff(n=2, dim=-1).abs().mean())

    # On pixel noise a Gaussian of sigma 1.5 keeps about 3 % of the finest detail.
    grain = torch.randint(0, 256, (3, 48, 48), generator=torch.Generator().manual_seed(0))
    grain = grain.to(torch.uint8)
    assert roughness(ops.blur(grain, 1.5)) < 0.2 * roughness(grain)
    delta = torch.zeros(1, 48, 48, dtype=torch.uint8)
    delta[0, 24, 24] = 255
    spread = ops.blur(delta, 1.5)[0].float()  # a symmetric, normalised Gaussian
    assert torch.equal(spread[20:29, 24], spread[24, 20:29]) and 240 <= spread.sum() <= 260
    g = torch.Generator().manual_seed(1)
    noisy = ops.noise(faces, 15.0, g).float()
    assert float((noisy - f).std()) == pytest.approx(15.0, rel=0.15)  # a little clipping at 0/255
    assert ops.jpeg(faces, 20).float().sub(f).abs().mean() > 0.5
    # Framing: on a horizontal ramp, a 0.8x crop magnifies (a shallower slope per pixel), a 1.3x
    # crop shrinks, and a 90-degree roll turns the ramp vertical.
    ramp = (torch.arange(48).float() * 5).expand(1, 48, 48).round().to(torch.uint8)

    def slope(x: torch.Tensor) -> float:
        return float(x[0, 24, 20:28].float().diff().mean())

    assert slope(ops.reframe(ramp, 0.8)) == pytest.approx(0.8 * 5, abs=0.15)
    assert slope(ops.reframe(ramp, 1.3)) == pytest.approx(1.3 * 5, abs=0.15)
    turned = ops.reframe(ramp, 1.0, 90.0)[0].float()
    assert float(turned[20:28, 24].diff().abs().mean()) == pytest.approx(5, abs=0.15)
    assert float(turned[24, 20:28].diff().abs().mean()) < 0.5
    # Occluders stay where they belong: the hand below the eyes, the glasses around them.
    hand = ops.occlude_hand(faces, 0.0, 170.0, 1.0)
    assert torch.equal(hand[:, :20], faces[:, :20]) and not torch.equal(hand[:, 30:], faces[:, 30:])
    glasses = ops.occlude_glasses(faces)
    assert torch.equal(glasses[:, :10], faces[:, :10]) and torch.equal(
        glasses[:, 30:], faces[:, 30:]
    )
    assert glasses[:, 16:22].float().mean() < faces[:, 16:22].float().mean()


def test_suite_columns_are_seeded(faces):
    for name in SHIFT_NAMES:
        if name != "frame":
            a, b = shifted(faces, name, seed=3), shifted(faces, name, seed=3)
            assert torch.equal(a, b) and a.dtype == torch.uint8 and a.shape == faces.shape
    assert not torch.equal(shifted(faces, "noise", 3), shifted(faces, "noise", 4))
    frames = list(iter_framed(faces[:2], seed=1))
    assert frames[0].shape == (240, 320, 3) and frames[0].dtype == np.uint8
    assert all(np.array_equal(a, b) for a, b in zip(frames, iter_framed(faces[:2], 1), strict=True))
    with pytest.raises(DataError, match="unknown shift 'fog'"):
        shifted(faces, "fog")


class Lookup:
    """A test double that knows the clean faces by heart and is lost on anything else."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...]):
        self.labels = names
        self.memory = images.reshape(len(images), -1).float()
        self.answers = labels

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.asarray(faces)).reshape(len(faces), -1).float()
        dist = torch.cdist(x, self.memory, compute_mode="donot_use_mm_for_euclid_dist")
        out = np.zeros((len(faces), len(self.labels)), dtype=np.float32)
        for i in range(len(faces)):
            j = int(dist[i].argmin())
            # Exact matches only: a shifted face gets the class after the true one.
            k = int(self.answers[j]) if float(dist[i, j]) == 0 else (int(self.answers[j]) + 1) % 7
            out[i, k] = 1.0
        return out


def test_suite_scores_each_shift_on_the_data_classes():
    data = synthetic_data(n=40)
    model = Lookup(data.images, data.labels, FER2013_CLASSES)
    names = ["clean", "blur", "jpeg", "hand"]
    r = run_shift_suite(model, data.images, data.labels, data.classes, shifts=names)
    assert set(r["shifts"]) == set(names) and r["n"] == 40
    assert r["clean"] == 1.0 and r["shifts"]["blur"]["accuracy"] == 0.0
    assert r["mean"] == pytest.approx(np.mean([r["shifts"][n]["accuracy"] for n in names[1:]]))
    assert set(r["shifts"]["clean"]["per_class"]) == set(FER2013_CLASSES)
    # Label order and FER+ spellings are matched by name.
    order = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear")
    perm = [
        FER2013_CLASSES.index(n)
        for n in ("neutral", "happy", "surprise", "sad", "angry", "disgust", "fear")
    ]

    class Reordered(Lookup):
        def predict_proba(self, faces):
            return super().predict_proba(faces)[:, perm]

    r2 = run_shift_suite(
        Reordered(data.images, data.labels, order),
        data.images,
        data.labels,
        data.classes,
        shifts=["clean"],
    )
    assert r2["clean"] == 1.0
    with pytest.raises(DataError, match="lack the data's classes"):
        run_shift_suite(
            Lookup(data.images, data.labels, ("a",) * 7), data.images, data.labels, data.classes
        )


def test_frame_column_uses_the_recognizer(fer_faces):
    """Real faces pasted into frames are found by the recognizer's detector; noise is not."""
    rows = sorted(fer_faces)[:6]
    images = torch.from_numpy(np.stack([fer_faces[r] for r in rows]))
    labels = torch.zeros(len(rows), dtype=torch.long)

    class Angry:
        labels = FER2013_CLASSES

        def predict_proba(self, faces):
            out = np.zeros((len(faces), 7), dtype=np.float32)
            out[:, 0] = 1
            return out

    r = run_shift_suite(Angry(), images, labels, FER2013_CLASSES, shifts=["frame"])
    found = r["shifts"]["frame"]["found"]
    assert found >= 3  # clear frontal faces at 144 pixels
    assert r["shifts"]["frame"]["accuracy"] == pytest.approx(found / len(rows))
    noise = torch.randint(0, 256, (3, 48, 48), generator=torch.Generator().manual_seed(0))
    blank = run_shift_suite(
        Angry(), noise.to(torch.uint8), labels[:3], FER2013_CLASSES, shifts=["frame"]
    )
    assert blank["shifts"]["frame"]["accuracy"] <= 1 / 3


def test_shift_augment_is_seeded_and_off_by_default(faces):
    off = ShiftAugment(ShiftAugmentSection())
    assert not off.enabled
    assert torch.equal(off(faces, torch.Generator().manual_seed(0)), faces)
    on = ShiftAugment(ShiftAugmentSection(occlude=1, light=1, blur=1, noise=1, jpeg=1))
    a = on(faces, torch.Generator().manual_seed(5))
    b = on(faces, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, faces)
    only_blur = ShiftAugment(ShiftAugmentSection(blur=1))(faces, torch.Generator().manual_seed(5))
    assert not torch.equal(only_blur, faces)
    with pytest.raises(ValueError, match="probability"):
        ShiftAugment(ShiftAugmentSection(jpeg=1.5))


def test_evaluate_suite_command(tiny_model, tmp_path, capsys):
    csv = write_synthetic_csv(tmp_path / "fer2013.csv", n=210)
    ckpt = trained_checkpoint(tmp_path / "run", tiny_model, epochs=1, n=140)
    args = ["evaluate", str(ckpt), "--data", str(csv), "--split", "val", "--suite", "shifts"]
    code, out, err = run(
        [*args, "--json", "--max-images", "20", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 20 and set(result["shifts"]) == set(SHIFT_NAMES)
    assert 0 <= result["mean"] <= 1 and result["split"] == "val"
    for name in ("shifts.png", "shift_examples.png", "shifts.json"):
        assert (tmp_path / "o" / name).is_file()
    code, out, err = run([*args[:-1], "fog"], capsys)
    assert code != 0 and "unknown --suite value 'fog'" in err and "Traceback" not in err
