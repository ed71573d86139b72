"""Video files and cameras: frame reading, annotated output, and a grabber that never lags.

* **Files** are read with OpenCV's ``VideoCapture``. With ``every_n > 1``, or ``sample_fps``
  (N frames per second of video time, the one nearest each ``k / N`` seconds), the skipped frames
  are only ``grab()``-ed: demuxed and decoded as inter-frame codecs need, without the
  retrieval and colour conversion to BGR, which cost about as much again. (Seeking would skip
  decoding too, but lands on key frames, usually seconds apart, and decodes forward from there:
  no cheaper at the rates a timeline wants.) A frame's time is its index divided by the file's
  frame rate (30 fps when the container does not say).
* **Annotated output** goes through ``cv2.VideoWriter`` with the ``mp4v`` codec, the one MPEG-4
  encoder every OpenCV wheel has. It holds the processed frames at ``fps / every_n``, so it plays
  at the original speed.
* **Cameras** deliver frames at their own pace. :class:`LatestFrameGrabber` reads them in a
  background thread and keeps only the newest, so when processing a frame takes longer than the
  camera's frame interval the stale frames are dropped instead of queueing up (which would make
  the output fall further and further behind). A camera that stops delivering frames raises an
  error after ``timeout`` seconds instead of hanging.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from ferlab.errors import DataError, FerlabError

__all__ = [
    "DEFAULT_FPS",
    "LatestFrameGrabber",
    "VideoWriter",
    "has_display",
    "open_camera",
    "open_video",
    "prefetched",
    "read_frames",
]

T = TypeVar("T")

#: Frame rate assumed when a video file does not state one.
DEFAULT_FPS = 30.0

# Failures come as one clear line (a DataError naming the file or camera); OpenCV's and FFmpeg's
# own warnings ("can't open camera by index", "moov atom not found") would only precede it.
# FFmpeg's level is read when OpenCV first opens a file, so setting it here is early enough.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def open_video(path: str | Path) -> tuple[cv2.VideoCapture, float, int]:
    """Open a video file; returns the capture, its frame rate and its frame count (0 if unknown).

    Raises:
        DataError: the file is missing or OpenCV cannot decode it; the message names it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise DataError("cannot open video (not a video, or a codec OpenCV lacks)", path=path)
    fps = cap.get(cv2.CAP_PROP_FPS)
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    return cap, fps if fps and np.isfinite(fps) and fps > 0 else DEFAULT_FPS, max(count, 0)


def read_frames(
    cap: cv2.VideoCapture,
    fps: float,
    every_n: int = 1,
    start: int = 0,
    stop: int | None = None,
    sample_fps: float | None = None,
) -> Iterator[tuple[int, float, np.ndarray]]:
    """Yield ``(index, seconds, frame)`` for the frames of an opened video whose index is a
    multiple of ``every_n``, or with ``sample_fps`` for the frame nearest each
    ``k / sample_fps`` seconds (every frame when the video has fewer per second), from frame
    ``start`` up to ``stop`` (exclusive; the end by default); the others are only grabbed.

    ``start`` is reached by seeking when the backend lands exactly on it, else by reading from
    the beginning (slower, same frames).
    """
    wanted = _sampled(fps, sample_fps) if sample_fps else (i * every_n for i in itertools.count())
    target = next(wanted)
    while target < start:
        target = next(wanted)
    index = 0
    if start > 0:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        if int(cap.get(cv2.CAP_PROP_POS_FRAMES)) == start:
            index = start
        else:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    while stop is None or index < stop:
        if not cap.grab():
            return
        if index == target:
            ok, frame = cap.retrieve()
            if not ok or frame is None:
                return
            yield index, index / fps, frame
            target = next(wanted)
        index += 1


class _Raised:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_DONE = object()


