"""Face-like 48×48 images drawn from a seed: fixtures for tests that need face-shaped input but
no real data (preprocessing, export parity), so they run where ../shared/datasets is absent."""

from __future__ import annotations

import cv2
import numpy as np


def generated_faces(n: int = 24, seed: int = 0) -> np.ndarray:
    """``n`` uint8 48×48 grey faces: an oval with eyes, brows, nose and a mouth whose shape,
    contrast, position and noise vary with the seed (smiles, frowns, open mouths)."""
    rng = np.random.default_rng(seed)
    faces = np.empty((n, 48, 48), np.uint8)
    for i in range(n):
        ramp = np.linspace(0, rng.uniform(-40, 40), 48)[None, :]
        image = np.clip(rng.uniform(30, 110) + ramp + np.zeros((48, 48)), 0, 255)
        cx, cy = 24 + rng.integers(-2, 3), 26 + rng.integers(-2, 3)
        skin = rng.uniform(130, 210)
        cv2.ellipse(image, (cx, cy), (int(rng.integers(15, 19)), 21), 0, 0, 360, skin, -1)
        dark, eye_y, gap = skin - rng.uniform(70, 120), cy - 7, int(rng.integers(7, 10))
        for side in (-1, 1):
            x = cx + side * gap
            cv2.ellipse(image, (x, eye_y), (3, int(rng.integers(1, 3))), 0, 0, 360, dark, -1)
            lift = int(rng.integers(-2, 3))
            cv2.line(
                image, (x - 4, eye_y - 4 + lift * side), (x + 4, eye_y - 4 - lift * side), dark, 1
            )
        cv2.line(image, (cx, eye_y + 3), (cx - 1, cy + 3), skin - 40, 1)
        mouth_y, bend = cy + 10, int(rng.integers(-4, 5))
        if rng.random() < 0.25:  # open mouth
            cv2.ellipse(image, (cx, mouth_y), (5, 3 + abs(bend) // 2), 0, 0, 360, dark, -1)
        else:
            start, end = (0, 180) if bend >= 0 else (180, 360)
            cv2.ellipse(
                image, (cx, mouth_y - bend // 2), (7, max(abs(bend), 1)), 0, start, end, dark, 1
            )
        image = cv2.GaussianBlur(image, (3, 3), 0.8) + rng.normal(0, 4, (48, 48))
        faces[i] = np.clip(image, 0, 255).astype(np.uint8)
    return faces
