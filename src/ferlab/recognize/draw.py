"""Drawing recognition results onto images and video frames with OpenCV.

Each face gets a box in its emotion's colour, a caption ``label 87%`` (with ``#id`` in videos)
and a small horizontal bar chart of all probabilities beside the box — on the right when it fits,
else on the left, else inside the box. Sizes follow the image height so the drawing stays
readable on a 320-pixel frame and a 4000-pixel photo alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ferlab.labels import typed_label
from ferlab.recognize.results import Face

__all__ = ["annotate", "label_color"]

# BGR colours of the emotions (ferlab's names; FER+'s spellings map to them).
_COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 140),
    "happy": (30, 200, 250),
    "sad": (200, 120, 30),
    "surprise": (0, 140, 255),
    "neutral": (190, 190, 190),
    "contempt": (120, 120, 0),
}


def label_color(label: str) -> tuple[int, int, int]:
    """BGR colour of an emotion; labels of other classifiers get a stable colour of their own."""
    name = typed_label(label)
    if name in _COLORS:
        return _COLORS[name]
    seed = sum(ord(c) * (i + 1) for i, c in enumerate(label))
    hue = np.uint8([[[seed % 180, 200, 230]]])
    b, g, r = cv2.cvtColor(hue, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def annotate(image: np.ndarray, faces: Sequence[Face], *, show_id: bool = False) -> np.ndarray:
    """A copy of the BGR ``image`` with every face's box, caption and probability bars drawn.

    Args:
        image: H×W×3 uint8 BGR image the faces were found in (original coordinates).
        faces: the :class:`~ferlab.recognize.results.Face` rows of that image.
        show_id: prefix captions with the face id (used for videos, where ids are track ids).
    """
    out = image.copy()
    h_img, w_img = out.shape[:2]
    unit = max(0.35, min(1.5, h_img / 900))  # font scale that suits the image size
    thick = max(1, round(unit * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for face in faces:
        x, y, w, h = face.box
        color = label_color(face.label)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thick + 1)
        caption = f"{face.label} {face.scores[face.label]:.0%}"
        if show_id:
            caption = f"#{face.face_id} {caption}"
        (tw, th), base = cv2.getTextSize(caption, font, unit, thick)
        ty = y - 4 if y - th - base - 4 >= 0 else min(h_img - base, y + h + th + 4)
        cv2.rectangle(out, (x, ty - th - base), (x + tw + 4, ty + base), color, -1)
        cv2.putText(out, caption, (x + 2, ty), font, unit, (0, 0, 0), thick, cv2.LINE_AA)
        _draw_bars(out, face, unit, font)
    return out


def _draw_bars(out: np.ndarray, face: Face, unit: float, font: int) -> None:
    h_img, w_img = out.shape[:2]
    x, y, w, h = face.box
    bar_scale = unit * 0.8
    row_h = max(8, round(22 * unit))
    name_w = cv2.getTextSize("surpr", font, bar_scale, 1)[0][0] + 4
    bar_w = max(30, round(90 * unit))
    panel_w, panel_h = name_w + bar_w + 6, row_h * len(face.scores) + 4
    if x + w + panel_w + 4 <= w_img:
        px = x + w + 4
    elif x - panel_w - 4 >= 0:
        px = x - panel_w - 4
    else:
        px = max(0, min(w_img - panel_w, x + 2))
    py = max(0, min(h_img - panel_h, y))
    if panel_w > w_img or panel_h > h_img:
        return  # image too small for a chart; the box and caption remain
    # Darken the panel's background so bars and names stay legible on any picture.
    roi = out[py : py + panel_h, px : px + panel_w]
    roi[:] = (roi * 0.35).astype(np.uint8)
    for i, (name, p) in enumerate(face.scores.items()):
        top = py + 2 + i * row_h
        cv2.putText(
            out,
            name[:5],
            (px + 2, top + row_h - 5),
            font,
            bar_scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
        left = px + name_w
        cv2.rectangle(out, (left, top + 2), (left + bar_w, top + row_h - 3), (80, 80, 80), 1)
        fill = round(bar_w * float(np.clip(p, 0.0, 1.0)))
        if fill > 0:
            cv2.rectangle(
                out, (left, top + 2), (left + fill, top + row_h - 3), label_color(name), -1
            )
