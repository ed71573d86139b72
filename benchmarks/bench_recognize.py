"""Benchmark of the recognizer: milliseconds per 640×480 frame, faces per second, detection quality.

Workload: ``--frames`` 640×480 frames of a real portrait (scikit-image's public-domain
``astronaut``) panning slowly across the frame, as in a webcam video, and a folder of
``--photos`` 640×480 JPEG photos, each with one FER2013 PrivateTest face (100–220 px, never used
for tuning) on a scikit-image background.

Measured, best of ``--repeat`` runs, frames decoded in memory beforehand:

* **ferlab, video mode**: :meth:`Recognizer.track` — detection (a whole-frame scan every 5th
  frame, the tracked face's neighbourhood in between), eye alignment, classification, tracking
  and smoothing;
* **ferlab, every frame scanned**: the same with ``full_scan_every=1``, and **ferlab, image
  mode**: each frame as an independent photo;
* **naive reference** (in-process): full-resolution ``detectMultiScale`` with OpenCV's defaults,
  then each face resized to 48×48 and classified by the same model;
* **fer reference** (with ``--fer-python``): ``FER().detect_emotions`` of the ``fer`` package
  (Haar cascade + its TensorFlow Lite model), run in a separate interpreter that has ``fer``
  installed, on the same frames and photos;
* **faces/second** on the photo folder: ``Recognizer.run(folder)`` including JPEG decoding, and
  the fer package on the same files.

The classifier is ``ferlab.load_model("default")`` when the shipped weights exist, otherwise a
randomly initialised network of the same architecture (FerlabNet) wrapped the same way — the
timing depends on the network's size, not on its weights; the report says which was used.

Classification runs with ``--torch-threads`` intra-op threads (default 1): a frame holds one to
a few faces, too little work to split, and on the shared 2-core machine two threads made one
forward pass of 1 face 20× slower (319 ms against 15.5 ms, threads spinning against other
jobs). OpenCV's threads are left at their default.

With ``--accuracy`` it also measures detection recall and false positives on composites of 300
held-out faces (see ``ferlab.recognize.detect``). ``--write`` replaces (or appends) the
"Recognizer" section of ``docs/benchmarks.md``.

Usage: ``python benchmarks/bench_recognize.py [--fer-python /tmp/fer-venv/bin/python]
[--frames N] [--photos N] [--repeat N] [--tta none] [--runtime torch|onnx] [--accuracy] [--write]``
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from doc_section import machine, write_doc_section
from rich.console import Console
from rich.table import Table

from ferlab.recognize import HaarDetector, Recognizer
from ferlab.recognize.detect import iou

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Recognizer"
DATASETS = REPO / ".." / "shared" / "datasets"
PRIVATE_TEST_START = 32298  # first PrivateTest row of fer2013.csv
BACKGROUNDS = ("coffee", "rocket", "brick", "grass", "gravel", "hubble_deep_field", "retina")

# Runs in the interpreter given by --fer-python: times fer on the frames and the photo folder.
FER_SCRIPT = r"""
import json, sys, time, warnings, logging, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import cv2, numpy as np
from fer.fer import FER
frames = np.load(sys.argv[1]); folder = sys.argv[2]; repeat = int(sys.argv[3])
detector = FER()
detector.detect_emotions(frames[0])  # warm-up: loads the model
best = float("inf"); found = 0
for _ in range(repeat):
    start = time.perf_counter()
    found = sum(len(detector.detect_emotions(f)) for f in frames)
    best = min(best, time.perf_counter() - start)
files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
best_folder = float("inf"); faces = 0
for _ in range(repeat):
    start = time.perf_counter()
    faces = sum(len(detector.detect_emotions(cv2.imread(p))) for p in files)
    best_folder = min(best_folder, time.perf_counter() - start)
print(json.dumps({"frames_s": best, "frames_found": found, "folder_s": best_folder,
                  "folder_faces": faces}))
