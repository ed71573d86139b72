"""Face tracking across video frames: stable ids and smoothed emotion probabilities.

**Matching** is greedy IoU matching, the tracker of "Simple Online and Realtime Tracking" minus
the Kalman filter and the Hungarian assignment: with a handful of faces per frame that rarely
cross, taking the best-overlapping (track, detection) pair first gives the same answer. A
detection overlapping no live track by at least ``iou_threshold`` starts a new track; a track
unmatched for more than ``max_age`` processed frames ends, so a face hidden for a moment (a
missed detection, a hand in front of it) keeps its id.

**Smoothing**: each track keeps an exponential moving average of its class probabilities,
``s ← α·p + (1 − α)·s``, started at the first observation. Frame-to-frame predictions on real
video flicker between neighbouring emotions (fear/surprise, sad/neutral); the average trades a
little latency for stable labels. ``α = 1`` turns smoothing off; the default 0.5 halves the weight
of an observation with every further processed frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ferlab.errors import FerlabError
from ferlab.recognize.detect import iou

__all__ = ["IoUTracker", "Track"]


@dataclass
class Track:
    """One face followed through a video."""

    id: int
    box: tuple[int, int, int, int]
    probs: np.ndarray
    """Smoothed class probabilities."""
    first_frame: int
    last_frame: int
    misses: int = 0
    hits: int = 1
    history: list[int] = field(default_factory=list)
    """Frame indices at which the face was seen."""


class IoUTracker:
    """Greedy IoU tracker with per-track exponential smoothing of probabilities.

    Args:
        iou_threshold: least overlap between a track's last box and a detection to match them.
        max_age: processed frames a track survives without a match.
        alpha: smoothing weight of the newest observation, in (0, 1].
        first_id: id of the first track (later ones count up from it).
    """

    def __init__(
        self, iou_threshold: float = 0.3, max_age: int = 10, alpha: float = 0.5, first_id: int = 0
    ) -> None:
        if not 0.0 < alpha <= 1.0:
            raise FerlabError(f"smoothing alpha must be in (0, 1], got {alpha}")
        if not 0.0 < iou_threshold < 1.0:
            raise FerlabError(f"iou_threshold must be in (0, 1), got {iou_threshold}")
        if max_age < 0:
            raise FerlabError(f"max_age must be >= 0, got {max_age}")
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.alpha = alpha
        self.tracks: list[Track] = []
        self._next_id = first_id

    def live_boxes(self) -> list[tuple[int, int, int, int]]:
        """Last boxes of the tracks still alive (where to look for their faces next)."""
        return [t.box for t in self.tracks]

    def update(
        self, boxes: list[tuple[int, int, int, int]], probs: np.ndarray, frame: int
    ) -> list[Track]:
        """Match this frame's detections to tracks; returns the track of each detection, in order.

        ``probs`` holds one row of class probabilities per box; the returned tracks carry the
        smoothed probabilities.
        """
        pairs = sorted(
            (
                (iou(track.box, box), ti, di)
                for ti, track in enumerate(self.tracks)
                for di, box in enumerate(boxes)
            ),
            reverse=True,
        )
        assigned: dict[int, Track] = {}
        used_tracks: set[int] = set()
        for overlap, ti, di in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_tracks or di in assigned:
                continue
            track = self.tracks[ti]
            track.box = boxes[di]
            track.probs = self.alpha * probs[di] + (1.0 - self.alpha) * track.probs
            track.last_frame, track.misses, track.hits = frame, 0, track.hits + 1
            track.history.append(frame)
            used_tracks.add(ti)
            assigned[di] = track
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.misses += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_age]
        for di, box in enumerate(boxes):
            if di not in assigned:
                track = Track(
                    self._next_id, box, np.asarray(probs[di], dtype=np.float64), frame, frame
                )
                track.history.append(frame)
                self._next_id += 1
                self.tracks.append(track)
                assigned[di] = track
        return [assigned[di] for di in range(len(boxes))]
