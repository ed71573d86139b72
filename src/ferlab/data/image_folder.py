"""Readers of image-folder datasets, from a folder or straight from a ``.zip``.

Two layouts share this code:

* the Kaggle image-folder release of FER2013 (``train/<class>/*.jpg``, ``test/<class>/*.jpg``,
  class folders ``angry disgust fear happy neutral sad surprise``). It is recognised when the
  file names carry the ``Training_`` / ``PublicTest_`` / ``PrivateTest_`` prefixes or when every
  class folder is a FER2013 class. Class ids then follow
  :data:`~ferlab.data.dataset.FER2013_CLASSES`, whatever the folders' order; with the prefixes,
  the three standard splits come from the names (``test/`` mixes PublicTest and PrivateTest);
* any ImageFolder of face crops: ``train/``, optional ``val/`` and ``test/``, one folder per
  class, class ids in alphabetical order of the ``train/`` class folders.

Without prefixes and without ``val/``, validation is carved from ``train/``: in every class,
``round(n * val_fraction)`` images picked by a seeded permutation (numpy ``default_rng(seed)``
over the files in path order), so the same seed always gives the same split.

A zip is read member by member and never extracted. A dataset root may also sit one folder down
(``archive.zip/fer2013/train/...``), as many downloads are packed. Images are decoded with Pillow,
converted to 8-bit greyscale (``L``: ITU-R 601 luma) and resized to 48×48 (bilinear) when they
have another size, with a warning giving the count.

Checked, each reported with the file it concerns: unreadable or corrupt images, files that are not
images (by extension) inside class folders, files directly inside a split folder, folders nested
inside class folders, unknown top-level folders, empty class folders, class folders of
``val/``/``test/`` missing from ``train/``, unknown class folders in the Kaggle layout. Files at the
top level (README, manifests, checksums) are ignored, as are hidden files and ``__MACOSX/``.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ferlab.data._problems import Problems
from ferlab.data._progress import progress_bar
from ferlab.data.dataset import FER2013_CLASSES
from ferlab.errors import DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "FolderRows",
    "find_image_root",
    "read_image_folder",
    "tree_fingerprint",
]

#: File extensions read as images (lower case).
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
_SPLIT_DIRS = {"train": 0, "val": 1, "test": 2}
_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_")
_PREFIX_SPLITS = {"Training": 0, "PublicTest": 1, "PrivateTest": 2}
_SIDE = 48


@dataclass
class FolderRows:
    """The good images of an image folder, as numpy arrays."""

    images: np.ndarray  # uint8 N×48×48
    labels: np.ndarray  # int64 N
    split: np.ndarray  # int8 N
    index: np.ndarray  # int64 N, position of the file in path order
    classes: tuple[str, ...]
    format: str
    resized: int  # how many images were not 48×48
    n_rows: int  # image files considered, bad ones included
    skipped: list[str] = field(default_factory=list)


@dataclass
class _Tree:
    """Files and folders of a dataset root, relative to it, and how to read a file."""

    files: list[PurePosixPath]
    dirs: set[PurePosixPath]
    read: Callable[[PurePosixPath], bytes]
    show: Callable[[PurePosixPath], str]  # the name errors give for a member
    zipped: bool


def _ignored(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX" or part in {"Thumbs.db", "desktop.ini"}


def find_image_root(path: Path) -> PurePosixPath | None:
    """Where ``train/`` lives inside a folder or zip: ``.`` or one folder down; None if nowhere."""
    if path.is_dir():
        if (path / "train").is_dir():
            return PurePosixPath(".")
        try:
            subdirs = [p for p in path.iterdir() if p.is_dir() and not _ignored(p.name)]
        except OSError as exc:
            raise DataError(f"cannot list the folder ({exc.strerror or exc})", path=path) from None
        if len(subdirs) == 1 and (subdirs[0] / "train").is_dir():
            return PurePosixPath(subdirs[0].name)
        return None
    names = [n for n in _zip_names(path) if not any(_ignored(p) for p in n.split("/"))]
    if any(n.startswith("train/") for n in names):
        return PurePosixPath(".")
    tops = {n.split("/")[0] for n in names if "/" in n}
    if len(tops) == 1:
        top = next(iter(tops))
        if any(n.startswith(f"{top}/train/") for n in names):
            return PurePosixPath(top)
    return None


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        raise DataError(f"not a readable zip archive ({exc})", path=path) from None


def tree_fingerprint(path: Path) -> dict[str, object]:
    """What identifies the content of an image folder for the cache.

    A folder's own mtime does not change when a file inside it is rewritten, so the fingerprint
    hashes the relative path, size and mtime of every file under it.
    """
    digest = hashlib.sha256()
    count = 0
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            rel = os.path.relpath(full, path)
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            count += 1
        for name in dirnames:  # empty folders matter too (they are an error)
            digest.update(f"{os.path.relpath(os.path.join(dirpath, name), path)}/\n".encode())
    return {"files": count, "listing_sha256": digest.hexdigest()}


def _folder_tree(path: Path, root: PurePosixPath) -> _Tree:
    base = path / root
    files, dirs = [], set()
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not _ignored(d))
        rel = PurePosixPath(Path(dirpath).relative_to(base).as_posix())
        for d in dirnames:
            dirs.add(rel / d)
        files.extend(rel / f for f in sorted(filenames) if not _ignored(f))

    def read(member: PurePosixPath) -> bytes:
        return (base / member).read_bytes()

    return _Tree(files=files, dirs=dirs, read=read, show=lambda m: str(base / m), zipped=False)


def _zip_tree(path: Path, root: PurePosixPath, zf: zipfile.ZipFile) -> _Tree:
    prefix = "" if str(root) == "." else f"{root}/"
    files, dirs = [], set()
    for info in zf.infolist():
        name = info.filename
        if not name.startswith(prefix) or name == prefix:
            continue
        rel = PurePosixPath(name[len(prefix) :])
        if any(_ignored(p) for p in rel.parts):
            continue
        # Folders are implied by member names; explicit folder entries also reveal empty ones.
        dirs.update(p for p in rel.parents if str(p) != ".")
        if info.is_dir():
            dirs.add(rel)
        else:
            files.append(rel)

    def read(member: PurePosixPath) -> bytes:
        return zf.read(prefix + str(member))

    return _Tree(
        files=sorted(files), dirs=dirs, read=read, show=lambda m: f"{path}/{prefix}{m}", zipped=True
    )


def read_image_folder(
    path: Path,
    problems: Problems,
    *,
    skip_bad: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = False,
) -> FolderRows:
    """Read an image-folder dataset from a folder or a zip (see the module docstring).

    Problems with single files or folders are recorded in ``problems`` and those files left out.

    Raises:
        DataError: no ``train/`` (or ``test/``) folder, an unreadable zip, no image at all.
    """
    root = find_image_root(path)
    if root is None:
        raise DataError("no train/ folder (expected train/, optional val/, and test/)", path=path)
    if path.is_dir():
        return _read_tree(
            path, _folder_tree(path, root), problems, skip_bad, val_fraction, seed, progress
        )
    try:
        with zipfile.ZipFile(path) as zf:
            tree = _zip_tree(path, root, zf)
            return _read_tree(path, tree, problems, skip_bad, val_fraction, seed, progress)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"not a readable zip archive ({exc})", path=path) from None


def _read_tree(
    path: Path,
    tree: _Tree,
    problems: Problems,
    skip_bad: bool,
    val_fraction: float,
    seed: int,
    progress: bool,
) -> FolderRows:
    members = _layout(path, tree, problems)
    names = [m.name for m, _, _ in members]
    prefixed = [_PREFIX.match(n) for n in names]
    kaggle = any(prefixed) or ({c for _, _, c in members} | _class_dirs(tree)) <= set(
        FER2013_CLASSES
    )

    if kaggle:
        classes = FER2013_CLASSES
        for d in sorted(_class_dirs(tree) - set(classes)):
            problems.add(
                f"unknown class folder '{d}' (expected {', '.join(FER2013_CLASSES)})",
                path=path,
            )
    else:
        classes = tuple(
            sorted(d.name for d in tree.dirs if d.parts[:1] == ("train",) and len(d.parts) == 2)
        )
        for d in sorted(tree.dirs):
            if len(d.parts) == 2 and d.parts[0] in ("val", "test") and d.name not in classes:
                problems.add(f"class folder '{d}' has no counterpart in train/", path=path)
    class_id = {c: i for i, c in enumerate(classes)}

    use_prefix = any(prefixed)
    picked: list[tuple[PurePosixPath, int, int]] = []
    for (member, split_dir, cls), match in zip(members, prefixed, strict=True):
        if cls not in class_id:
            continue  # reported above, once per folder
        if use_prefix:
            if match is None:
                problems.add(
                    "file name lacks the Training_/PublicTest_/PrivateTest_ prefix the other "
                    "files carry",
                    path=tree.show(member),
                )
                continue
            split = _PREFIX_SPLITS[match.group(1)]
        else:
            split = _SPLIT_DIRS[split_dir]
        picked.append((member, class_id[cls], split))

    images = np.zeros((len(picked), _SIDE, _SIDE), dtype=np.uint8)
    ok = np.zeros(len(picked), dtype=bool)
    resized = 0
    with progress_bar(f"Decoding {path.name}", len(picked), progress) as update:
        for i, (member, _, _) in enumerate(picked):
            outcome = _decode(tree, member)
            if isinstance(outcome, str):
                problems.add(outcome, path=tree.show(member))
            else:
                images[i], was_resized = outcome
                resized += was_resized
                ok[i] = True
            if i % 64 == 0 or i == len(picked) - 1:
                update(i + 1)
    if not ok.any():
        problems.raise_first()
        raise DataError("no images found in the class folders", path=path)

    labels = np.array([c for _, c, _ in picked], dtype=np.int64)
    split = np.array([s for _, _, s in picked], dtype=np.int8)
    if not use_prefix and "val" not in {str(d) for d in tree.dirs}:
        _carve_val(split, labels, ok, val_fraction, seed)
    index = np.flatnonzero(ok)
    fmt = ("fer2013-images" if kaggle else "image-folder") + ("-zip" if tree.zipped else "")
    return FolderRows(
        images=images[index],
        labels=labels[index],
        split=split[index],
        index=index.astype(np.int64),
        classes=tuple(classes),
        format=fmt,
        resized=resized,
        n_rows=len(picked),
        skipped=[str(p) for p in problems.items] if skip_bad else [],
    )


def _class_dirs(tree: _Tree) -> set[str]:
    return {d.name for d in tree.dirs if len(d.parts) == 2 and d.parts[0] in _SPLIT_DIRS}


def _layout(path: Path, tree: _Tree, problems: Problems) -> list[tuple[PurePosixPath, str, str]]:
    """The image files as (member, split folder, class folder); stray entries are recorded."""
    top = {d.parts[0] for d in tree.dirs}
    for name in ("train", "test"):
        if name not in top:
            raise DataError(
                f"no {name}/ folder (expected train/, optional val/, and test/)", path=path
            )
    for d in sorted(top - set(_SPLIT_DIRS)):
        problems.add(f"unexpected folder '{d}/' (expected only train/, val/ and test/)", path=path)
    out = []
    for member in tree.files:
        parts = member.parts
        if len(parts) == 1 or parts[0] not in _SPLIT_DIRS:
            continue  # top-level files (README, manifests) and unexpected folders (reported)
        if len(parts) == 2:
            problems.add(
                "stray file directly in a split folder (expected <split>/<class>/<image>)",
                path=tree.show(member),
            )
        elif len(parts) > 3:
            problems.add(
                "stray file in a folder nested inside a class folder", path=tree.show(member)
            )
        elif member.suffix.lower() not in IMAGE_EXTENSIONS:
            problems.add(
                f"not an image file (extension '{member.suffix}'; expected one of "
                f"{', '.join(sorted(IMAGE_EXTENSIONS))})",
                path=tree.show(member),
            )
        else:
            out.append((member, parts[0], parts[1]))
    used = {(s, c) for _, s, c in out}
    for d in sorted(tree.dirs):
        if len(d.parts) == 2 and d.parts[0] in _SPLIT_DIRS and tuple(d.parts) not in used:
            problems.add("empty class folder (no image files)", path=tree.show(d))
    for name in ("train", "test"):
        if not any(s == name for s, _ in used):
            raise DataError(f"{name}/ holds no class folder with images", path=path)
    return out


def _decode(tree: _Tree, member: PurePosixPath) -> tuple[np.ndarray, bool] | str:
    """A 48×48 uint8 image and whether it was resized, or what went wrong."""
    from PIL import Image

    try:
        raw = tree.read(member)
    # zip members fail with their own types: bad CRC, corrupt deflate data, encryption,
    # compression methods the zipfile module lacks.
    except (
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        NotImplementedError,
        zipfile.BadZipFile,
        zlib.error,
    ) as exc:
        return f"cannot read the file ({exc})"
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.load()
            grey = img.convert("L")
    # Pillow signals a bad image with many exception types (OSError, SyntaxError, ValueError,
    # DecompressionBombError, ...), depending on the decoder; any of them means a corrupt file.
    except Exception as exc:
        return f"cannot decode the image ({type(exc).__name__}: {exc})"
    resized = grey.size != (_SIDE, _SIDE)
    if resized:
        grey = grey.resize((_SIDE, _SIDE), Image.Resampling.BILINEAR)
    return np.asarray(grey, dtype=np.uint8), resized


def _carve_val(
    split: np.ndarray, labels: np.ndarray, ok: np.ndarray, fraction: float, seed: int
) -> None:
    """Move a seeded, per-class ``fraction`` of the train images to val (in place)."""
    rng = np.random.default_rng(seed)
    for cls in np.unique(labels):
        members = np.flatnonzero((split == 0) & (labels == cls) & ok)
        n_val = round(len(members) * fraction)
        split[members[rng.permutation(len(members))[:n_val]]] = 1


def warn_resized(path: Path | str, resized: int, total: int) -> None:
    """Warn that ``resized`` of ``total`` images were not 48×48 and were resized."""
    if resized:
        warnings.warn(
            f"{path}: {resized} of {total} images were not {_SIDE}×{_SIDE} and were resized "
            f"to {_SIDE}×{_SIDE}",
            UserWarning,
            stacklevel=3,
        )