"""


def read_faces(first: int, n: int) -> list[np.ndarray]:
    """``n`` non-blank 48×48 faces from row ``first`` on of fer2013.csv.gz."""
    path = DATASETS / "fer2013" / "fer2013.csv.gz"
    if not path.exists():
        raise SystemExit(f"FER2013 CSV not found at {path}")
    faces = []
    with gzip.open(path, "rt", newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        for i, row in enumerate(reader):
            if i < first:
                continue
            face = np.array(row[1].split(), dtype=np.uint8).reshape(48, 48)
            if face.std() > 10:
                faces.append(face)
            if len(faces) == n:
                break
    return faces


def backgrounds() -> list[np.ndarray]:
    """640×480 BGR backgrounds without faces from scikit-image (public domain / CC0)."""
    from skimage import data

    out = []
    for name in BACKGROUNDS:
        image = getattr(data, name)()
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        else:
            image = cv2.cvtColor(image[:, :, :3], cv2.COLOR_RGB2BGR)
        out.append(cv2.resize(image, (640, 480), interpolation=cv2.INTER_AREA))
    return out


def paste(scene: np.ndarray, face: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    out = scene.copy()
    big = cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)
    out[y : y + size, x : x + size] = big[:, :, None]
    return out


def video_frames(n: int) -> list[np.ndarray]:
    """A real portrait panning across a 640×480 frame, as in a webcam video.

    scikit-image's ``astronaut`` (a public-domain NASA photo, 512×512) scaled to 480×480 drifts
    left and right by up to 160 px; the face is about 100 px wide.
    """
    from skimage import data

    photo = cv2.resize(cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR), (480, 480))
    canvas = np.full((480, 640, 3), 60, np.uint8)
    frames = []
    for x in 80 + 80 * np.sin(np.linspace(0, 2 * np.pi, n)):
        frame = canvas.copy()
        frame[:, int(x) : int(x) + 480] = photo
        frames.append(frame)
    return frames


def load_classifier(tta: str | None, runtime: str) -> tuple[object, str]:
    """The shipped default model, or a randomly initialised one of the same architecture."""
    import ferlab.inference as predictor

    if "default" in predictor.shipped_models():
        model = predictor.load_model("default", device="cpu", tta=tta, runtime=runtime)
        return model, f"shipped default model, {model.tta} test-time augmentation, {runtime}"
    from ferlab.data.dataset import FER2013_CLASSES
    from ferlab.inference.preprocess import Preprocess
    from ferlab.inference.torch_backend import TorchBackend
    from ferlab.models import create_model

    network = create_model("ferlab_net").eval()
    meta = {
        "classes": FER2013_CLASSES,
        "input_size": (1, 44, 44),
        "preprocess": Preprocess(image_size=48, crop=44),
        "model": {"name": "ferlab_net"},
    }
    model = predictor.EmotionModel(TorchBackend(network, "cpu"), meta, tta="none")
    return model, "randomly initialised FerlabNet (no shipped weights yet), centre crop"


def best_of(repeat: int, fn: Callable[[], object]) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def naive_reference(frames: list[np.ndarray], classifier) -> int:
    """Full-resolution Haar with OpenCV defaults, each face resized to 48×48 and classified."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    found = 0
    for frame in frames:
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        for x, y, w, h in cascade.detectMultiScale(gray):
            crop = cv2.resize(gray[y : y + h, x : x + w], (48, 48), interpolation=cv2.INTER_AREA)
            classifier.predict_proba(crop[None])
            found += 1
    return found


def stage_times(frames: list[np.ndarray], rec: Recognizer) -> dict[str, float]:
    """Milliseconds per frame of each stage of a whole-frame pass (image mode)."""
    from ferlab.recognize.align import align_crop, eye_angle, roll_correction

    totals = {"detect (whole frame)": 0.0, "eye alignment + crop": 0.0, "classify": 0.0}
    for frame in frames:
        t0 = time.perf_counter()
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        dets = rec.detector.detect(gray)
        t1 = time.perf_counter()
        crops = [
            align_crop(gray, d.box, angle=roll_correction(eye_angle(gray, d.box))) for d in dets
        ]
        t2 = time.perf_counter()
        if crops:
            rec.classifier.predict_proba(np.stack(crops))
        t3 = time.perf_counter()
        totals["detect (whole frame)"] += t1 - t0
        totals["eye alignment + crop"] += t2 - t1
        totals["classify"] += t3 - t2
    return {k: 1000 * v / len(frames) for k, v in totals.items()}


