"""Face detection with the Viola–Jones Haar cascades that ship inside OpenCV.

Why Haar cascades: they come with ``opencv-python-headless<5`` (``cv2.data.haarcascades``), so
detection works offline with no extra download, and FER2013 itself was framed with them — see
:mod:`ferlab.recognize.align` for the measurement. ``docs/recognize.md`` records why no stronger
detector (MediaPipe's BlazeFace, OpenCV's YuNet) is offered.

Tuning (measured on 300 composites of FER2013 Training faces, rows from 1000 on, pasted at
60–240 px onto 640×480 scikit-image backgrounds, and on a real portrait, scikit-image's
``astronaut``; ``benchmarks/bench_recognize.py --accuracy`` reports the same measures on
held-out PrivateTest faces):

* **Cascade** ``haarcascade_frontalface_default.xml``: the best recall of the three frontal
  cascades and the box FER2013 crops were cut from.
* **scale factor 1.1**, the OpenCV default: 1.2 halves the time but loses about 5 points of recall.
* **min neighbours 3 plus a score floor of 2.0** instead of OpenCV's usual 5 neighbours: the
  cascade's own confidence (below) separates false positives better than the neighbour count.
  Same recall on the composites (70.7 % against 70.0 %, false positives 0.010 and 0.003 per
  image), but on 60 frames of the astronaut portrait panning across a 640×480 frame, 5
  neighbours report a false face on her shoulder in 22 frames and the tuned setting in none
  (that box scores 1.1–1.9; a floor of 1.0 would find 73.7 % of the composites but keep it).
* **No histogram equalisation**: it lowered recall by 15 points on the tuning set.
* **Minimum face 48 px** (the resolution of the classifier's input; smaller faces carry less
  information than the model was trained on). The image is downscaled so that this minimum maps
  to the cascade's 24 px window, and never processed at more than ``detect_size`` (640) pixels on
  its longest side: a 640×480 frame is scanned at 320×240, a 12-megapixel photo at 640×480.
  Boxes are mapped back to original pixel coordinates.

Score: ``detectMultiScale3(outputRejectLevels=True)`` returns for every detection the weighted
vote of the cascade's last stage (its *level weight*). Real faces score about 2–8; the weak false
positives that three neighbours let through mostly score below 2. The score is in the cascade's
own units, so frontal and profile scores are not comparable with each other.

Profile faces (detector ``"haar-profile"``): ``haarcascade_profileface.xml`` finds faces turned
to one side; running it on the mirrored image as well finds the other side. Candidates of all
three passes are merged by non-maximum suppression, frontal boxes first (their framing matches
FER2013), so a face seen by several passes is reported once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ferlab.errors import FerlabError, UnknownNameError

__all__ = [
    "DETECTORS",
    "Detection",
    "FaceDetector",
    "HaarDetector",
    "create_detector",
    "nms",
]

#: Side of the training window of OpenCV's frontal cascade, in pixels.
_WINDOW = 24

#: Detector names and what they run; shown by ``ferlab predict --help`` and docs/recognize.md.
DETECTORS: dict[str, str] = {
    "haar": "OpenCV Haar cascade, frontal faces (fastest; the framing FER2013 was cut with)",
    "haar-profile": "frontal cascade + profile cascade on the image and its mirror, merged by NMS",
}


@dataclass(frozen=True)
class Detection:
    """One face found in an image.

    Attributes:
        box: ``(x, y, w, h)`` in pixel coordinates of the image passed to ``detect``.
        score: the cascade's level weight (see the module docstring); higher is more face-like;
            ``None`` for faces not found by a detector.
        kind: which pass found it: ``"frontal"``, ``"profile"`` or ``"profile-mirrored"``;
            ``"given"`` (a box from the caller) or ``"whole"`` (the whole image is the face).
    """

    box: tuple[int, int, int, int]
    score: float | None
    kind: str = "frontal"


@runtime_checkable
class FaceDetector(Protocol):
    """What the recognizer needs from a detector: any object with these two methods works."""

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """All faces in a uint8 grayscale image."""
        ...

    def detect_near(
        self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]]
    ) -> list[Detection]:
        """Faces close to the given boxes (previous positions of tracked faces) only."""
        ...


def load_cascade(filename: str) -> cv2.CascadeClassifier:
    """One of OpenCV's bundled Haar cascades, loaded anew."""
    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    if folder is None:
        raise FerlabError(
            "this OpenCV build has no Haar cascades (cv2.data.haarcascades); install "
            "opencv-python-headless<5"
        )
    cascade = cv2.CascadeClassifier(folder + filename)
    if cascade.empty():
        raise FerlabError(f"cannot load the OpenCV cascade {folder + filename}")
    return cascade


