"""Videos and cameras: stable track ids, smoothing, annotated output, never-blocking grabber."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from recognize_helpers import (
    EMOTIONS,
    BrightnessClassifier,
    background,
    box_iou,
    paste,
    write_video,
)

from ferlab.errors import DataError, FerlabError
from ferlab.recognize import IoUTracker, LatestFrameGrabber, Recognizer

FPS = 20.0
N_FRAMES = 30
SIZE = 140


def _x(i: int) -> int:
    return 40 + 14 * i  # moves 14 px per frame, left to right


@pytest.fixture(scope="module")
def moving_face_video(tmp_path_factory: pytest.TempPathFactory, request) -> Path:
    face = request.getfixturevalue("face")
    frames = [paste(background(), face, _x(i), 160, SIZE) for i in range(N_FRAMES)]
    return write_video(tmp_path_factory.mktemp("video") / "moving.avi", frames, FPS)


def test_moving_face_keeps_one_track_id(moving_face_video: Path, recognizer: Recognizer) -> None:
    results = recognizer(moving_face_video)
    frames = [f.frame for f in results]
    assert len(set(frames)) == len(frames), "one face per frame"
    assert len(frames) >= N_FRAMES - 2  # a missed frame or two is tolerable, not more
    assert {f.face_id for f in results} == {0}
    for f in results:
        assert box_iou(f.box, (_x(f.frame), 160, SIZE, SIZE)) > 0.5, f
        assert f.time == pytest.approx(f.frame / FPS)
        assert f.source == str(moving_face_video)


def test_every_n_and_annotated_output(
    moving_face_video: Path, recognizer: Recognizer, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "annotated.mp4"
    results = recognizer(moving_face_video, every_n=3, video_out=out)
    assert sorted({f.frame for f in results}) == list(range(0, N_FRAMES, 3))
    cap = cv2.VideoCapture(str(out))
    assert cap.isOpened()
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == N_FRAMES // 3
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS / 3, rel=0.01)
    ok, frame = cap.read()
    cap.release()
    assert ok and frame.shape == (480, 640, 3)
    # The box outline is drawn in the label's colour: the frame differs from the input there.
    raw = cv2.VideoCapture(str(moving_face_video))
    _, first = raw.read()
    raw.release()
    x, y, w, h = next(f.box for f in results if f.frame == 0)
    edge = np.abs(frame[y : y + h, x].astype(int) - first[y : y + h, x].astype(int)).mean()
    assert edge > 30


def test_two_faces_two_stable_ids(fer_faces: dict[int, np.ndarray], tmp_path: Path) -> None:
    frames = []
    for i in range(16):
        scene = paste(background(), fer_faces[4], 20 + 6 * i, 60, 150)
        frames.append(paste(scene, fer_faces[15], 460 - 6 * i, 260, 150))
    path = write_video(tmp_path / "two.avi", frames)
    results = Recognizer(model=_Const())(path)
    by_id: dict[int, list] = {}
    for f in results:
        by_id.setdefault(f.face_id, []).append(f)
    assert sorted(by_id) == [0, 1]
    left = min(by_id.values(), key=lambda fs: fs[0].box[0])
    assert all(f.box[1] < 200 for f in left), "the upper-left face keeps its id"


class _Const:
    labels = ("a", "b")

    def predict_proba(self, faces: np.ndarray) -> np.ndarray:
        return np.tile(np.float32([0.25, 0.75]), (len(faces), 1))


def test_tracker_matching_ageing_and_smoothing() -> None:
    tracker = IoUTracker(max_age=2, alpha=0.5)
    p = np.array([[1.0, 0.0]])
    (t0,) = tracker.update([(0, 0, 100, 100)], p, frame=0)
    (t1,) = tracker.update([(10, 0, 100, 100)], np.array([[0.0, 1.0]]), frame=1)
    assert t1.id == t0.id == 0
    assert t1.probs == pytest.approx([0.5, 0.5])  # 0.5·new + 0.5·old
    tracker.update([], np.zeros((0, 2)), frame=2)
    tracker.update([], np.zeros((0, 2)), frame=3)
    (t2,) = tracker.update([(12, 0, 100, 100)], p, frame=4)  # two misses: still alive
    assert t2.id == 0 and t2.history == [0, 1, 4]
    for frame in (5, 6, 7):
        tracker.update([], np.zeros((0, 2)), frame=frame)
    (t3,) = tracker.update([(12, 0, 100, 100)], p, frame=8)  # three misses: a new face
    assert t3.id == 1
    # Greedy matching: each track takes the detection it overlaps most.
    a, b = tracker.update([(400, 0, 100, 100), (14, 0, 100, 100)], np.ones((2, 2)) / 2, frame=9)
    assert (a.id, b.id) == (2, 1)


def test_smoothing_off_reports_raw_probabilities() -> None:
    tracker = IoUTracker(alpha=1.0)
    tracker.update([(0, 0, 50, 50)], np.array([[0.9, 0.1]]), 0)
    (t,) = tracker.update([(0, 0, 50, 50)], np.array([[0.2, 0.8]]), 1)
    assert t.probs == pytest.approx([0.2, 0.8])
    with pytest.raises(FerlabError, match="alpha"):
        IoUTracker(alpha=0.0)


def test_summary_and_timeline(
    moving_face_video: Path, recognizer: Recognizer, tmp_path: Path
) -> None:
    results = recognizer(moving_face_video, every_n=2)
    summary = results.summary()
    assert list(summary["face_id"]) == [0]
    row = summary.iloc[0]
    assert row["frames"] == len(results)
    assert row["duration"] == pytest.approx(row["last"] - row["first"])
    assert row["last"] == pytest.approx(max(f.time for f in results))
    means = np.array([row[label] for label in recognizer.labels])
    assert means.sum() == pytest.approx(1.0, abs=1e-5)
    assert row["dominant"] == recognizer.labels[int(np.argmax(means))]
    png = results.plot_timeline(tmp_path / "timeline.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width = cv2.imread(str(png)).shape[:2]
    assert width > 400 and height > 150


def test_video_that_cannot_be_opened(tmp_path: Path, recognizer: Recognizer) -> None:
    fake = tmp_path / "clip.mp4"
    fake.write_text("no video here")
    with pytest.raises(DataError, match="cannot open video") as info:
        recognizer(fake)
    assert "clip.mp4" in str(info.value)
    with pytest.raises(DataError, match="no such file"):
        recognizer(tmp_path / "absent.mp4")
    results = recognizer([fake], errors="collect")
    assert results.errors and "clip.mp4" in results.errors[0][1]


class _ScriptedCamera:
    """A capture that delivers a frame only when the test hands one over. The grabber asks for
    the next frame only once it has stored the previous one, so :meth:`deliver` knows when each
    frame is in the grabber: no sleeps, no dependence on the machine's speed."""

    def __init__(self) -> None:
        self.frames: queue.Queue[np.ndarray | None] = queue.Queue()
        self.reads, self.delivered, self.released = 0, 0, False
        self._asked = threading.Condition()

    def read(self) -> tuple[bool, np.ndarray | None]:
        with self._asked:
            self.reads += 1
            self._asked.notify_all()
        frame = self.frames.get()
        return (False, None) if frame is None else (True, frame)

    def deliver(self, n: int) -> None:
        """Hand over ``n`` numbered frames, each stored by the grabber before the next."""
        for _ in range(n):
            self.frames.put(np.full((4, 4, 3), self.delivered % 256, np.uint8))
            self.delivered += 1
            with self._asked:  # the read after this frame's has begun: it is stored
                assert self._asked.wait_for(lambda: self.reads > self.delivered, timeout=60)

    def end(self) -> None:
        self.frames.put(None)

    def release(self) -> None:
        self.released = True


