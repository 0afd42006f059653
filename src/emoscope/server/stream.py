"""Per-connection state of a live stream: tracking, mood sampling and smile capture (no I/O here)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..mood import MoodRow
from ..video import FaceTracker, TrackedFace

SMILE_LABEL = "happy"


@dataclass
class StreamOptions:
    """What the client switched on for this connection (sent as ``{"type": "config", ...}``)."""

    log: bool = True
    smile_capture: bool = False
    smile_frames: int = 10

    def update(self, msg: dict[str, Any], log_allowed: bool) -> None:
        """Apply a config message; raises ValueError with a readable reason for bad values."""
        if "log" in msg:
            if not isinstance(msg["log"], bool):
                raise ValueError("'log' must be true or false")
            self.log = msg["log"] and log_allowed
        if "smile_capture" in msg:
            if not isinstance(msg["smile_capture"], bool):
                raise ValueError("'smile_capture' must be true or false")
            self.smile_capture = msg["smile_capture"]
        if "smile_frames" in msg:
            n = msg["smile_frames"]
            if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 300:
                raise ValueError("'smile_frames' must be an integer from 1 to 300")
            self.smile_frames = n


@dataclass
class StreamState:
    """Tracker plus bookkeeping for one WebSocket connection.

    Mood rows are sampled at most once per ``sample_interval`` seconds per track (smoothed probabilities,
    since that is what the user sees). Smile capture fires when every visible face has had the label
    ``happy`` for ``smile_frames`` consecutive frames, then waits ``capture_cooldown`` seconds.
    """

    session: str
    options: StreamOptions
    sample_interval: float = 1.0
    capture_cooldown: float = 3.0
    # the causal versions of the file path's tracker and smoothing: gaps up to 1.5 s keep a face's number, and
    # its label changes only when another emotion clearly leads (HMM forward filter with hysteresis)
    tracker: FaceTracker = field(default_factory=lambda: FaceTracker(smoothing="hmm"))
    last_logged: dict[int, float] = field(default_factory=dict)
    streaks: dict[int, int] = field(default_factory=dict)
    last_capture: float = -math.inf
    frames: int = 0

    def observe(self, faces: list, t: float, wall: float) -> tuple[list[TrackedFace], list[MoodRow], bool, float]:
        """Feed one frame's faces; returns (tracked faces, mood rows to write, capture now?, smile progress 0-1).

        ``t`` is a monotonic clock for the tracker, ``wall`` the Unix time stamped on mood rows.
        """
        self.frames += 1
        tracked = self.tracker.update(faces, t)
        rows: list[MoodRow] = []
        if self.options.log:
            for tf in tracked:
                last = self.last_logged.get(tf.track_id)
                if last is None or t - last >= self.sample_interval:
                    self.last_logged[tf.track_id] = t
                    rows.append(MoodRow(wall, "live", tf.smoothed, tf.track_id, self.session))
        visible = {tf.track_id for tf in tracked}
        for tid in list(self.last_logged):
            if tid not in visible and t - self.last_logged[tid] > 60:
                del self.last_logged[tid]
        capture, progress = False, 0.0
        if self.options.smile_capture:
            self.streaks = {tf.track_id: (self.streaks.get(tf.track_id, 0) + 1 if tf.label == SMILE_LABEL else 0)
                            for tf in tracked}  # fmt: skip
            if tracked:
                progress = min(1.0, min(self.streaks.values()) / self.options.smile_frames)
                if progress >= 1.0 and t - self.last_capture >= self.capture_cooldown:
                    capture = True
                    self.last_capture = t
                    self.streaks = dict.fromkeys(self.streaks, 0)
        else:
            self.streaks.clear()
        return tracked, rows, capture, progress
