"""The Recognizer: faces → emotions in photos, folders, videos and a live camera.

One object wires detection (:mod:`~ferlab.recognize.detect`), alignment
(:mod:`~ferlab.recognize.align`), classification, tracking and smoothing
(:mod:`~ferlab.recognize.track`); one call, ``recognizer(source)``, runs them on any source and
returns tidy :class:`~ferlab.recognize.results.Results`.

The classifier is duck-typed: ``model`` is either a name or checkpoint path, handed to
``ferlab.load_model``, or **any object** with

* ``labels``: a sequence of class names, and
* ``predict_proba(faces)``: takes a uint8 array N×48×48 of grayscale face crops and returns an
  N×C array of probabilities (C = ``len(labels)``).

(an ``EmotionModel``, an ONNX session wrapper, a test double; a scikit-learn pipeline fits once
it takes those N×48×48 arrays and has ``labels``, e.g. as a thin wrapper).

Faces come from the detector, or from the caller: ``boxes=`` gives the face boxes of one's own
detector, and ``faces="whole"`` takes each image as one face crop (``"auto"``, the default,
does so for images no larger than :data:`CROP_MAX` pixels a side where the detector finds no
face, such as FER2013's 48×48 crops; ``"detect"`` keeps only what the detector finds).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np

from ferlab.errors import DataError, FerlabError, UnknownNameError
from ferlab.inference import EmotionModel, load_model, resolve_tta
from ferlab.inference.runtimes import apply_threads, thread_count
from ferlab.recognize.align import crop_faces, whole_face
from ferlab.recognize.detect import Detection, FaceDetector, create_detector, iou
from ferlab.recognize.draw import annotate
from ferlab.recognize.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    array_to_bgr,
    folder_images,
    load_image,
)
from ferlab.recognize.results import FIXED_COLUMNS, Face, FrameResult, Results
from ferlab.recognize.track import IoUTracker
from ferlab.recognize.video import (
    LatestFrameGrabber,
    VideoWriter,
    has_display,
    open_camera,
    open_video,
    prefetched,
    read_frames,
)

__all__ = [
    "CROP_MAX",
    "FACE_MODES",
    "Box",
    "EmotionClassifier",
    "FaceFinder",
    "Found",
    "Recognizer",
    "Source",
    "check_boxes",
    "image_runs",
    "load_classifier",
    "progress_bar",
]

#: Largest side (pixels) of an image that ``faces="auto"`` takes as one face crop when the
#: detector finds no face in it: FER2013's crops are 48×48, and the detector misses such faces
#: (its smallest face is ``min_face`` = 48 px, with a margin around it).
CROP_MAX = 128
#: Where faces come from: ``auto`` (the detector's faces; a small image where it finds none is
#: one face), ``detect`` (the detector's faces only) or ``whole`` (every image is one face).
FACE_MODES = ("auto", "detect", "whole")

#: A face box ``(x, y, w, h)`` in pixels.
Box = tuple[int, int, int, int]

#: Faces classified in one call when images are processed in parallel: large enough for the
#: runtimes' batched speed, small enough that results keep streaming.
BATCH_FACES = 256

#: Frame rate written into annotated camera recordings: cameras give no rate, and processing
#: with the newest-frame grabber runs at whatever speed the machine manages.
_CAMERA_FPS = 15.0

#: What :meth:`Recognizer.run` accepts: a path (image, folder or video), an image array, a
#: camera index, or a list of those.
Source = str | Path | np.ndarray | int | Sequence[Any]


@runtime_checkable
class EmotionClassifier(Protocol):
    """The classifier interface the recognizer needs (see the module docstring)."""

    labels: Sequence[str]

    def predict_proba(self, faces: np.ndarray) -> np.ndarray: ...


def load_classifier(
    name: str,
    device: str = "auto",
    runtime: str = "auto",
    tta: str | None = None,
    threads: int | None = None,
) -> EmotionClassifier:
    """Load a classifier by model name, checkpoint or ``.onnx`` path with ``ferlab.load_model``.

    ``runtime``: ``torch``, ``onnx`` (ONNX Runtime) or ``auto`` (the fastest, see
    ``ferlab.load_model``); ``tta``: the test-time augmentation (``None``: the model's own);
    ``threads``: the runtime's intra-op threads.
    """
    return load_model(name, device=device, runtime=runtime, tta=tta, threads=threads)


def check_boxes(boxes: Any, shape: tuple[int, ...], where: str = "boxes") -> list[Box]:
    """Face boxes ``(x, y, w, h)`` as integers, each with a positive size and overlapping the
    image of ``shape`` (H, W); a :class:`~ferlab.errors.DataError` naming the bad one."""
    out = []
    for i, box in enumerate(boxes):
        try:
            x, y, w, h = (int(v) for v in box)
        except (TypeError, ValueError):
            raise DataError(
                f"box {i} is {box!r}, not four integers x, y, w, h", field=where
            ) from None
        if w < 1 or h < 1:
            raise DataError(f"box {i} ({x}, {y}, {w}, {h}) has no area", field=where)
        if x >= shape[1] or y >= shape[0] or x + w <= 0 or y + h <= 0:
            raise DataError(
                f"box {i} ({x}, {y}, {w}, {h}) lies outside the {shape[1]}×{shape[0]} image",
                field=where,
            )
        out.append((x, y, w, h))
    return out


@dataclass(frozen=True)
class Found:
    """The faces of one image before classification: detections, aligned crops, rolls."""

    detections: list[Detection]
    crops: np.ndarray
    """uint8 N×48×48, framed like FER2013."""
    rolls: list[float | None]


@dataclass(frozen=True)
class FaceFinder:
    """Where the faces of an image are, cropped and aligned: the half of recognition that
    needs no classifier (detection or given boxes, the ``faces`` mode, alignment)."""

    detector: FaceDetector
    faces: str = "auto"
    align: bool = True

    def find(self, gray: np.ndarray, boxes: Sequence[Box] | None = None) -> Found:
        """The faces of a still grayscale image: the given ``boxes``, else as ``faces`` says."""
        if boxes is not None:
            given = [Detection(b, None, "given") for b in check_boxes(boxes, gray.shape)]
            return self.crop(gray, given)
        if self.faces == "whole":
            return self.whole(gray)
        detections = self.detector.detect(gray)
        if not detections and self.faces == "auto" and max(gray.shape) <= CROP_MAX:
            return self.whole(gray)
        return self.crop(gray, detections)

    def crop(self, gray: np.ndarray, detections: list[Detection]) -> Found:
        """The aligned crops of the given detections."""
        crops, rolls = crop_faces(gray, [d.box for d in detections], self.align)
        return Found(detections, crops, rolls)

    @staticmethod
    def whole(gray: np.ndarray) -> Found:
        """The whole image as one face (a face crop already framed like FER2013)."""
        box = (0, 0, gray.shape[1], gray.shape[0])
        return Found([Detection(box, None, "whole")], whole_face(gray)[None], [None])


class Recognizer:
    """Detect faces, align them and classify their emotion, in any kind of source.

    Args:
        detector: a name from :data:`~ferlab.recognize.detect.DETECTORS` (``"haar"``,
            ``"haar-profile"``) or an object with ``detect(gray)`` and ``detect_near(gray,
            boxes)``.
        model: a model name or checkpoint path for ``ferlab.load_model`` (``"default"`` is the
            shipped FER2013 model), or any object with ``labels`` and ``predict_proba(faces)``.
        device: where a model loaded by name runs (``"auto"``, ``"cpu"``, ``"cuda"``); ignored
            for classifier objects.
        runtime: what runs a model loaded by name: ``"torch"``, ``"onnx"`` (ONNX Runtime; a
            checkpoint is exported on the fly unless an ``.onnx`` file of the same name lies
            beside it) or ``"auto"`` (the fastest available, see ``ferlab.load_model``); ignored
            for classifier objects.
        tta: test-time augmentation of a model loaded by name: ``"none"``, ``"flip"`` or
            ``"ten_crop"`` (10 network inputs per face); ``None`` takes the one the model
            records (ten-crop for the shipped models) for photos and
            :data:`~ferlab.inference.STREAM_TTA` for tracked video and camera frames; ignored
            for classifier objects.
        align: level the eyes before cropping (see :func:`~ferlab.recognize.align.crop_faces`).
        min_face: smallest face side to detect, in pixels of the original image.
        detect_size: longest side of the downscaled copy that detection scans; faces smaller
            than about ``detect_size / 26`` of it are missed before ``min_face`` matters.
        faces: where faces come from, one of :data:`FACE_MODES` (see the module docstring).
        smoothing: weight α of the newest frame in the per-track moving average of
            probabilities (1 = no smoothing); videos and cameras only.
        every_n: process every n-th video frame.
        sample_fps: process this many frames per second of video time instead (the frame
            nearest each ``k / sample_fps`` s); the others are skipped without being converted.
        max_age: processed frames a track outlives its last detection.
        full_scan_every: in videos, scan the whole frame for new faces every this many
            processed frames; in between, only the neighbourhoods of tracked faces are searched,
            which is several times cheaper. 1 scans every frame.
        threads: CPU threads (default: ``OMP_NUM_THREADS`` when set, else every core): the
            model runtime's intra-op threads, and the threads that decode and search folders
            and lists of images in parallel (OpenCV's own threads are then 1 per worker, so
            the libraries share the cores instead of each taking all of them).

    Call it (or :meth:`run`) on a source; :meth:`live` streams a camera.
    """

    def __init__(
        self,
        detector: str | FaceDetector = "haar",
        model: str | EmotionClassifier = "default",
        device: str = "auto",
        *,
        align: bool = True,
        min_face: int = 48,
        detect_size: int = 640,
        smoothing: float = 0.5,
        every_n: int = 1,
        max_age: int = 10,
        full_scan_every: int = 5,
        runtime: str = "auto",
        tta: str | None = None,
        faces: str = "auto",
        threads: int | None = None,
        sample_fps: float | None = None,
    ) -> None:
        if faces not in FACE_MODES:
            raise UnknownNameError("face mode", faces, list(FACE_MODES))
        stream_tta = resolve_tta(tta, stream=True)  # validates a chosen one before loading
        self.faces = faces
        self.threads = thread_count(threads)
        apply_threads(self.threads)
        self.detector = create_detector(detector, min_face=min_face, detect_size=detect_size)
        if isinstance(model, str | Path):
            model = load_classifier(
                str(model), device=device, runtime=runtime, tta=tta, threads=self.threads
            )
        if not isinstance(model, EmotionClassifier):
            raise FerlabError(
                "model must be a model name, a checkpoint path or an object with .labels and "
                f".predict_proba(faces); got {type(model).__name__}"
            )
        self.classifier = model
        #: The classifier of tracked video and camera frames: a ferlab model with the stream
        #: TTA (see ``tta``), any other classifier as it is.
        self.stream_classifier = (
            model.with_tta(stream_tta) if isinstance(model, EmotionModel) else model
        )
        self.labels = tuple(str(label) for label in model.labels)
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise FerlabError(f"the classifier's labels must be distinct names, got {self.labels}")
        clash = set(self.labels) & {*FIXED_COLUMNS, "label"}
        if clash:
            raise FerlabError(f"the classifier's labels clash with result columns: {sorted(clash)}")
        if every_n < 1 or full_scan_every < 1:
            raise FerlabError(
                f"every_n and full_scan_every must be >= 1, got {every_n} and {full_scan_every}"
            )
        if sample_fps is not None and not (sample_fps > 0 and every_n == 1):
            raise FerlabError(
                f"sample_fps must be > 0 and every_n 1 with it, got {sample_fps} and {every_n}"
            )
        self.sample_fps = sample_fps
        IoUTracker(alpha=smoothing, max_age=max_age)  # validates the tracking settings early
        self.align = align
        self.smoothing = smoothing
        self.every_n = every_n
        self.max_age = max_age
        self.full_scan_every = full_scan_every

    def __repr__(self) -> str:
        return (
            f"Recognizer(detector={self.detector!r}, model={type(self.classifier).__name__}, "
            f"labels={self.labels})"
        )

    @property
    def finder(self) -> FaceFinder:
        """Detection and alignment with this recognizer's settings (its ``detector``)."""
        return FaceFinder(self.detector, self.faces, self.align)

    # ------------------------------------------------------------------ one frame

    def classify(self, crops: np.ndarray, stream: bool = False) -> np.ndarray:
        """Probabilities N×C of uint8 face crops N×48×48, checked (one finite row per face);
        ``stream`` uses the classifier of tracked video and camera frames."""
        classifier = self.stream_classifier if stream else self.classifier
        probs = np.asarray(classifier.predict_proba(crops), dtype=np.float32)
        if probs.shape != (len(crops), len(self.labels)) or not np.isfinite(probs).all():
            raise FerlabError(
                f"the classifier returned {probs.shape} values for {len(crops)} faces and "
                f"{len(self.labels)} labels (expected one finite row per face)"
            )
        return probs

    def process_frame(
        self,
        image: np.ndarray,
        *,
        source: str = "<array>",
        frame: int = 0,
        time_s: float = 0.0,
        tracker: IoUTracker | None = None,
        full_scan: bool = True,
        boxes: Sequence[Box] | None = None,
    ) -> list[Face]:
        """Faces in one BGR uint8 image; with a tracker, ids are track ids and probabilities are
        smoothed, and ``full_scan=False`` searches only around the tracked faces (falling back to
        the whole frame when one of them is not found there).

        ``boxes``: the faces' boxes ``(x, y, w, h)`` from the caller's own detector; detection
        is skipped and the faces' ``score`` is ``None``. Otherwise the recognizer's ``faces``
        mode decides (see the module docstring).
        """
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if tracker is None:
            found = self.finder.find(gray, boxes)
        else:
            found = self.finder.crop(gray, self._detect_tracked(gray, tracker, full_scan, boxes))
        if not found.detections:
            if tracker is not None:
                tracker.update([], np.zeros((0, len(self.labels)), np.float32), frame)
            return []
        probs = self.classify(found.crops, stream=tracker is not None)
        return self.describe(
            found, probs, source=source, frame=frame, time_s=time_s, tracker=tracker
        )

    def _detect_tracked(
        self,
        gray: np.ndarray,
        tracker: IoUTracker,
        full_scan: bool,
        boxes: Sequence[Box] | None,
    ) -> list[Detection]:
        """A video frame's detections: given boxes, the tracked faces' neighbourhoods, or the
        whole frame."""
        if boxes is not None:
            return [Detection(b, None, "given") for b in check_boxes(boxes, gray.shape)]
        if not full_scan:
            detections = self.detector.detect_near(gray, tracker.live_boxes())
            # A face seen in the last processed frame and not found near its position (turned,
            # moved fast, or a miss of the small search): scan the whole frame rather than drop
            # it. One already missing waits for the next scheduled scan: a face the detector
            # keeps missing would otherwise cost a whole-frame scan on every frame.
            seen = [t.box for t in tracker.tracks if t.misses == 0]
            if all(any(iou(t, d.box) >= 0.3 for d in detections) for t in seen):
                return detections
        return self.detector.detect(gray)

    def describe(
        self,
        found: Found,
        probs: np.ndarray,
        *,
        source: str,
        frame: int = 0,
        time_s: float = 0.0,
        tracker: IoUTracker | None = None,
    ) -> list[Face]:
        """One :class:`Face` per found face, given its probabilities (from :meth:`classify`);
        with a tracker, tracked and smoothed."""
        detections = found.detections
        if tracker is not None:
            tracks = tracker.update([d.box for d in detections], probs, frame)
            ids = [t.id for t in tracks]
            probs = np.stack([t.probs for t in tracks])
        else:
            ids = list(range(len(detections)))
        faces = []
        for det, roll, face_id, p in zip(detections, found.rolls, ids, probs, strict=True):
            scores = {label: float(v) for label, v in zip(self.labels, p, strict=True)}
            faces.append(
                Face(
                    source=source,
                    frame=frame,
                    time=time_s,
                    face_id=face_id,
                    box=tuple(int(v) for v in det.box),
                    score=det.score,
                    roll=roll,
                    scores=scores,
                    label=self.labels[int(np.argmax(p))],
                )
            )
        return faces

    # ------------------------------------------------------------------ sources

    def iter_frames(
        self,
        source: Source,
        *,
        color: str = "bgr",
        every_n: int | None = None,
        errors: str = "raise",
        progress: bool = False,
        max_frames: int | None = None,
        boxes: Sequence[Box] | Mapping[str, Sequence[Box]] | None = None,
    ) -> Iterator[FrameResult]:
        """Yield one :class:`FrameResult` per image or processed video frame of ``source``.

        Args:
            source: an image path, a folder (its images, recursively, sorted), a video path, a
                numpy image array, a camera index, or a list of these.
            color: channel order of array sources, ``"bgr"`` (OpenCV, the default) or ``"rgb"``.
            every_n: process every n-th video frame (default: the recognizer's ``every_n``).
            errors: ``"raise"`` stops at the first unreadable source with a
                :class:`~ferlab.errors.DataError`; ``"collect"`` yields a ``FrameResult`` with
                ``error`` set and goes on with the next source.
            progress: draw rich progress bars (on stderr) for folders and videos.
            max_frames: stop a video or camera after this many processed frames.
            boxes: the faces of one image source as boxes ``(x, y, w, h)`` (detection is
                skipped), or a mapping from image path (as in ``source``) to its boxes; images
                the mapping lacks have no face.
        """
        if errors not in ("raise", "collect"):
            raise FerlabError(f"errors must be 'raise' or 'collect', got {errors!r}")
        every = self.every_n if every_n is None else every_n
        if every < 1:
            raise FerlabError(f"every_n must be >= 1, got {every}")
        if isinstance(source, list | tuple):
            for run in image_runs(source):
                if isinstance(run, list):  # image files in a row: decoded and searched at once
                    with progress_bar("images", len(run), progress and len(run) > 1) as advance:
                        yield from self._iter_images(run, errors, boxes, advance)
                    continue
                yield from self.iter_frames(
                    run,
                    color=color,
                    every_n=every,
                    errors=errors,
                    progress=progress,
                    max_frames=max_frames,
                    boxes=boxes,
                )
            return
        try:
            yield from self._iter_one(source, color, every, progress, max_frames, errors, boxes)
        except DataError as exc:
            if errors == "raise":
                raise
            yield FrameResult(_source_name(source), 0, 0.0, None, error=str(exc))

    def _iter_one(
        self,
        source: Any,
        color: str,
        every: int,
        progress: bool,
        max_frames: int | None,
        errors: str,
        boxes: Any = None,
    ) -> Iterator[FrameResult]:
        if isinstance(source, np.ndarray):
            image = array_to_bgr(source, color)
            given = _boxes_of(boxes, "<array>")
            yield FrameResult("<array>", 0, 0.0, image, self.process_frame(image, boxes=given))
            return
        if isinstance(source, bool) or not isinstance(source, int | str | Path):
            raise DataError(
                f"cannot read a {type(source).__name__}; give a path, a numpy image, a camera "
                "index or a list of them",
                path=str(source)[:80],
            )
        if _is_camera(source):
            yield from self._iter_camera(int(source), max_frames)
            return
        path = Path(source)
        if path.is_dir():
            files = folder_images(path)
            with progress_bar(f"images in {path.name}", len(files), progress) as advance:
                yield from self._iter_images(files, errors, boxes, advance)
        elif path.suffix.lower() in VIDEO_EXTENSIONS:
            if boxes is not None:
                raise DataError("face boxes are for images; videos are searched", path=path)
            yield from self.iter_video(
                path, every_n=every, progress=progress, max_frames=max_frames
            )
        else:
            image = load_image(path)
            faces = self.process_frame(image, source=str(path), boxes=_boxes_of(boxes, str(path)))
            yield FrameResult(str(path), 0, 0.0, image, faces)

    def _image_workers(self) -> int:
        """Threads that decode and search images at once: one per core (or ``threads``); one
        for a detector that is not safe to share between threads."""
        if not getattr(self.detector, "thread_safe", False):
            return 1
        return self.threads or os.cpu_count() or 1

    def _iter_images(
        self, files: list[Path], errors: str, boxes: Any, advance: Callable[..., None]
    ) -> Iterator[FrameResult]:
        """Image files in order: one at a time with one worker, else :meth:`_iter_parallel`."""
        workers = self._image_workers()
        if workers > 1 and len(files) > 1:
            yield from self._iter_parallel(files, workers, errors, boxes, advance)
            return
        for file in files:
            yield from self.iter_frames(file, errors=errors, boxes=boxes)
            advance()

    def _iter_parallel(
        self,
        files: list[Path],
        workers: int,
        errors: str,
        boxes: Any,
        advance: Callable[..., None],
    ) -> Iterator[FrameResult]:
        """Image files decoded and searched on ``workers`` threads (OpenCV releases the GIL),
        their faces classified together, up to :data:`BATCH_FACES` per call; results come in
        the files' order, as soon as the classifier is not waiting for more faces."""
        finder = self.finder

        def find(path: Path) -> tuple[np.ndarray, Found]:
            image = load_image(path)
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            return image, finder.find(gray, _boxes_of(boxes, str(path)))

        pool = ThreadPoolExecutor(workers, thread_name_prefix="ferlab-images")
        queue: deque[tuple[Path, Future]] = deque()
        rest = iter(files)
        found: list[tuple[Path, Any]] = []  # in order, waiting for the classifier
        try:
            with _opencv_threads(1):  # the workers are the parallelism
                for path in islice(rest, 2 * workers):
                    queue.append((path, pool.submit(find, path)))
                faces = 0
                while queue:
                    path, future = queue.popleft()
                    nxt = next(rest, None)
                    if nxt is not None:
                        queue.append((nxt, pool.submit(find, nxt)))
                    try:
                        found.append((path, future.result()))
                        faces += len(found[-1][1][1].detections)
                    except DataError as exc:
                        found.append((path, exc))
                    if faces >= BATCH_FACES or not queue or not queue[0][1].done():
                        yield from self._classify_found(found, errors, advance)
                        found, faces = [], 0
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _classify_found(
        self, found: list[tuple[Path, Any]], errors: str, advance: Callable[..., None]
    ) -> Iterator[FrameResult]:
        """Classify the faces of several images in one call; their results in order."""
        crops = [
            item[1].crops
            for _, item in found
            if not isinstance(item, DataError) and item[1].detections
        ]
        probs = self.classify(np.concatenate(crops)) if crops else None
        at = 0
        for path, item in found:
            if isinstance(item, DataError):
                if errors == "raise":
                    raise item
                yield FrameResult(str(path), 0, 0.0, None, error=str(item))
            else:
                image, one = item
                n = len(one.detections)
                faces = self.describe(one, probs[at : at + n], source=str(path)) if n else []
                at += n
                yield FrameResult(str(path), 0, 0.0, image, faces)
            advance()

    def _track(
        self,
        frames: Iterable[tuple[int, float, np.ndarray]],
        source: str,
        fps: float | None,
        first_id: int = 0,
    ) -> Iterator[FrameResult]:
        """Process ``(index, seconds, frame)`` items as one video: one tracker throughout, the
        whole frame scanned every ``full_scan_every`` processed frames (and whenever no face is
        tracked), only the tracked faces' neighbourhoods in between."""
        tracker = IoUTracker(alpha=self.smoothing, max_age=self.max_age, first_id=first_id)
        for processed, (index, seconds, frame) in enumerate(frames):
            full = processed % self.full_scan_every == 0 or not tracker.tracks
            faces = self.process_frame(
                frame, source=source, frame=index, time_s=seconds, tracker=tracker, full_scan=full
            )
            yield FrameResult(source, index, seconds, frame, faces, fps=fps)

    def track(
        self,
        frames: Iterable[np.ndarray],
        *,
        fps: float = 30.0,
        source: str = "<frames>",
        color: str = "bgr",
    ) -> Iterator[FrameResult]:
        """Process a sequence of image arrays as consecutive video frames (tracked, smoothed).

        For frames from a source ferlab does not open itself (another capture library, a
        network stream); frame ``i`` gets the time ``i / fps``.
        """
        items = (
            (i, i / fps, array_to_bgr(frame, color, name=f"{source}[{i}]"))
            for i, frame in enumerate(frames)
        )
        return self._track(items, source, fps)

    def iter_video(
        self,
        path: str | Path,
        *,
        start: int = 0,
        stop: int | None = None,
        every_n: int | None = None,
        first_id: int = 0,
        progress: bool = False,
        max_frames: int | None = None,
    ) -> Iterator[FrameResult]:
        """The processed frames of one video file, tracked, from frame ``start`` up to ``stop``
        (exclusive; the end by default).

        A range is tracked on its own (see docs/scale.md): its tracks start afresh, with ids
        from ``first_id``, and frames are processed where ``index % every_n == 0`` (with the
        recognizer's ``sample_fps``: the frames nearest each ``k / sample_fps`` s), as in a run
        over the whole video. With more than one thread, the next frames are decoded while
        earlier ones are analysed.
        """
        path = Path(path)
        every = self.every_n if every_n is None else every_n
        cap, fps, count = open_video(path)
        processed, done = 0, start
        total = max(0, (stop if stop is not None else count) - start) or None
        frames = read_frames(cap, fps, every, start, stop, self.sample_fps)
        if (self.threads or os.cpu_count() or 1) > 1:
            frames = prefetched(frames)  # decoding overlaps the analysis
        try:
            with progress_bar(f"frames of {path.name}", total, progress) as advance:
                for fr in self._track(islice(frames, max_frames), str(path), fps, first_id):
                    yield fr
                    advance(fr.frame + 1 - done)
                    done = fr.frame + 1
                    processed += 1
            if processed == 0 and start == 0:
                raise DataError("cannot open video (no frame could be decoded)", path=path)
        finally:
            frames.close()  # the reading thread stops before the capture is released
            cap.release()

    def _iter_camera(
        self, camera: int | str, max_frames: int | None, timeout: float = 5.0
    ) -> Iterator[FrameResult]:
        with LatestFrameGrabber(open_camera(camera), timeout=timeout) as grabber:
            frames = islice(iter(grabber.next, None), max_frames)
            yield from self._track(frames, f"camera:{camera}", _CAMERA_FPS)

    # ------------------------------------------------------------------ public calls

    def run(
        self,
        source: Source,
        *,
        color: str = "bgr",
        every_n: int | None = None,
        errors: str = "raise",
        progress: bool = False,
        max_frames: int | None = None,
        video_out: str | Path | None = None,
        boxes: Sequence[Box] | Mapping[str, Sequence[Box]] | None = None,
    ) -> Results:
        """Recognise every face in ``source``; see :meth:`iter_frames` for the arguments.

        ``video_out`` writes the processed frames of a video or camera source, annotated, to an
        MP4 file. A camera runs until ``max_frames`` frames or Ctrl-C, then returns what it saw.
        """
        if video_out is not None and not _is_stream(source):
            raise FerlabError(
                "video_out needs one video file or camera as the source, got "
                f"{_source_name(source)}"
            )
        results = Results(self.labels)
        frames = self.iter_frames(
            source,
            color=color,
            every_n=every_n,
            errors=errors,
            progress=progress,
            max_frames=max_frames,
            boxes=boxes,
        )
        every = self.every_n if every_n is None else every_n
        writer = None
        try:
            for fr in frames:
                results.add(fr)
                if video_out is not None and fr.image is not None:
                    if writer is None:
                        writer = VideoWriter(video_out, self.output_fps(fr.fps, every))
                    writer.write(annotate(fr.image, fr.faces, show_id=True))
        except KeyboardInterrupt:
            if not _is_camera(source):
                raise
        finally:
            frames.close()
            if writer is not None:
                writer.close()
        return results

    __call__ = run

    def output_fps(self, fps: float | None, every_n: int | None = None) -> float:
        """Frame rate of an annotated video of the processed frames of a ``fps`` source, so
        that it plays at the original speed."""
        fps = fps or _CAMERA_FPS
        if self.sample_fps is not None:
            return min(fps, self.sample_fps)
        return fps / (self.every_n if every_n is None else every_n)

    def live(
        self,
        camera: int | str = 0,
        *,
        display: bool | None = None,
        max_frames: int | None = None,
        timeout: float = 5.0,
    ) -> Iterator[FrameResult]:
        """Stream a camera: yield each processed frame's faces, always from the newest frame.

        With ``display`` (default: when :func:`~ferlab.recognize.video.has_display`), the
        annotated frames are also shown in an OpenCV window; ``q`` or Esc ends the stream.
        ``camera`` may also be a video path or stream URL, which is read like a camera.
        """
        show = has_display() if display is None else display
        frames = self._iter_camera(camera, max_frames, timeout=timeout)
        try:
            for fr in frames:
                if show:
                    try:
                        cv2.imshow("ferlab live", annotate(fr.image, fr.faces, show_id=True))
                        key = cv2.waitKey(1) & 0xFF
                    except cv2.error:
                        raise FerlabError(
                            "this OpenCV build cannot open windows (opencv-python-headless); "
                            "stream JSON lines instead (display=False / --json)"
                        ) from None
                    if key in (ord("q"), 27):
                        return
                yield fr
        finally:
            frames.close()
            if show:
                cv2.destroyAllWindows()


def _boxes_of(boxes: Any, name: str) -> Sequence[Box] | None:
    """The given boxes of one image: all of them, or its entry of a mapping by path (as given,
    or resolved)."""
    if boxes is None or not isinstance(boxes, Mapping):
        return boxes
    if name in boxes:
        return boxes[name]
    return boxes.get(str(Path(name).resolve()), ())


def image_runs(sources: Sequence[Any]) -> Iterator[Any]:
    """The sources in order, with each run of image paths gathered into one list."""
    run: list[Path] = []
    for source in sources:
        path = Path(source) if isinstance(source, str | Path) else None
        if path is not None and path.suffix.lower() in IMAGE_EXTENSIONS and not path.is_dir():
            run.append(path)
            continue
        if run:
            yield run
            run = []
        yield source
    if run:
        yield run


@contextmanager
def _opencv_threads(n: int) -> Iterator[None]:
    """OpenCV's own thread count set to ``n`` for a while (it is process-wide)."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(n)
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _is_camera(source: Any) -> bool:
    if isinstance(source, bool):
        return False
    if isinstance(source, int):
        return True
    return isinstance(source, str) and source.isdigit() and not Path(source).exists()


def _is_stream(source: Any) -> bool:
    """A single video file or camera (the sources an annotated video can be written for)."""
    if _is_camera(source):
        return True
    return isinstance(source, str | Path) and Path(source).suffix.lower() in VIDEO_EXTENSIONS


def _source_name(source: Any) -> str:
    if isinstance(source, np.ndarray):
        return "<array>"
    if _is_camera(source):
        return f"camera:{source}"
    return str(source)


@contextmanager
def progress_bar(description: str, total: int | None, enabled: bool) -> Iterator[Any]:
    """Yield ``advance(n=1)``: a rich bar on stderr (so JSON on stdout stays clean), or a no-op."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.update(task, advance=n)