_per_thread = threading.local()
_FRONTAL = "haarcascade_frontalface_default.xml"
_PROFILE = "haarcascade_profileface.xml"


def thread_cascade(filename: str) -> cv2.CascadeClassifier:
    """One of OpenCV's bundled Haar cascades, loaded once per thread: a cascade is not safe to
    run from two threads at once, and detection and alignment run on any thread (folder
    workers, the service's workers)."""
    loaded = _per_thread.__dict__.setdefault("cascades", {})
    if filename not in loaded:
        loaded[filename] = load_cascade(filename)
    return loaded[filename]


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _overlaps(a: tuple[int, ...], b: tuple[int, ...], threshold: float) -> bool:
    # Besides IoU, a box lying mostly inside another is the same face at another scale.
    ix = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    iy = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if ix <= 0 or iy <= 0:
        return False
    inter = ix * iy
    smaller = min(a[2] * a[3], b[2] * b[3])
    return iou(a, b) > threshold or inter > 0.7 * smaller


def nms(detections: list[Detection], iou_threshold: float = 0.3) -> list[Detection]:
    """Greedy non-maximum suppression: frontal detections first, then by score.

    Frontal boxes win over profile boxes of the same face whatever the scores, because the two
    cascades score on different scales and the frontal box matches the FER2013 framing.
    """
    order = sorted(detections, key=lambda d: (d.kind != "frontal", -d.score))
    kept: list[Detection] = []
    for det in order:
        if not any(_overlaps(det.box, k.box, iou_threshold) for k in kept):
            kept.append(det)
    return kept