def detection_accuracy(n: int = 300) -> list[tuple[str, float, float, float]]:
    """Recall, false positives per image and ms per image of detector settings on composites."""
    faces = read_faces(PRIVATE_TEST_START, n)
    bgs = backgrounds()
    rng = np.random.default_rng(3)
    cases = []
    for i, face in enumerate(faces):
        size = int(rng.integers(60, 240))
        x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
        scene = cv2.cvtColor(paste(bgs[i % len(bgs)], face, x, y, size), cv2.COLOR_BGR2GRAY)
        cases.append((scene, (x, y, size, size)))
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    settings: dict[str, Callable[[np.ndarray], list]] = {
        "ferlab haar (tuned)": lambda g: [d.box for d in HaarDetector().detect(g)],
        "ferlab haar-profile": lambda g: [d.box for d in HaarDetector(profile=True).detect(g)],
        "OpenCV defaults, full resolution": lambda g: [
            tuple(b) for b in cascade.detectMultiScale(g)
        ],
        "fer's settings (1.1, 5 neighbours, 50 px)": lambda g: [
            tuple(b) for b in cascade.detectMultiScale(g, 1.1, 5, minSize=(50, 50))
        ],
    }
    rows = []
    for name, detect in settings.items():
        hits = false = 0
        start = time.perf_counter()
        for gray, truth in cases:
            found, others = match_pasted(detect(gray), truth)
            hits += found
            false += others
        ms = 1000 * (time.perf_counter() - start) / len(cases)
        rows.append((name, hits / len(cases), false / len(cases), ms))
    return rows


def match_pasted(boxes: list, truth) -> tuple[bool, int]:
    """Whether a box found the pasted face (IoU > 0.4 with it), and how many boxes did not
    (false positives)."""
    ok = [iou(b, truth) > 0.4 for b in boxes]
    return any(ok), len(boxes) - sum(ok)