class _FrozenCamera:
    def __init__(self) -> None:
        self.unblock = threading.Event()
        self.returned = False

    def read(self) -> tuple[bool, None]:
        self.unblock.wait(60)
        self.returned = True
        return False, None

    def release(self) -> None:
        pass


def test_grabber_always_hands_out_the_newest_frame() -> None:
    camera = _ScriptedCamera()
    with LatestFrameGrabber(camera, timeout=60) as grabber:
        taken = []
        for _ in range(5):
            camera.deliver(7)  # seven frames arrive while the last one is being processed
            index, _, frame = grabber.next()
            taken.append((index, int(frame[0, 0, 0])))
        assert taken == [(6, 6), (13, 13), (20, 20), (27, 27), (34, 34)]
        assert grabber.dropped == 5 * 6  # each round, the six older frames were never taken
        camera.end()
        assert grabber.next() is None
    assert camera.released


def test_grabber_reports_a_frozen_camera_instead_of_hanging() -> None:
    camera = _FrozenCamera()
    with LatestFrameGrabber(camera, timeout=0.3) as grabber:
        with pytest.raises(FerlabError, match="no frame"):
            grabber.next()
        assert not camera.returned  # the error came while the camera's read still hung
        camera.unblock.set()


def test_grabber_ends_with_the_stream() -> None:
    camera = _ScriptedCamera()
    with LatestFrameGrabber(camera, timeout=60) as grabber:
        camera.deliver(3)
        camera.end()
        assert grabber.next()[0] == 2  # only the newest of the three
        assert grabber.next() is None
    assert camera.released


