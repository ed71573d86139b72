"""The models shipped inside the package: their files, their digests, and finding a model file.

Nothing here imports PyTorch or ONNX Runtime, so an install without either can list and locate
models. Every shipped weights file's SHA-256 is recorded in :data:`SHIPPED` and checked when the
file is loaded (:func:`verify_weights`): a damaged or replaced file is a clear error naming it,
never a model that silently predicts wrong.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ferlab.errors import DataError, UnknownNameError

__all__ = [
    "SHIPPED",
    "ShippedModel",
    "file_sha256",
    "int8_file",
    "model_file",
    "shipped_models",
    "verify_weights",
    "weights_dir",
]


@dataclass(frozen=True)
class ShippedModel:
    """One shipped model: its PyTorch checkpoint and ONNX twin, with their SHA-256 digests, and
    optionally a statically quantised int8 ONNX twin (``scripts/measure_runtimes.py``)."""

    pt: str
    pt_sha256: str
    onnx: str
    onnx_sha256: str
    int8: str | None = None
    int8_sha256: str | None = None

    def digests(self) -> dict[str, str]:
        files = {self.pt: self.pt_sha256, self.onnx: self.onnx_sha256}
        if self.int8 is not None and self.int8_sha256 is not None:
            files[self.int8] = self.int8_sha256
        return files


#: The shipped models by name. ``scripts/release_model.py`` writes the files and these digests.
SHIPPED: dict[str, ShippedModel] = {
    "default": ShippedModel(
        pt="default.pt",
        pt_sha256="d0c52376de71ade650ded46b550502dbe350fe06031273bd0c23c3d03b078f6a",
        onnx="default.onnx",
        onnx_sha256="53632958ba0d92a6ff1d94e2b89c6879344438b18361f013f8d21873edfec517",
        int8="default.int8.onnx",
        int8_sha256="db248a0b3d3c8d67e96a7f3ca7b8364d8b91eb3244f312dc6ba630198b57af1a",
    ),
    "ferplus": ShippedModel(
        pt="ferplus.pt",
        pt_sha256="b04eefdc7f2a5b278ed6fab3e9efd7f5012d4c1a272089b42f139799d9e7296e",
        onnx="ferplus.onnx",
        onnx_sha256="9a261fe3d6fef9662a89cfa8b8376706ff7721268d825060109d526dad8f41ff",
        int8="ferplus.int8.onnx",
        int8_sha256="71190c46a720ba734f7b7044a76f961b349d027ee5bd610e14b2adb9f07533da",
    ),
    "fast": ShippedModel(
        pt="fast.pt",
        pt_sha256="7975122057c3cd0fdb6cd36c4c7b30b5034aaac09bf79cb08a204e7e8b281437",
        onnx="fast.onnx",
        onnx_sha256="328bb7cb05662aeb7acd9ae7ddd123ac2d7f478ce6f89188b234031dcc179543",
        int8="fast.int8.onnx",
        int8_sha256="b4fb7204076c2a1ea92d4cf2451776543f55722245631e3956d23b42de7ba48c",
    ),
}


def weights_dir() -> Path:
    """The package folder holding the shipped weights files."""
    return Path(str(resources.files("ferlab") / "weights"))


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_weights(path: str | Path) -> None:
    """Check a shipped weights file against its recorded SHA-256 (other files pass unchecked).

    A shipped file is one inside :func:`weights_dir` named in :data:`SHIPPED`.
    """
    path = Path(path)
    try:
        inside = path.resolve().parent == weights_dir().resolve()
    except OSError:
        return
    if not inside:
        return
    want = {f: d for m in SHIPPED.values() for f, d in m.digests().items()}.get(path.name)
    if want is None:
        return
    got = file_sha256(path)
    if got != want:
        raise DataError(
            f"shipped weights are damaged or replaced: SHA-256 {got[:16]}… differs from the "
            f"recorded {want[:16]}…; reinstall ferlab",
            path=path,
        )


def shipped_models() -> dict[str, Path]:
    """Shipped model names whose weights are present in this install, with their paths (the
    ``.pt`` checkpoint, or the ``.onnx`` twin in an install that has only that)."""
    found = {}
    for name, model in SHIPPED.items():
        for filename in (model.pt, model.onnx):
            path = weights_dir() / filename
            if path.is_file():
                found[name] = path
                break
    return found


def int8_file(name: str) -> Path | None:
    """Where a shipped model's int8 twin lies (``None`` for other names and models without
    one; the file itself may be absent from a trimmed install)."""
    model = SHIPPED.get(name)
    return None if model is None or model.int8 is None else weights_dir() / model.int8


def model_file(name_or_path: str | Path, *, onnx: bool = False) -> Path:
    """The file behind a shipped model name or a path.

    For a shipped name: the ``.pt`` checkpoint, or the ``.onnx`` twin when ``onnx`` is asked
    for or the ``.pt`` is absent. A path is returned as it is once it exists.
    """
    key = str(name_or_path)
    if key in SHIPPED:
        model = SHIPPED[key]
        names = (model.onnx, model.pt) if onnx else (model.pt, model.onnx)
        for filename in names:
            path = weights_dir() / filename
            if path.is_file():
                return path
        raise DataError(
            f"the '{key}' model's weights are not in this install "
            f"(expected ferlab/weights/{model.pt} or {model.onnx}); reinstall ferlab or pass a "
            "checkpoint path",
            field="model",
        )
    path = Path(key)
    if not path.exists():
        if path.suffix or len(path.parts) > 1:
            kind = "ONNX export" if path.suffix.lower() == ".onnx" else "checkpoint"
            raise DataError(f"{kind} not found", path=path)
        raise UnknownNameError(
            "model (name or checkpoint path)",
            key,
            [*SHIPPED, "<path to a .pt checkpoint or .onnx export>"],
        )
    return path
