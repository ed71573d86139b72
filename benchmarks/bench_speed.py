"""Per-face cost of ferlab against the ``fer`` package, side by side in one run, on every path.

The ``fer`` package (Haar cascade + its TF Lite mini-Xception) runs in its own virtual
environment (``--fer-python``; ``--setup-fer`` makes one in the gitignored
``benchmarks/.venvs/fer`` with ``pip install fer==25.10.3``), in a child process, on the same
inputs, interleaved with ferlab's measurements. Workloads:

* **crops**: ``--crops`` 48×48 FER2013 PrivateTest faces (timing only; generated faces where the
  datasets are absent). ferlab: ``load_model(name).predict_proba(crops)`` in one call, as a user
  gets it (the default runtime and the model's own test-time augmentation), then other choices
  (``tta="none"``; forced PyTorch fp32, the default before; forced ONNX Runtime fp32). fer:
  ``detect_emotions(crop, face_rectangles=[(0, 0, 48, 48)])``, one face per call, as its API
  offers.
* **image mode**: ``--frames`` 640×480 frames with one face (100-220 px) on scikit-image
  backgrounds, each an independent photo: ``Recognizer.run(frame)`` against
  ``detect_emotions(frame)``; milliseconds per frame.
* **folder**: ``--photos`` such JPEG photos (made once into ``--work``, with the pasted boxes in
  ``photos-N.boxes.json``), decoding included: ``Recognizer.run(folder)`` (threads on every core)
  against ``cv2.imread`` + ``detect_emotions`` per file. A photo's face counts as found when a
  reported box overlaps the pasted one (IoU > 0.4, as in ``bench_recognize.py``); the other
  boxes are false positives and are counted apart, so that neither side's faces per second
  (found faces per second) is inflated by them.
* **long video**: a synthetic ``--video-minutes``-minute 30 fps 1280×720 MPEG-4 video with two
  faces drifting across a background (made once into ``--work``). ferlab:
  ``Recognizer(sample_fps=5).run(video)`` over the whole video; fer: every 6th frame (5 per
  second) of the first ``--fer-video-seconds`` seconds read with ``cv2.VideoCapture.read`` and
  given to ``detect_emotions``; × real time = video seconds / wall seconds.

One ``fer`` process serves the whole run, so the two sides alternate: crops and frames take the
best of ``--repeat`` runs, fer's and ferlab's runs taking turns (a run over 20 s is not
repeated), and fer's folder and video runs come right before ferlab's, once each.
``--models`` lists the shipped models to measure (``default fast`` once a ``fast`` model
ships); their runtime accuracy record is tabled too. ``--write`` replaces the "Speed against
fer" section of ``docs/benchmarks.md``; results also go to ``benchmarks/results/speed.json``.

    python benchmarks/bench_speed.py --setup-fer --models default --write
"""

from __future__ import annotations

import os

# As the `ferlab` commands do (cli/options.py): idle ONNX Runtime / OpenMP threads sleep instead
# of spinning, which would take the cores from the folder path's reading threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from bench_recognize import PRIVATE_TEST_START, backgrounds, match_pasted, paste, read_faces
from doc_section import machine, write_doc_section
from rich.console import Console
from rich.progress import track

REPO = Path(__file__).resolve().parents[1]
SECTION = "## Speed against fer"
FER_VERSION = "25.10.3"
FER_VENV = REPO / "benchmarks" / ".venvs" / "fer"
VIDEO_FPS = 30.0
VIDEO_SIZE = (1280, 720)