def run_fer(python: str, frames: list[np.ndarray], folder: Path, repeat: int) -> dict | str:
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "frames.npy"
        np.save(npy, np.stack(frames))
        proc = subprocess.run(
            [python, "-c", FER_SCRIPT, str(npy), str(folder), str(repeat)],
            capture_output=True,
            text=True,
            timeout=1800,
        )
    if proc.returncode != 0:
        last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode
        return f"fer failed: {last}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--photos", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--fer-python", help="python of a venv with the fer package")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads for classification (default 1, see the docstring)",
    )
    parser.add_argument("--tta", help="test-time augmentation (default: the model's own)")
    parser.add_argument("--runtime", default="torch", help="torch or onnx")
    parser.add_argument("--accuracy", action="store_true", help="also measure detection quality")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]  # before this benchmark adds its own
    console = Console()
    import torch

    torch.set_num_threads(args.torch_threads)
    classifier, classifier_note = load_classifier(args.tta, args.runtime)
    faces = read_faces(PRIVATE_TEST_START, max(args.photos, 8))
    bgs = backgrounds()
    frames = video_frames(args.frames)
    rng = np.random.default_rng(0)

    video = Recognizer(model=classifier)
    every = Recognizer(model=classifier, full_scan_every=1)
    times: dict[str, tuple[float, int]] = {}

    def run_video(rec: Recognizer) -> int:
        return sum(len(fr.faces) for fr in rec.track(frames))

    def run_images() -> int:
        return sum(len(video.process_frame(f)) for f in frames)

    run_video(video)  # warm-up: cascades, torch kernels
    pipelines: list[tuple[str, Callable[[], int]]] = [
        ("ferlab, video mode (whole-frame scan every 5th frame)", lambda: run_video(video)),
        ("ferlab, video mode, whole-frame scan on every frame", lambda: run_video(every)),
        ("ferlab, image mode (every frame independent)", run_images),
        ("naive reference: full-res Haar, OpenCV defaults + same classifier",
         lambda: naive_reference(frames, classifier)),
    ]  # fmt: skip
    for name, fn in pipelines:
        seconds, found = best_of(args.repeat, fn)
        times[name] = (seconds, found)
    stages = stage_times(frames, video)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        for i, face in enumerate(faces[: args.photos]):
            size = int(rng.integers(100, 220))
            x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
            photo = paste(bgs[i % len(bgs)], face, x, y, size)
            cv2.imwrite(str(folder / f"photo_{i:04d}.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
        folder_s, folder_results = best_of(args.repeat, lambda: video.run(folder))
        fer = run_fer(args.fer_python, frames, folder, args.repeat) if args.fer_python else None

    n = len(frames)
    table = Table(title=f"{n} frames 640×480, one face; classifier: {classifier_note}")
    table.add_column("pipeline")
    table.add_column("ms/frame", justify="right")
    table.add_column("frames/s", justify="right")
    table.add_column("faces found", justify="right")
    rows = [(name, 1000 * s / n, n / s, found) for name, (s, found) in times.items()]
    if isinstance(fer, dict):
        fer_s = fer["frames_s"]
        name = "fer package: FER().detect_emotions (Haar + TF Lite)"
        rows.append((name, 1000 * fer_s / n, n / fer_s, fer["frames_found"]))
    for name, ms, fps, found in rows:
        table.add_row(name, f"{ms:.1f}", f"{fps:.0f}", f"{found}/{n}")
    console.print(table)
    console.print("stages (image mode):", {k: round(v, 2) for k, v in stages.items()})
    photos_n = args.photos
    faces_per_s = len(folder_results) / folder_s
    console.print(
        f"folder of {photos_n} photos: {folder_s:.2f} s, {len(folder_results)} faces, "
        f"{faces_per_s:.1f} faces/s"
    )
    if isinstance(fer, dict):
        console.print(
            f"fer on the folder: {fer['folder_s']:.2f} s, {fer['folder_faces']} faces, "
            f"{fer['folder_faces'] / fer['folder_s']:.1f} faces/s"
        )
    elif fer is not None:
        console.print(f"[red]{fer}[/]")
    accuracy = detection_accuracy() if args.accuracy else None
    if accuracy:
        for name, recall, fp, ms in accuracy:
            console.print(
                f"{name}: recall {recall:.3f}, false positives/image {fp:.3f}, {ms:.1f} ms"
            )

    if args.write:
        write_section(args, n, rows, stages, photos_n, folder_s, folder_results, fer, accuracy,
                      classifier_note)  # fmt: skip


def write_section(args, n, rows, stages, photos_n, folder_s, folder_results, fer, accuracy,
                  classifier_note) -> None:  # fmt: skip
    video_ms = rows[0][1]
    lines = [
        SECTION,
        "",
        f"Script: `benchmarks/bench_recognize.py --frames {n} --photos {photos_n} --repeat "
        f"{args.repeat}{' --fer-python <venv with fer>' if fer else ''}"
        f"{f' --tta {args.tta}' if args.tta else ''} --runtime {args.runtime}"
        f"{' --accuracy' if accuracy else ''}`. Measured {dt.date.today()} on "
        f"{machine(args.load)}. Frames: scikit-image's astronaut portrait panning across a "
        f"640×480 frame (face about 100 px), decoded in memory beforehand. Classifier: "
        f"{classifier_note}, {args.torch_threads} torch thread(s). Best of {args.repeat} runs.",
        "",
        "| pipeline | ms / frame | frames / s | faces found |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {ms:.1f} | {fps:.0f} | {found}/{n} |" for name, ms, fps, found in rows]
    video_fps = rows[0][2]
    lines += [
        "",
        f"Target ≥ 30 frames/s: {'met' if video_fps >= 30 else 'not met'} "
        f"({video_fps:.0f} frames/s in video mode). Absolute times depend on the machine and its "
        "load; the ratio to the references, measured side by side, is the comparable figure. "
        "More faces than frames are false positives.",
        "",
        "Stages of a whole-frame pass (image mode), ms per frame: "
        + ", ".join(f"{k} {v:.2f}" for k, v in stages.items())
        + ".",
        "",
        f"Folder of {photos_n} JPEG photos (640×480, one face each, decoding included): "
        f"ferlab {folder_s:.2f} s, {len(folder_results)} faces, "
        f"**{len(folder_results) / folder_s:.1f} faces/s**"
        + (
            f"; fer package {fer['folder_s']:.2f} s, {fer['folder_faces']} faces, "
            f"{fer['folder_faces'] / fer['folder_s']:.1f} faces/s."
            if isinstance(fer, dict)
            else "."
        ),
        "",
    ]
    if isinstance(fer, dict):
        fer_ms = 1000 * fer["frames_s"] / n
        lines.append(
            f"Ratio: ferlab's video mode takes {video_ms:.1f} ms per frame against "
            f"{fer_ms:.1f} ms for the fer package, **{fer_ms / video_ms:.1f}× faster**; "
            f"against the naive reference {rows[3][1] / video_ms:.1f}× faster."
        )
    else:
        lines.append(
            f"Ratio: ferlab's video mode is {rows[3][1] / video_ms:.1f}× faster than the naive "
            "reference (the fer package was not run)."
        )
    if accuracy:
        lines += [
            "",
            "Detection on 300 composites of PrivateTest faces (60–240 px on 640×480 scikit-image "
            "backgrounds; a hit is IoU > 0.4):",
            "",
            "| detector | recall | false positives / image | ms / image |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {a} | {r:.3f} | {f:.3f} | {m:.1f} |" for a, r, f, m in accuracy]
    write_doc_section(lines)


if __name__ == "__main__":
    main()
