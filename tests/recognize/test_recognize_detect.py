"""Face detection: real faces found where they are, nothing where there is none."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from recognize_helpers import FACE_ROWS, FER_CSV, background, box_iou, paste, read_fer_rows

from ferlab.errors import FerlabError, UnknownNameError
from ferlab.recognize import DETECTORS, Detection, HaarDetector, Recognizer, create_detector, nms

PLACEMENTS = [(40, 50, 96), (300, 200, 160), (380, 30, 220)]


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


@pytest.mark.parametrize("row", FACE_ROWS)
def test_fer_faces_found_at_their_place(fer_faces: dict[int, np.ndarray], row: int) -> None:
    detector = HaarDetector()
    for x, y, size in PLACEMENTS:
        dets = detector.detect(_gray(paste(background(), fer_faces[row], x, y, size)))
        assert len(dets) == 1, (row, size, dets)
        assert box_iou(dets[0].box, (x, y, size, size)) > 0.6, (row, size, dets[0].box)
        assert dets[0].score >= 2.0 and dets[0].kind == "frontal"


def test_background_alone_has_no_face() -> None:
    for shape in [(480, 640), (300, 400), (1200, 1600)]:
        assert HaarDetector().detect(_gray(background(*shape))) == []
        assert HaarDetector(profile=True).detect(_gray(background(*shape))) == []


def test_astronaut_face_found() -> None:
    data = pytest.importorskip("skimage.data")
    image = data.astronaut()  # public-domain NASA portrait, RGB
    dets = HaarDetector().detect(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    assert len(dets) == 1
    x, y, w, h = dets[0].box
    # Eyes and mouth of the astronaut, located by eye in the 512×512 image.
    for px, py in [(205, 105), (245, 105), (225, 147)]:
        assert x < px < x + w and y < py < y + h
    assert 80 <= w <= 130


def test_large_photo_is_scanned_downscaled_with_boxes_in_original_pixels(face: np.ndarray) -> None:
    scene = paste(background(3000, 4000), face, 2500, 900, 700)
    detector = HaarDetector()
    dets = detector.detect(_gray(scene))
    assert len(dets) == 1
    assert box_iou(dets[0].box, (2500, 900, 700, 700)) > 0.6


def test_min_face_sets_the_smallest_face_found(face: np.ndarray) -> None:
    scene = _gray(paste(background(), face, 100, 100, 40))
    assert HaarDetector(min_face=48).detect(scene) == []
    found = HaarDetector(min_face=30).detect(scene)
    assert len(found) == 1 and box_iou(found[0].box, (100, 100, 40, 40)) > 0.5


def test_two_faces_in_reading_order(fer_faces: dict[int, np.ndarray]) -> None:
    scene = paste(paste(background(), fer_faces[4], 380, 60, 150), fer_faces[8], 60, 200, 150)
    dets = HaarDetector().detect(_gray(scene))
    assert [d.box[0] < 300 for d in dets] == [True, False]


def test_profile_detector_reports_each_face_once(fer_faces: dict[int, np.ndarray]) -> None:
    scene = paste(background(), fer_faces[0], 300, 200, 160)
    dets = create_detector("haar-profile").detect(_gray(scene))
    assert len(dets) == 1 and dets[0].kind == "frontal"
    # A face turned sideways: the mirrored pass of the profile cascade is what finds the
    # right-facing one, and its box is mapped back onto the unmirrored image.
    flipped = np.ascontiguousarray(_gray(scene)[:, ::-1])
    mirrored = create_detector("haar-profile").detect(flipped)
    assert len(mirrored) == 1 and box_iou(mirrored[0].box, (640 - 460, 200, 160, 160)) > 0.6


def test_detect_near_looks_only_around_tracked_boxes(real_face: np.ndarray) -> None:
    gray = _gray(paste(background(), real_face, 300, 200, 160))
    detector = HaarDetector()
    near = detector.detect_near(gray, [(310, 190, 150, 150)])
    assert len(near) == 1 and box_iou(near[0].box, (300, 200, 160, 160)) > 0.6
    assert detector.detect_near(gray, [(20, 20, 100, 100)]) == []


def test_detect_near_finds_again_what_a_whole_frame_scan_found() -> None:
    # Tracking searches only around a face's last box between whole-frame scans, and scans the
    # whole frame again when the face is not found there: the neighbourhood search must find
    # what the whole-frame scan finds. 40 FER2013 Training faces the whole-frame scan finds on
    # two photo backgrounds, the last box moved and grown by 5 %: found again 39 of 40 times
    # (a search scaled to put the face at 36 px, as before, found 32); 0.9 leaves a margin for
    # other OpenCV builds.
    data = pytest.importorskip("skimage.data")
    if not FER_CSV.exists():
        pytest.skip(f"FER2013 CSV not found at {FER_CSV}")
    faces = [f for f in read_fer_rows(tuple(range(1000, 1060))).values() if f.std() > 10]
    scenes = [
        cv2.resize(getattr(data, name)()[:, :, ::-1], (640, 480), interpolation=cv2.INTER_AREA)
        for name in ("coffee", "rocket")
    ]
    detector, rng = HaarDetector(), np.random.default_rng(0)
    found = again = 0
    for i, face in enumerate(faces):
        size = int(rng.integers(100, 221))
        x, y = int(rng.integers(0, 640 - size)), int(rng.integers(0, 480 - size))
        gray = _gray(paste(scenes[i % 2], face, x, y, size))
        whole = [d.box for d in detector.detect(gray) if box_iou(d.box, (x, y, size, size)) > 0.4]
        if not whole:
            continue
        bx, by, bw, _ = whole[0]
        moved = (bx + round(0.05 * bw), by - round(0.05 * bw), round(1.05 * bw), round(1.05 * bw))
        found += 1
        again += any(box_iou(d.box, whole[0]) > 0.5 for d in detector.detect_near(gray, [moved]))
    assert found >= 30, found
    assert again >= 0.9 * found, (again, found)


def test_nms_prefers_frontal_then_score_and_merges_nested_boxes() -> None:
    dets = [
        Detection((100, 100, 80, 80), 9.0, "profile"),
        Detection((102, 98, 82, 82), 2.0, "frontal"),
        Detection((110, 110, 40, 40), 5.0, "frontal"),  # nested in the two above, best frontal
        Detection((400, 100, 80, 80), 3.0, "frontal"),
    ]
    kept = nms(dets)
    assert [(d.box, d.score) for d in kept] == [
        ((110, 110, 40, 40), 5.0),
        ((400, 100, 80, 80), 3.0),
    ]
    # Without the nested box the frontal one wins over the higher-scoring profile box.
    assert [d.kind for d in nms(dets[:2])] == ["frontal"]


def test_unknown_detector_lists_the_choices() -> None:
    with pytest.raises(UnknownNameError) as info:
        create_detector("yolo")
    for name in DETECTORS:
        assert name in str(info.value)
    with pytest.raises(FerlabError, match="detect"):
        create_detector(42)  # type: ignore[arg-type]


def test_recognizer_gives_image_faces_reading_order_ids(
    fer_faces: dict[int, np.ndarray], recognizer: Recognizer
) -> None:
    scene = paste(paste(background(), fer_faces[4], 380, 60, 150), fer_faces[8], 60, 200, 150)
    results = recognizer(scene)
    assert [f.face_id for f in results] == [0, 1]
    assert box_iou(results[0].box, (60, 200, 150, 150)) > 0.6
    assert box_iou(results[1].box, (380, 60, 150, 150)) > 0.6
    assert all(f.frame == 0 and f.time == 0.0 and f.source == "<array>" for f in results)


def test_photo_without_faces_is_an_empty_result(recognizer: Recognizer) -> None:
    results = recognizer(background())
    assert len(results) == 0 and results.errors == [] and results.sources == ["<array>"]
    assert results.to_dataframe().empty