# Runs in the interpreter of --fer-python: one workload per line of stdin (JSON), its timing as
# one JSON line on stdout; one process serves the whole run, so fer's and ferlab's measurements
# can alternate.
FER_SCRIPT = r"""
import json, os, sys, time, warnings, logging
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
import cv2, numpy as np
from fer.fer import FER
import fer as fer_package
detector = FER()
detector.detect_emotions(np.full((480, 640, 3), 128, np.uint8))  # loads the model
emotions = detector.detect_emotions

def timed(fn):
    start = time.perf_counter(); out = fn()
    return time.perf_counter() - start, out

def video(job):
    cap = cv2.VideoCapture(job["path"]); fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    last, index, faces = int(job["seconds"] * fps), 0, 0
    while index < last:
        ok, frame = cap.read()
        if not ok:
            break
        if index % job["step"] == 0:
            faces += len(emotions(frame))
        index += 1
    cap.release()
    return index / fps, faces

for line in sys.stdin:
    job = json.loads(line)
    kind = job["kind"]
    if kind == "crops":
        crops = [cv2.cvtColor(c, cv2.COLOR_GRAY2BGR) for c in np.load(job["path"])]
        box = [(0, 0, 48, 48)]
        seconds, n = timed(lambda: sum(len(emotions(c, box)) for c in crops))
        result = {"seconds": seconds, "items": len(crops), "faces": n}
    elif kind == "frames":
        frames = np.load(job["path"])
        seconds, n = timed(lambda: sum(len(emotions(f)) for f in frames))
        result = {"seconds": seconds, "items": len(frames), "faces": n}
    elif kind == "folder":
        files = sorted(f for f in os.listdir(job["path"]) if f.endswith(".jpg"))
        seconds, found = timed(
            lambda: [emotions(cv2.imread(os.path.join(job["path"], f))) for f in files]
        )
        boxes = {f: [[int(v) for v in face["box"]] for face in faces]
                 for f, faces in zip(files, found)}
        result = {"seconds": seconds, "items": len(files), "boxes": boxes}
    else:  # video: every step-th frame of the first `seconds` seconds
        seconds, (video_s, n) = timed(lambda: video(job))
        result = {"seconds": seconds, "video_seconds": video_s, "faces": n}
    result["version"] = getattr(fer_package, "__version__", "?")
    print(json.dumps(result), flush=True)
"""


def setup_fer() -> Path:
    """``benchmarks/.venvs/fer`` with ``fer`` installed (from PyPI), made once."""
    python = FER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"fer=={FER_VERSION}"], check=True
        )
    return python


class FerWorker:
    """The fer process: ``run(job)`` hands it one workload and returns its timing."""

    def __init__(self, python: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), "-c", FER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def run(self, job: dict) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            err = self.proc.stderr.read() if self.proc.stderr is not None else ""
            tail = err.strip().splitlines()[-1:] or [f"exit status {self.proc.wait()}"]
            raise SystemExit(f"fer failed on {job['kind']}: {tail[0]}")
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def test_faces(n: int) -> np.ndarray:
    """FER2013 PrivateTest faces, or generated ones where the datasets are absent."""
    try:
        return np.stack(read_faces(PRIVATE_TEST_START, n))
    except SystemExit:
        sys.path.insert(0, str(REPO))
        from tests.generated_faces import generated_faces

        return generated_faces(n)


def photo(
    face: np.ndarray, scene: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, list[int]]:
    """``scene`` with ``face`` pasted at 100-220 px somewhere, and the pasted box."""
    size = int(rng.integers(100, 221))
    h, w = scene.shape[:2]
    x, y = int(rng.integers(0, w - size)), int(rng.integers(0, h - size))
    return paste(scene, face, x, y, size), [x, y, size, size]