def prefetched(items: Iterator[T], depth: int = 8) -> Iterator[T]:
    """The items of ``items``, produced on a background thread up to ``depth`` ahead, in order:
    a video's decoding (OpenCV releases the GIL) overlaps the analysis of earlier frames. The
    thread stops when the consumer does; an error in it is raised in the consumer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            put(_Raised(exc))

    thread = threading.Thread(target=produce, name="ferlab-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _DONE:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        thread.join()


def _sampled(fps: float, sample_fps: float) -> Iterator[int]:
    """Frame indices nearest ``k / sample_fps`` seconds, increasing, none twice."""
    if not sample_fps > 0:
        raise FerlabError(f"sample_fps must be > 0, got {sample_fps}")
    last = -1
    for k in itertools.count():
        index = round(k * fps / sample_fps)
        if index > last:
            last = index
            yield index


def open_camera(camera: int | str) -> cv2.VideoCapture:
    """Open a camera by index (or a stream URL / file standing in for one).

    Raises:
        DataError: no camera answers at that index, or the file / stream cannot be read.
    """
    if isinstance(camera, str) and camera.lstrip("-").isdigit():
        camera = int(camera)
    where = f"camera:{camera}"
    if isinstance(camera, int) and camera < 0:
        raise DataError("a camera index is 0 or more", path=where)
    if isinstance(camera, str) and "://" not in camera and not Path(camera).is_file():
        raise DataError("no such file (nor a camera index, nor a stream URL)", path=camera)
    cap = cv2.VideoCapture(camera)
    if not cap.isOpened():
        cap.release()
        if isinstance(camera, int):
            raise DataError("cannot open camera (no device at this index, or in use)", path=where)
        raise DataError("cannot open (not a video, or a stream or codec OpenCV lacks)", path=camera)
    return cap


class LatestFrameGrabber:
    """Read a capture in a background thread and hand out only the newest frame.

    Use as a context manager; :meth:`next` waits for a frame newer than the last one returned.
    ``dropped`` counts the frames that were replaced before anyone took them.

    Args:
        capture: an opened ``cv2.VideoCapture`` or any object with ``read()`` and ``release()``.
        timeout: seconds :meth:`next` waits for a new frame before giving up with an error.
    """

    def __init__(self, capture: cv2.VideoCapture, timeout: float = 5.0) -> None:
        self.capture = capture
        self.timeout = timeout
        self.dropped = 0
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._stamp = 0.0
        self._index = -1
        self._taken = -1
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ferlab-grabber", daemon=True)

    def __enter__(self) -> LatestFrameGrabber:
        self._start = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the thread and release the capture."""
        self._stop.set()
        # A read() stuck in a driver cannot be interrupted; the daemon thread is left to it.
        # After the end of the stream the thread has nothing left to read: it is waited for.
        with self._cond:
            ended = self._ended
        self._thread.join(timeout=None if ended else 1.0)
        if not self._thread.is_alive():
            self.capture.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            ok, frame = self.capture.read()
            with self._cond:
                if not ok or frame is None:
                    self._ended = True
                    self._cond.notify_all()
                    return
                if self._index > self._taken:
                    self.dropped += 1
                self._frame, self._index = frame, self._index + 1
                self._stamp = time.monotonic() - self._start
                self._cond.notify_all()

    def next(self) -> tuple[int, float, np.ndarray] | None:
        """The newest unseen ``(index, seconds since start, frame)``; ``None`` at end of stream.

        Raises:
            FerlabError: no new frame arrived within ``timeout`` seconds.
        """
        with self._cond:
            fresh = self._cond.wait_for(
                lambda: self._index > self._taken or self._ended, timeout=self.timeout
            )
            if not fresh:
                raise FerlabError(
                    f"the camera delivered no frame for {self.timeout:g} s; is it still connected?"
                )
            if self._index <= self._taken:  # ended with nothing new
                return None
            self._taken = self._index
            return self._index, self._stamp, self._frame


class VideoWriter:
    """Annotated-video output (``mp4v``), opened lazily at the first frame's size."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer: cv2.VideoWriter | None = None

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DataError(f"cannot create folder ({exc.strerror})", path=self.path) from None
            h, w = frame.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self._writer = cv2.VideoWriter(str(self.path), fourcc, self.fps, (w, h))
            if not self._writer.isOpened():
                raise DataError(
                    "cannot write video (check the folder and the extension)", path=self.path
                )
        self._writer.write(frame)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def has_display() -> bool:
    """Whether an OpenCV window can be shown: a GUI-enabled OpenCV build and a screen.

    ``opencv-python-headless`` (ferlab's dependency) has no GUI, so this is false unless the full
    ``opencv-python`` build is installed instead.
    """
    gui = next(
        (
            line
            for line in cv2.getBuildInformation().splitlines()
            if line.strip().startswith("GUI:")
        ),
        "GUI: NONE",
    )
    if gui.split(":", 1)[1].strip().upper() in ("", "NONE"):
        return False
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True
