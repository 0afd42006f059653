"""Face tracking: a stable id per face across frames, with probabilities smoothed over that track only."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..labels import EMOTIONS
from ..recognizer import Face
from .smoothing import SMOOTHING, smooth_step


@dataclass
class TrackedFace:
    """A face in one frame, with its track id and probabilities smoothed over that track only."""

    track_id: int
    box: tuple[int, int, int, int]
    score: float
    probs: dict[str, float]  # raw, this frame
    smoothed: dict[str, float]  # smoothed over this track only
    label: str  # argmax of smoothed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "track_id": self.track_id,
            "box": [int(v) for v in self.box],
            "score": round(float(self.score), 4),
            "label": self.label,
            "probs": {k: round(float(v), 4) for k, v in self.probs.items()},
            "smoothed": {k: round(float(v), 4) for k, v in self.smoothed.items()},
        }


@dataclass
class _Track:
    track_id: int
    box: tuple[int, int, int, int]
    last_t: float
    state: np.ndarray
    votes: deque = field(default_factory=deque)
    missing: int = 0


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """IoU of two (x, y, w, h) boxes."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Stable track ids across frames plus per-track smoothing.

    Matching: greedy on IoU (>= ``iou_threshold``), then on centre distance (< ``center_threshold`` x the
    track's box side) for fast moves. A track survives ``max_missing`` updates without a match.
    Smoothing: ``"ema"`` with time constant ``time_constant`` seconds (weight of a new frame
    ``1 - exp(-dt / time_constant)``), ``"vote"`` = share of frames per label over the last ``time_constant``
    seconds, or ``"none"``.
    """

    def __init__(
        self,
        smoothing: str = "ema",
        time_constant: float = 0.5,
        iou_threshold: float = 0.3,
        max_missing: int = 10,
        center_threshold: float = 0.6,
        classes: Sequence[str] | None = None,
    ) -> None:
        if smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {SMOOTHING}, got {smoothing!r}")
        if time_constant < 0:
            raise ValueError("time_constant must be >= 0 seconds")
        self.smoothing, self.time_constant = smoothing, float(time_constant)
        self.iou_threshold, self.max_missing, self.center_threshold = iou_threshold, max_missing, center_threshold
        self.classes: tuple[str, ...] | None = tuple(classes) if classes else None
        self.tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (ids restart at 1)."""
        self.tracks, self._next_id = [], 1

    def _match(self, boxes: list[tuple[int, int, int, int]]) -> dict[int, int]:
        pairs = []
        for i, b in enumerate(boxes):
            for j, tr in enumerate(self.tracks):
                iou = box_iou(b, tr.box)
                if iou >= self.iou_threshold:
                    pairs.append((-iou, 0.0, i, j))
                else:
                    side = max(tr.box[2], tr.box[3], 1)
                    dx = (b[0] + b[2] / 2) - (tr.box[0] + tr.box[2] / 2)
                    dy = (b[1] + b[3] / 2) - (tr.box[1] + tr.box[3] / 2)
                    d = math.hypot(dx, dy) / side
                    size_ratio = max(b[2], 1) / max(tr.box[2], 1)
                    if d < self.center_threshold and 0.5 < size_ratio < 2.0:
                        pairs.append((1.0, d, i, j))  # after every IoU match
        matched: dict[int, int] = {}
        used = set()
        for _, _, i, j in sorted(pairs):
            if i not in matched and j not in used:
                matched[i] = j
                used.add(j)
        return matched

    def update(self, faces: Sequence[Face], t: float) -> list[TrackedFace]:
        """Assign the faces of the frame at time ``t`` (seconds) to tracks; returns them in the input order."""
        if self.classes is None and faces:
            self.classes = tuple(faces[0].probs)
        classes = self.classes or EMOTIONS
        boxes = [tuple(int(v) for v in f.box) for f in faces]
        matched = self._match(boxes)
        out: list[TrackedFace] = []
        seen = set()
        for i, f in enumerate(faces):
            p = np.array([f.probs.get(c, 0.0) for c in classes], np.float64)
            j = matched.get(i)
            if j is None:
                tr = _Track(self._next_id, boxes[i], t, p.copy())
                self._next_id += 1
                self.tracks.append(tr)
                self._smooth(tr, p, t, first=True)
            else:
                tr = self.tracks[j]
                self._smooth(tr, p, t, first=False)
                tr.box, tr.missing = boxes[i], 0
            tr.last_t = t
            seen.add(tr.track_id)
            sm = {c: float(v) for c, v in zip(classes, tr.state)}
            out.append(TrackedFace(tr.track_id, boxes[i], float(f.score), dict(f.probs), sm,
                                   classes[int(np.argmax(tr.state))]))
        for tr in self.tracks:
            if tr.track_id not in seen:
                tr.missing += 1
        self.tracks = [tr for tr in self.tracks if tr.missing <= self.max_missing]
        return out

    def _smooth(self, tr: _Track, p: np.ndarray, t: float, first: bool) -> None:
        tr.state = smooth_step(self.smoothing, self.time_constant, tr.state, tr.votes, p, t, tr.last_t, first)