def make_folder(folder: Path, faces: np.ndarray, n: int) -> tuple[Path, dict[str, list[int]]]:
    """``n`` 640×480 JPEG photos, one face each, and each photo's face box by file name (made
    once; the boxes beside the folder, so that both sides read only the photos)."""
    boxes_file = folder.with_suffix(".boxes.json")
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == n and boxes_file.is_file():
        return folder, json.loads(boxes_file.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    bgs, rng = backgrounds(), np.random.default_rng(1)
    truth = {}
    for i in track(range(n), description=f"making {n} photos"):
        image, truth[f"{i:05d}.jpg"] = photo(faces[i % len(faces)], bgs[i % len(bgs)], rng)
        cv2.imwrite(str(folder / f"{i:05d}.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    boxes_file.write_text(json.dumps(truth))
    return folder, truth


def found_faces(boxes: dict[str, list], truth: dict[str, list[int]]) -> dict[str, int]:
    """Photos whose face was found and the boxes that found none (false positives), from the
    boxes reported per file name (:func:`bench_recognize.match_pasted`)."""
    matches = [match_pasted(bs, truth[f]) for f, bs in boxes.items()]
    return {"faces": sum(m[0] for m in matches), "other_boxes": sum(m[1] for m in matches)}


def make_video(path: Path, faces: np.ndarray, minutes: float) -> Path:
    """A 30 fps 1280×720 MPEG-4 video: two faces (a new pair every 10 s) drifting slowly."""
    frames = round(minutes * 60 * VIDEO_FPS)
    if path.is_file():
        cap = cv2.VideoCapture(str(path))
        ok = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == frames
        cap.release()
        if ok:
            return path
    path.parent.mkdir(parents=True, exist_ok=True)
    scene = cv2.resize(backgrounds()[0], VIDEO_SIZE, interpolation=cv2.INTER_AREA)
    sizes = (180, 150)
    big = [
        [cv2.resize(f, (s, s), interpolation=cv2.INTER_CUBIC)[:, :, None] for f in faces]
        for s in sizes
    ]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, VIDEO_SIZE)
    for i in track(range(frames), description=f"making a {minutes:g}-minute video"):
        pair = (i // int(10 * VIDEO_FPS)) * 2
        t = i / VIDEO_FPS
        frame = scene.copy()
        for k, size in enumerate(sizes):
            x = int(220 + k * 600 + 120 * np.sin(t / 4 + k))
            y = int(200 + 80 * np.cos(t / 5 + 2 * k))
            frame[y : y + size, x : x + size] = big[k][(pair + k) % len(faces)]
        writer.write(frame)
    writer.release()
    return path


CROP_PATHS = (
    ("default inference (as loaded)", {}),
    ("default tta, PyTorch fp32 (the default before)", {"runtime": "torch"}),
    ("tta none, default runtime", {"tta": "none"}),
    ("tta none, PyTorch fp32", {"tta": "none", "runtime": "torch"}),
    ("tta none, ONNX Runtime fp32", {"tta": "none", "runtime": "onnx"}),
)
FRAME_PATHS = (("default inference", None), ("tta none", "none"))


def interleaved(repeat: int, fer: Callable[[], float], ours: dict[str, Callable[[], float]]):
    """Best seconds of fer's run and of each of ours, alternating run by run (so that a change
    of the machine's load touches both sides); a side whose run took over 20 s is not rerun."""
    best = {"fer": float("inf"), **{k: float("inf") for k in ours}}
    for _ in range(repeat):
        for key, fn in (("fer", fer), *ours.items()):
            if best[key] <= 20:
                best[key] = min(best[key], fn())
            elif best[key] == float("inf"):
                best[key] = fn()
    return best


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["default"], help="shipped model names")
    parser.add_argument("--fer-python", type=Path, help="python of a venv with fer installed")
    parser.add_argument("--setup-fer", action="store_true", help=f"make {FER_VENV} if missing")
    parser.add_argument("--crops", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--video-minutes", type=float, default=10.0)
    parser.add_argument("--sample-fps", type=float, default=5.0)
    parser.add_argument("--fer-video-seconds", type=float, default=60.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work")
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    console = Console()
    python = setup_fer() if args.setup_fer else args.fer_python or FER_VENV / "bin" / "python"
    if not Path(python).exists():
        raise SystemExit(f"no fer interpreter at {python}: pass --setup-fer or --fer-python")

    faces = test_faces(max(args.crops, 64))
    crops = faces[: args.crops]
    rng = np.random.default_rng(0)
    bgs = backgrounds()
    frames = [photo(faces[i], bgs[i % len(bgs)], rng)[0] for i in range(args.frames)]
    folder, truth = make_folder(args.work / f"photos-{args.photos}", faces, args.photos)
    video = make_video(
        args.work / f"video-{args.video_minutes:g}min.mp4", faces, args.video_minutes
    )
    args.work.mkdir(parents=True, exist_ok=True)
    np.save(args.work / "crops.npy", crops)
    np.save(args.work / "frames.npy", np.stack(frames))
    step = round(VIDEO_FPS / args.sample_fps)

    out: dict = {"date": dt.date.today().isoformat(), "machine": machine(load), "models": {}}
    from ferlab.inference import load_model
    from ferlab.recognize import Recognizer

    fer = FerWorker(python)
    crop_job = {"kind": "crops", "path": str(args.work / "crops.npy")}
    frame_job = {"kind": "frames", "path": str(args.work / "frames.npy")}
    fer_best = {"crops": float("inf"), "frames": float("inf")}
    for name in args.models:
        console.print(f"{name} and fer: crops, frames, folder, video", style="bold")
        models = {label: load_model(name, device="cpu", **kw) for label, kw in CROP_PATHS}
        for m in models.values():
            m.predict_proba(crops[:16])  # warm-up
        best = interleaved(
            args.repeat,
            lambda: fer.run(crop_job)["seconds"],
            {k: (lambda m=m: timed(lambda: m.predict_proba(crops))) for k, m in models.items()},
        )
        fer_best["crops"] = min(fer_best["crops"], best.pop("fer"))
        result: dict = {"crops": [], "frames": []}
        for label, m in models.items():
            row = {"path": label, "runtime": f"{m.runtime} {m.precision}", "tta": m.tta}
            result["crops"].append({**row, "crops_s": len(crops) / best[label]})
        recs = {label: Recognizer(model=name, tta=tta) for label, tta in FRAME_PATHS}
        for rec in recs.values():
            rec.run(frames[0])
        best = interleaved(
            args.repeat,
            lambda: fer.run(frame_job)["seconds"],
            {k: (lambda r=r: timed(lambda: [r.run(f) for f in frames])) for k, r in recs.items()},
        )
        fer_best["frames"] = min(fer_best["frames"], best.pop("fer"))
        for label in recs:
            result["frames"].append({"path": label, "ms_frame": 1000 * best[label] / len(frames)})
        if name == args.models[0]:  # fer's folder run beside the first model's
            fer_folder = fer.run({"kind": "folder", "path": str(folder)})
            fer_folder.update(found_faces(fer_folder.pop("boxes"), truth))
            out["fer_folder"] = fer_folder
        rec = Recognizer(model=name)
        start = time.perf_counter()
        seen = rec.run(folder)
        result["folder"] = {"seconds": time.perf_counter() - start}
        boxes: dict[str, list] = {f: [] for f in truth}
        for face in seen:
            boxes[Path(face.source).name].append(face.box)
        result["folder"].update(found_faces(boxes, truth))
        video_job = {"kind": "video", "path": str(video), "step": step}
        if name == args.models[0]:
            out["fer_video"] = fer.run({**video_job, "seconds": args.fer_video_seconds})
        rec = Recognizer(model=name, sample_fps=args.sample_fps)
        start = time.perf_counter()
        seen = rec.run(video)
        result["video"] = {
            "seconds": time.perf_counter() - start,
            "video_seconds": args.video_minutes * 60,
            "faces": len(seen),
        }
        out["models"][name] = result
        console.print(json.dumps(result, indent=1))
    fer.close()
    folder_result = out.pop("fer_folder")
    out["fer"] = {
        "crops": {"seconds": fer_best["crops"], "items": len(crops)},
        "frames": {"seconds": fer_best["frames"], "items": len(frames)},
        "folder": folder_result,
        "video": out.pop("fer_video"),
        "version": folder_result["version"],
    }
    console.print(json.dumps(out["fer"], indent=1))
    results = REPO / "benchmarks" / "results" / "speed.json"
    results.write_text(json.dumps(out, indent=1) + "\n")
    lines = doc_lines(out, args)
    console.print("\n".join(lines))
    if args.write:
        write_doc_section(lines)


def model_rows(out: dict, key: str, cells: Callable[[dict], str]) -> list[str]:
    """One table row per model and measured path of workload ``key``."""
    return [f"| `{name}` | {cells(row)} |" for name, r in out["models"].items() for row in r[key]]


RUNTIME_NAMES = {
    "torch-fp32": "PyTorch fp32",
    "torch-bf16": "PyTorch bf16",
    "onnx-fp32": "ONNX Runtime fp32",
    "onnx-int8": "ONNX Runtime int8 (static)",
}


def accuracy_lines(models: list[str]) -> list[str]:
    """The runtime record of the measured models (``scripts/measure_runtimes.py``) as a table:
    accuracy under each test-time augmentation measured and the one-thread crops/s recorded
    with it (– where a record lacks one)."""
    from ferlab.inference.runtimes import runtime_record

    records = {name: runtime_record(name) for name in models}
    records = {name: r for name, r in records.items() if r}
    if not records:
        return []
    lines = [
        "",
        "Accuracy and one-thread speed of each runtime (`scripts/measure_runtimes.py`, recorded "
        "in `src/ferlab/weights/runtimes.json`; FER2013 PublicTest, the validation split, under "
        "each model's labels; crops/s on one thread without TTA, one face per call and 256 per "
        "call, the runtimes taking turns in one run, best of its rounds). `load_model` takes "
        "int8 or bf16 by default only where every difference to PyTorch fp32 is within 0.1 point:",
        "",
        "| model | runtime | TTA none | Δ | ten-crop | Δ | crops/s, 1 per call | 256 per call "
        "| faces | measured on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, r in records.items():
        ref = r["accuracy"]["torch-fp32"]
        speed = r.get("speed", {})
        by_batch = speed.get("crops_per_s_by_batch", {})
        load = speed.get("load_average")
        where = f"{r['cpu']}, {r['measured']}" + (f", load average {load}" if load else "")
        for key, acc in r["accuracy"].items():
            cells = " | ".join(  # a model records only the TTAs measured for it (fast: none)
                f"{acc[t]:.2f} % | {acc[t] - ref[t]:+.2f}" if t in acc else "– | –"
                for t in ("none", "ten_crop")
            )
            rates = " | ".join(
                f"{by_batch[b][key]:,.0f}" if key in by_batch.get(b, {}) else "–"
                for b in ("1", "256")
            )
            lines.append(
                f"| `{name}` | {RUNTIME_NAMES.get(key, key)} | {cells} | {rates} | "
                f"{r['faces']:,} | {where} |"
            )
    return lines


def doc_lines(out: dict, args: argparse.Namespace) -> list[str]:
    fer = out["fer"]
    fer_crops = fer["crops"]["items"] / fer["crops"]["seconds"]
    fer_ms = 1000 * fer["frames"]["seconds"] / fer["frames"]["items"]
    fer_folder = fer["folder"]["faces"] / fer["folder"]["seconds"]
    fer_video = fer["video"]["video_seconds"] / fer["video"]["seconds"]
    lines = [
        SECTION,
        "",
        f"Script: `benchmarks/bench_speed.py --models {' '.join(args.models)} --crops "
        f"{args.crops} --frames {args.frames} --photos {args.photos} --video-minutes "
        f"{args.video_minutes:g} --fer-video-seconds {args.fer_video_seconds:g} --repeat "
        f"{args.repeat} --write` "
        f"(`fer` {fer['version']} in its own virtual environment, "
        f"`benchmarks/.venvs/fer`). Measured {out['date']} on {out['machine']}. Ratios are "
        "against `fer` in the same run, fer's and ferlab's runs taking turns. Best of "
        f"{args.repeat} runs for crops and frames (a run over 20 s once); folder and video once.",
        "",
        "| model | path | runtime | TTA | crops/s | × fer |",
        "|---|---|---|---|---:|---:|",
        f"| `fer` | one face per call | TF Lite | none | {fer_crops:,.0f} | 1.00× |",
    ]
    lines += model_rows(
        out,
        "crops",
        lambda row: (
            f"{row['path']} | {row['runtime']} | {row['tta']} | "
            f"{row['crops_s']:,.0f} | {row['crops_s'] / fer_crops:.2f}×"
        ),
    )
    lines += [
        "",
        f"Image mode ({args.frames} 640×480 frames, one FER2013 face of 100-220 px each, every "
        "frame an independent photo):",
        "",
        "| model | path | ms per frame | fer's / ferlab's |",
        "|---|---|---:|---:|",
        f"| `fer` | `detect_emotions(frame)` | {fer_ms:.1f} | 1.00× |",
    ]
    lines += model_rows(
        out,
        "frames",
        lambda row: f"{row['path']} | {row['ms_frame']:.1f} | {fer_ms / row['ms_frame']:.2f}×",
    )
    lines += [
        "",
        f"Folder of {args.photos:,} 640×480 JPEG photos (one FER2013 face each, decoding "
        "included; ferlab `Recognizer.run(folder)` as `ferlab predict` runs it, with its "
        "defaults) "
        f"and a synthetic {args.video_minutes:g}-minute 30 fps 1280×720 MPEG-4 video with two "
        f"faces, analysed at {args.sample_fps:g} frames per second of video (`ferlab video "
        f"--sample-fps {args.sample_fps:g}`; fer: every {round(VIDEO_FPS / args.sample_fps)}th "
        f"frame read and analysed, over the first {args.fer_video_seconds:g} s):",
        "",
        "| model | folder: faces found | other boxes | found faces/s | × fer | "
        "video: × real time | × fer |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| `fer` | {fer['folder']['faces']:,} | {fer['folder']['other_boxes']:,} | "
        f"{fer_folder:.1f} | 1.00× | {fer_video:.1f} | 1.00× |",
    ]
    for name, r in out["models"].items():
        folder = r["folder"]
        faces_s = folder["faces"] / folder["seconds"]
        realtime = r["video"]["video_seconds"] / r["video"]["seconds"]
        lines.append(
            f"| `{name}` | {folder['faces']:,} | {folder['other_boxes']:,} | {faces_s:.1f} | "
            f"{faces_s / fer_folder:.2f}× | {realtime:.1f} | {realtime / fer_video:.2f}× |"
        )
    from ferlab.inference import SHIPPED

    return lines + accuracy_lines(list(dict.fromkeys([*out["models"], *SHIPPED])))


if __name__ == "__main__":
    main()
