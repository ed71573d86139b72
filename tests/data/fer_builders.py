"""Builders of small, valid dataset files for the data tests (written into ``tmp_path``)."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

USAGES = ("Training", "PublicTest", "PrivateTest")
FERPLUS_HEADER = (
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
)


def pixels_of(seed: int) -> np.ndarray:
    """A deterministic 48×48 uint8 image covering the full 0-255 range."""
    img = np.random.default_rng(seed).integers(0, 256, size=(48, 48), dtype=np.uint8)
    img[0, 0], img[0, 1] = 0, 255
    return img


def csv_row(emotion: object, pixels: object, usage: object, icml: bool = False) -> str:
    if isinstance(pixels, np.ndarray):
        pixels = " ".join(map(str, pixels.ravel().tolist()))
    if icml:
        return f"{emotion}, {usage}, {pixels}"
    return f"{emotion},{pixels},{usage}"


def write_csv(
    path: Path,
    rows: Sequence[str],
    header: str = "emotion,pixels,Usage",
    gz: bool = False,
    newline: str = "\n",
) -> Path:
    text = newline.join([header, *rows]) + newline
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def standard_rows(n: int = 9, icml: bool = False) -> list[str]:
    """``n`` good rows: emotion i % 7, usage cycling Training, PublicTest, PrivateTest."""
    return [csv_row(i % 7, pixels_of(i), USAGES[i % 3], icml=icml) for i in range(n)]


def png_bytes(img: np.ndarray, fmt: str = "PNG", mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(img).convert(mode).save(out, format=fmt)
    return out.getvalue()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def write_zip(path: Path, files: dict[str, bytes], dirs: Sequence[str] = ()) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for d in dirs:
            zf.writestr(d.rstrip("/") + "/", b"")
        for rel, data in files.items():
            zf.writestr(rel, data)
    return path


def kaggle_files(per_split: int = 2) -> dict[str, bytes]:
    """A Kaggle-release layout: prefixed PNG names, ``test/`` mixing PublicTest and PrivateTest."""
    classes = ("surprise", "angry", "neutral", "happy", "sad", "fear", "disgust")  # not id order
    files = {}
    k = 0
    for cls in classes:
        for usage, folder in (
            ("Training", "train"),
            ("PublicTest", "test"),
            ("PrivateTest", "test"),
        ):
            for _ in range(per_split):
                files[f"{folder}/{cls}/{usage}_{1000 + k}.png"] = png_bytes(pixels_of(k))
                k += 1
    return files


def imagefolder_files(
    classes: Sequence[str] = ("nonface", "face"), n_train: int = 10, with_val: bool = True
) -> dict[str, bytes]:
    files = {}
    k = 0
    counts = {"train": n_train, "val": 2 if with_val else 0, "test": 2}
    for split, n in counts.items():
        for cls in classes:
            for i in range(n):
                files[f"{split}/{cls}/img{i:03d}.png"] = png_bytes(pixels_of(100 + k))
                k += 1
    return files