class HaarDetector:
    """OpenCV Haar-cascade face detector with the tuned settings of the module docstring.

    Safe to share between threads (``thread_safe``): each thread scans with its own cascades.

    Args:
        profile: also run the profile cascade on the image and on its mirror.
        scale_factor: image pyramid step of ``detectMultiScale``.
        min_neighbors: overlapping raw detections needed to accept a face.
        min_score: level-weight floor; detections scoring below it are dropped.
        min_face: smallest face side to find, in original pixels.
        detect_size: longest side of the copy that is scanned (larger images are downscaled).
        nms_iou: IoU above which two boxes count as the same face.
    """

    def __init__(
        self,
        *,
        profile: bool = False,
        scale_factor: float = 1.1,
        min_neighbors: int = 3,
        min_score: float = 2.0,
        min_face: int = 48,
        detect_size: int = 640,
        nms_iou: float = 0.3,
    ) -> None:
        if scale_factor <= 1.0:
            raise FerlabError(f"scale_factor must be > 1, got {scale_factor}")
        if min_face < 8 or detect_size < 64:
            raise FerlabError(
                f"min_face must be >= 8 and detect_size >= 64 pixels; got {min_face} and "
                f"{detect_size}"
            )
        self.profile = profile
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_score = min_score
        self.min_face = min_face
        self.detect_size = detect_size
        self.nms_iou = nms_iou
        self.thread_safe = True
        # Loaded here so a missing cascade fails early; each thread scans with its own copy.
        thread_cascade(_FRONTAL)
        if profile:
            thread_cascade(_PROFILE)

    def __repr__(self) -> str:
        return (
            f"HaarDetector(profile={self.profile}, scale_factor={self.scale_factor}, "
            f"min_neighbors={self.min_neighbors}, min_score={self.min_score}, "
            f"min_face={self.min_face}, detect_size={self.detect_size})"
        )

    def _scan(
        self, gray: np.ndarray, scale: float, min_size: int, max_size: int = 0
    ) -> list[Detection]:
        """Run the cascades on ``gray`` resized by ``scale``; boxes in ``gray``'s coordinates."""
        if scale < 1.0:
            h, w = gray.shape
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        else:
            small, scale = gray, 1.0
        passes = [(thread_cascade(_FRONTAL), small, "frontal")]
        if self.profile:
            side = thread_cascade(_PROFILE)
            passes += [
                (side, small, "profile"),
                (side, np.ascontiguousarray(small[:, ::-1]), "profile-mirrored"),
            ]
        found: list[Detection] = []
        width = small.shape[1]
        for cascade, image, kind in passes:
            boxes, _, weights = cascade.detectMultiScale3(
                image,
                scaleFactor=self.scale_factor,
                minNeighbors=self.min_neighbors,
                minSize=(min_size, min_size),
                maxSize=(max_size, max_size),
                outputRejectLevels=True,
            )
            for (x, y, w, h), weight in zip(boxes, np.ravel(weights), strict=True):
                if weight < self.min_score:
                    continue
                if kind == "profile-mirrored":
                    x = width - x - w
                box = (round(x / scale), round(y / scale), round(w / scale), round(h / scale))
                found.append(Detection(box, float(weight), kind))
        return found

    def scan_scale(self, shape: tuple[int, ...]) -> float:
        """The scale at which an image of ``shape`` is scanned: no finer than needed for the
        smallest face, and never above ``detect_size``."""
        return min(1.0, self.detect_size / max(shape[:2]), _WINDOW / self.min_face)

    def detect(self, gray: np.ndarray) -> list[Detection]:
        """All faces of at least ``min_face`` pixels in a uint8 grayscale image."""
        h, w = gray.shape[:2]
        scale = self.scan_scale(gray.shape)
        min_size = max(_WINDOW, round(self.min_face * scale))
        if min(h, w) * scale < min_size:
            return []
        return self._sorted(nms(self._scan(gray, scale, min_size), self.nms_iou))

    def detect_near(
        self, gray: np.ndarray, boxes: list[tuple[int, int, int, int]]
    ) -> list[Detection]:
        """Faces in the neighbourhood of ``boxes`` (a tracked face's last position) only.

        Each region is the box grown by half its side on every side, scanned for faces of
        0.67–1.5 times its size at the scale of a whole-frame scan (:meth:`scan_scale`), so the
        cascade sees the face as :meth:`detect` does. (Scanned smaller, at 36 px, it found again
        only 71 of 99 composite faces a whole-frame scan had found, moved and resized by up to
        8 %, against 91 here, and 3 of 34 faces of a 720p test video against 28: its finest
        pyramid levels are scanned at a 2-pixel step, which leaves a face fewer neighbours.)
        This costs a fraction of a full scan, which lets video runs re-detect tracked faces on
        every frame and scan the whole frame for new faces only every few frames.
        """
        h, w = gray.shape[:2]
        scale = self.scan_scale(gray.shape)
        found: list[Detection] = []
        for bx, by, bw, bh in boxes:
            side = max(bw, bh)
            x0, y0 = max(0, bx - side // 2), max(0, by - side // 2)
            x1, y1 = min(w, bx + bw + side // 2), min(h, by + bh + side // 2)
            if x1 - x0 < self.min_face or y1 - y0 < self.min_face:
                continue
            region = gray[y0:y1, x0:x1]
            min_size = max(_WINDOW, round(0.67 * side * scale))
            max_size = round(1.5 * side * scale)
            if min(region.shape) * scale < min_size:
                continue
            for det in self._scan(region, scale, min_size, max_size):
                x, y, dw, dh = det.box
                found.append(Detection((x + x0, y + y0, dw, dh), det.score, det.kind))
        return self._sorted(nms(found, self.nms_iou))

    @staticmethod
    def _sorted(detections: list[Detection]) -> list[Detection]:
        # Left to right, then top to bottom: image face ids follow reading order.
        return sorted(detections, key=lambda d: (d.box[0], d.box[1]))


def create_detector(
    detector: str | FaceDetector, *, min_face: int = 48, detect_size: int = 640
) -> FaceDetector:
    """Build a detector by name (see :data:`DETECTORS`) or pass a detector object through.

    Raises:
        UnknownNameError: ``detector`` is a string that names no detector.
        FerlabError: ``detector`` is neither a name nor an object with ``detect``/``detect_near``.
    """
    if isinstance(detector, str):
        if detector not in DETECTORS:
            raise UnknownNameError("detector", detector, list(DETECTORS))
        return HaarDetector(
            profile=detector == "haar-profile", min_face=min_face, detect_size=detect_size
        )
    if isinstance(detector, FaceDetector):
        return detector
    raise FerlabError(
        f"detector must be one of {', '.join(DETECTORS)} or an object with detect(gray) and "
        f"detect_near(gray, boxes) methods; got {type(detector).__name__}"
    )
