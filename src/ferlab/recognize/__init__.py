"""Recognise emotions of the faces in photos, folders, videos and a live camera.

>>> from ferlab.recognize import Recognizer
>>> results = Recognizer(model="default")("group_photo.jpg")    # doctest: +SKIP
>>> results.to_dataframe()                                       # doctest: +SKIP

See ``docs/recognize.md`` for the pipeline, its measured choices and the command-line verbs.
"""

from ferlab.recognize.align import FER_CROP_SCALE, FER_SIZE, align_crop, crop_faces, eye_angle
from ferlab.recognize.detect import (
    DETECTORS,
    Detection,
    FaceDetector,
    HaarDetector,
    create_detector,
    nms,
)
from ferlab.recognize.draw import annotate
from ferlab.recognize.io import (
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    array_to_bgr,
    decode_image,
    load_image,
)
from ferlab.recognize.recognizer import (
    CROP_MAX,
    FACE_MODES,
    EmotionClassifier,
    Recognizer,
    load_classifier,
)
from ferlab.recognize.results import Face, FrameResult, Results
from ferlab.recognize.track import IoUTracker, Track
from ferlab.recognize.video import LatestFrameGrabber, has_display

__all__ = [
    "CROP_MAX",
    "DETECTORS",
    "FACE_MODES",
    "FER_CROP_SCALE",
    "FER_SIZE",
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "Detection",
    "EmotionClassifier",
    "Face",
    "FaceDetector",
    "FrameResult",
    "HaarDetector",
    "IoUTracker",
    "LatestFrameGrabber",
    "Recognizer",
    "Results",
    "Track",
    "align_crop",
    "annotate",
    "array_to_bgr",
    "create_detector",
    "crop_faces",
    "decode_image",
    "eye_angle",
    "has_display",
    "load_classifier",
    "load_image",
    "nms",
]