def test_live_streams_a_video_as_a_camera(moving_face_video: Path, recognizer: Recognizer) -> None:
    frames = list(recognizer.live(str(moving_face_video), display=False, max_frames=4))
    assert 1 <= len(frames) <= 4
    assert [f.frame for f in frames] == sorted({f.frame for f in frames})
    assert all(fr.source == f"camera:{moving_face_video}" for fr in frames)
    # A file read as a camera is read faster than it is processed, so frames are skipped; each
    # processed frame's face is where that frame has it.
    for fr in frames:
        assert len(fr.faces) <= 1
        for f in fr.faces:
            assert box_iou(f.box, (_x(fr.frame), 160, SIZE, SIZE)) > 0.5


def test_track_in_memory_frames_keeps_the_id_through_a_short_occlusion(
    face: np.ndarray, recognizer: Recognizer
) -> None:
    frames = [paste(background(), face, 100 + 10 * i, 150, SIZE) for i in range(14)]
    for i in (5, 6, 7):  # the face is hidden for three frames
        frames[i] = background()
    results = list(recognizer.track(frames, fps=10.0, source="cam"))
    assert [len(fr.faces) for fr in results] == [1] * 5 + [0] * 3 + [1] * 6
    assert {f.face_id for fr in results for f in fr.faces} == {0}
    assert [fr.time for fr in results] == pytest.approx([i / 10 for i in range(14)])
    assert all(fr.source == "cam" and fr.fps == 10.0 for fr in results)


def test_sample_fps_picks_the_frames_nearest_each_sample_time(
    moving_face_video: Path, tmp_path: Path
) -> None:
    rec = Recognizer(model=BrightnessClassifier(), sample_fps=3.0)
    out = tmp_path / "sampled.mp4"
    results = rec(moving_face_video, video_out=out)
    # 20 fps, 3 samples a second: frames nearest 0, 1/3, 2/3, 1, 4/3 s.
    assert sorted({f.frame for f in results}) == [0, 7, 13, 20, 27]
    assert [f.time for f in results] == pytest.approx([f.frame / FPS for f in results])
    cap = cv2.VideoCapture(str(out))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(3.0, rel=0.01)
    cap.release()
    # Faster than the video: every frame, once.
    every = Recognizer(model=BrightnessClassifier(), sample_fps=50.0)
    assert sorted({f.frame for f in every(moving_face_video)}) == sorted(
        {f.frame for f in Recognizer(model=BrightnessClassifier())(moving_face_video)}
    )


def test_per_second_timeline(moving_face_video: Path) -> None:
    results = Recognizer(model=BrightnessClassifier(), sample_fps=10.0)(moving_face_video)
    table = results.per_second()
    assert list(table["second"]) == [0, 1]  # 30 frames at 20 fps: 1.5 s
    assert list(table["frames"]) == [10, 5]
    labels = list(EMOTIONS)
    df = results.to_dataframe()
    first = df[df["time"] < 1.0][labels].mean()
    assert table.loc[0, labels].to_numpy(float) == pytest.approx(first.to_numpy(float))
    assert table.loc[0, "label"] == first.idxmax()


def test_prefetched_keeps_order_stops_early_and_passes_errors_on() -> None:
    from ferlab.recognize.video import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))
    made = []

    def numbers():
        for i in range(1000):
            made.append(i)
            yield i

    items = prefetched(numbers(), depth=2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # the producer stops within a few items of the consumer
    assert len(made) <= 3 + 2 + 2

    def broken():
        yield 1
        raise DataError("decoding failed", path="clip.mp4")

    with pytest.raises(DataError, match="decoding failed"):
        list(prefetched(broken()))
