"""Emotions over time: frame sources, face tracking with per-face smoothing, and the video writers.

Everything streams: a :class:`FrameSource` yields one frame at a time, :func:`analyze` yields one result at a
time, and the writers (annotated video, CSV, summary, run-length timeline, captures) keep only running totals.
Memory stays flat however long the video is.

- Sources (:func:`open_source`): a video file, a webcam index (``0``), a stream URL (``rtsp://``, ``http://``,
  ...), or a folder of frame images (sorted by name, ``fps`` given). Problems the user can fix raise
  :class:`VideoSourceError`; a corrupt frame is skipped, counted and reported, and the run carries on.
- :class:`FaceTracker` gives each face a stable id (IoU matching, then centre distance) and smooths its
  probabilities over that track only: an exponential moving average with a time constant in seconds (frame-rate
  independent), or a majority vote over a time window. Faces never share smoothing state.
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .annotate import draw_faces
from .datasets.images import IMAGE_EXTENSIONS, ImageReadError
from .errors import EmoscopeError
from .labels import EMOTIONS
from .recognizer import Face, Recognizer, read_image

SMOOTHING = ("ema", "vote", "none")
_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}


class VideoSourceError(EmoscopeError, ValueError):
    """A video source cannot be opened or read (missing file, no such webcam, unreachable stream, ...)."""


# --------------------------------------------------------------------------------------------------- sources
@dataclass
class Frame:
    """One decoded frame: position in the source, time in seconds, uint8 BGR image."""

    index: int
    t: float
    image: np.ndarray


class FrameSource:
    """Base class: iterate to get :class:`Frame` objects; ``skipped`` counts unreadable frames."""

    kind = "source"

    def __init__(self, name: str, fps: float) -> None:
        self.name, self.fps = name, fps
        self.skipped = 0
        self.problems: list[str] = []  # first few reasons, for the report

    def _skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.problems) < 20:
            self.problems.append(reason)

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


class _Quiet:
    """Silence OpenCV's own console warnings while probing a source (we report our own errors)."""

    def __enter__(self) -> None:
        try:
            self._old = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:  # pragma: no cover
            self._old = None

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            cv2.utils.logging.setLogLevel(self._old)


class CaptureSource(FrameSource):
    """A video file, webcam or network stream read through ``cv2.VideoCapture``."""

    def __init__(self, cap: cv2.VideoCapture, kind: str, name: str, fps: float | None, live: bool,
                 max_failures: int = 30) -> None:
        cap_fps = cap.get(cv2.CAP_PROP_FPS)
        ok_fps = cap_fps if cap_fps and math.isfinite(cap_fps) and 0 < cap_fps <= 1000 else 25.0
        super().__init__(name, fps or ok_fps)
        self.kind, self.cap, self.live, self.max_failures = kind, cap, live, max_failures
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(n) if n and math.isfinite(n) and n > 0 and not live else None

    def __iter__(self) -> Iterator[Frame]:
        index, failures, t0 = 0, 0, time.monotonic()
        while True:
            ok, img = self.cap.read()
            if not ok or img is None or img.size == 0:
                more = self.live or (self.frame_count is not None and index < self.frame_count - 1)
                if not more:
                    break
                failures += 1
                self._skip(f"frame {index}: could not be decoded")
                index += 1
                if failures >= self.max_failures:
                    self.problems.append(f"stopped after {failures} unreadable frames in a row")
                    break
                continue
            failures = 0
            t = time.monotonic() - t0 if self.live else index / self.fps
            yield Frame(index, t, img)
            index += 1

    def close(self) -> None:
        self.cap.release()


class FolderSource(FrameSource):
    """Image files of a folder, in natural name order, as frames at ``fps`` frames per second."""

    kind = "folder"

    def __init__(self, folder: Path, fps: float | None = None) -> None:
        super().__init__(str(folder), fps or 25.0)
        self.files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
                            key=_natural_key)
        if not self.files:
            raise VideoSourceError(f"{folder}: folder holds no image files ({', '.join(sorted(IMAGE_EXTENSIONS))})")

    def __iter__(self) -> Iterator[Frame]:
        for i, p in enumerate(self.files):
            try:
                img = read_image(p)
            except ImageReadError as exc:
                self._skip(f"{p.name}: {exc}")
                continue
            if img.ndim == 2:
                img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
            yield Frame(i, i / self.fps, img)


def _natural_key(p: Path) -> list[Any]:
    return [int(s) if s.isdigit() else s.lower() for s in re.split(r"(\d+)", p.name)]


def open_source(source: str | int | Path, fps: float | None = None, timeout: float = 8.0) -> FrameSource:
    """Open a video file, webcam index, stream URL or frame folder; raise :class:`VideoSourceError` if it can't.

    ``fps`` overrides the frame rate (needed for folders, default 25). ``timeout`` bounds opening a stream.
    """
    if isinstance(source, int) or (isinstance(source, str) and source.strip().isdigit()):
        return _open_webcam(int(source), fps)
    s = str(source)
    if _URL.match(s) and not s.lower().startswith("file://"):
        return _open_stream(s, fps, timeout)
    p = Path(s[7:] if s.lower().startswith("file://") else s)
    if p.is_dir():
        return FolderSource(p, fps)
    if not p.exists():
        raise VideoSourceError(f"{p}: no such file or folder")
    if p.stat().st_size == 0:
        raise VideoSourceError(f"{p}: empty file")
    with _Quiet():
        cap = cv2.VideoCapture(str(p))
        ok = cap.isOpened()
    if not ok:
        cap.release()
        hint = "" if p.suffix.lower() in VIDEO_EXTENSIONS else " (is it a video file?)"
        raise VideoSourceError(f"{p}: cannot open as a video: corrupt, truncated or unsupported format{hint}")
    return CaptureSource(cap, "file", str(p), fps, live=False)


def _open_webcam(index: int, fps: float | None) -> FrameSource:
    if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
        raise VideoSourceError(f"webcam {index}: no such camera (/dev/video{index} does not exist)")
    with _Quiet():
        cap = cv2.VideoCapture(index)
        ok = cap.isOpened() and cap.read()[0]
    if ok:
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # analyse the newest frame, not a backlog, when we are slower
    if not ok:
        cap.release()
        raise VideoSourceError(f"webcam {index}: cannot open it (missing, busy in another program, or no permission)")
    return CaptureSource(cap, "webcam", str(index), fps, live=True)


def _open_stream(url: str, fps: float | None, timeout: float) -> FrameSource:
    ms = int(timeout * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    with _Quiet():
        try:
            cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        except cv2.error:
            cap = cv2.VideoCapture(url)
        ok = cap.isOpened()
    if not ok:
        cap.release()
        raise VideoSourceError(f"{url}: cannot open the stream (unreachable, refused, timed out after {timeout:g} s, "
                               "or not a video stream)")
    return CaptureSource(cap, "stream", url, fps, live=True, max_failures=max(10, int(timeout * 5)))


# -------------------------------------------------------------------------------------------------- tracking
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
        if self.smoothing == "none" or self.time_constant == 0:
            tr.state = p.copy()
        elif self.smoothing == "ema":
            if first:
                tr.state = p.copy()
            else:
                dt = max(0.0, t - tr.last_t)
                alpha = 1.0 - math.exp(-dt / self.time_constant)
                tr.state = tr.state + alpha * (p - tr.state)
        else:  # vote over the last time_constant seconds
            tr.votes.append((t, int(np.argmax(p))))
            while len(tr.votes) > 1 and tr.votes[0][0] < t - self.time_constant:
                tr.votes.popleft()
            counts = np.bincount([v for _, v in tr.votes], minlength=len(p)).astype(np.float64)
            counts[tr.votes[-1][1]] += 1e-6  # ties go to the most recent label
            tr.state = counts / counts.sum()


# -------------------------------------------------------------------------------------------------- analysis
@dataclass
class FrameResult:
    """One frame of :func:`analyze`: ``analysed`` is False on frames skipped by ``every`` (faces carried over)."""

    frame: Frame
    faces: list[TrackedFace]
    analysed: bool


def analyze(source: Iterable[Frame], recognizer: Recognizer, tracker: FaceTracker, every: int = 1,
            max_frames: int | None = None) -> Iterator[FrameResult]:
    """Run the recognizer on every ``every``-th frame and track the faces; yields one result per frame."""
    if every < 1:
        raise ValueError("every must be >= 1")
    last: list[TrackedFace] = []
    for n, frame in enumerate(source):
        if max_frames is not None and n >= max_frames:
            break
        if n % every == 0:
            faces = recognizer.predict_arrays([frame.image])[0]
            last = tracker.update(faces, frame.t)
            yield FrameResult(frame, last, True)
        else:
            yield FrameResult(frame, last, False)


class EmotionSummary:
    """Running totals: seconds per emotion per track and overall (face-seconds), and frames without a face."""

    def __init__(self, classes: Sequence[str] = EMOTIONS) -> None:
        self.classes = tuple(classes)
        self.tracks: dict[int, dict[str, Any]] = {}
        self.no_face_s = 0.0
        self.frames = 0

    def add(self, faces: Sequence[TrackedFace], t: float, dt: float) -> None:
        """Count ``dt`` seconds of the frame at time ``t`` for each face's smoothed label."""
        self.frames += 1
        if not faces:
            self.no_face_s += dt
        for f in faces:
            tr = self.tracks.setdefault(f.track_id, {"first_s": t, "last_s": t, "frames": 0,
                                                     "seconds": dict.fromkeys(self.classes, 0.0)})
            tr["last_s"], tr["frames"] = t, tr["frames"] + 1
            tr["seconds"][f.label] = tr["seconds"].get(f.label, 0.0) + dt

    def as_dict(self) -> dict[str, Any]:
        """Per track and overall: seconds and share of time in each emotion, dominant emotion."""
        total = dict.fromkeys(self.classes, 0.0)
        tracks = {}
        for tid, tr in sorted(self.tracks.items()):
            secs = tr["seconds"]
            s = sum(secs.values()) or 1.0
            for k, v in secs.items():
                total[k] = total.get(k, 0.0) + v
            tracks[tid] = {
                "first_s": round(tr["first_s"], 3), "last_s": round(tr["last_s"], 3), "frames": tr["frames"],
                "seconds": {k: round(v, 3) for k, v in secs.items()},
                "share": {k: round(v / s, 4) for k, v in secs.items()},
                "dominant": max(secs, key=secs.get),
            }
        s = sum(total.values())
        return {
            "tracks": tracks,
            "overall": {
                "face_seconds": round(s, 3),
                "share": {k: round(v / s, 4) if s else 0.0 for k, v in total.items()},
                "dominant": max(total, key=total.get) if s else None,
            },
            "no_face_seconds": round(self.no_face_s, 3),
        }

    def format(self) -> str:
        """Readable table: one line per track and one overall."""
        d = self.as_dict()
        head = f"{'track':>6} {'from':>7} {'to':>7}  " + " ".join(f"{c[:7]:>7}" for c in self.classes) + "  dominant"
        lines = [head]
        for tid, tr in d["tracks"].items():
            shares = " ".join(f"{100 * tr['share'][c]:6.1f}%" for c in self.classes)
            lines.append(f"{'#' + str(tid):>6} {tr['first_s']:6.1f}s {tr['last_s']:6.1f}s  {shares}  {tr['dominant']}")
        o = d["overall"]
        shares = " ".join(f"{100 * o['share'][c]:6.1f}%" for c in self.classes)
        lines.append(f"{'all':>6} {o['face_seconds']:6.1f}s {'':>7}  {shares}  {o['dominant'] or '-'}")
        if d["no_face_seconds"]:
            lines.append(f"no face visible for {d['no_face_seconds']:.1f} s")
        return "\n".join(lines)


class Timeline:
    """Run-length record of each track's smoothed label (memory grows with label changes, not frames)."""

    def __init__(self, classes: Sequence[str] = EMOTIONS) -> None:
        self.classes = tuple(classes)
        self.segments: dict[int, list[list[Any]]] = {}  # track -> [[label, t_start, t_end], ...]

    def add(self, faces: Sequence[TrackedFace], t: float, dt: float) -> None:
        for f in faces:
            segs = self.segments.setdefault(f.track_id, [])
            if segs and segs[-1][0] == f.label and t - segs[-1][2] <= 3 * dt + 1e-9:
                segs[-1][2] = t + dt
            else:
                segs.append([f.label, t, t + dt])

    def save_png(self, path: str | Path, title: str = "") -> Path:
        """One row per track, coloured by emotion over time."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        from .annotate import color_for

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tids = sorted(self.segments)
        fig, ax = plt.subplots(figsize=(10, 1.6 + 0.45 * max(3, len(tids))), dpi=100)
        for row, tid in enumerate(tids):
            for label, t0, t1 in self.segments[tid]:
                b, g, r = color_for(label)
                ax.broken_barh([(t0, max(t1 - t0, 1e-3))], (row - 0.4, 0.8), color=(r / 255, g / 255, b / 255))
        ax.set_yticks(range(len(tids)), [f"face #{t}" for t in tids])
        ax.set_xlabel("time (s)")
        ax.set_ylim(-0.6, max(1, len(tids)) - 0.4)
        handles = [plt.Rectangle((0, 0), 1, 1, color=tuple(c / 255 for c in color_for(c)[::-1])) for c in self.classes]
        ax.legend(handles, self.classes, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8, frameon=False)
        ax.invert_yaxis()  # face #1 on top
        ax.set_title(title or "smoothed emotion per face")
        if not tids:
            ax.text(0.5, 0.5, "no face found", ha="center", va="center", transform=ax.transAxes)
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)
        return path


class CsvLog:
    """CSV rows: one per tracked face per analysed frame (a row with empty face fields when none is visible)."""

    def __init__(self, path: str | Path, classes: Sequence[str] = EMOTIONS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.classes = tuple(classes)
        self._f = open(self.path, "w", newline="")  # noqa: SIM115 - closed in close()
        self._w = csv.writer(self._f)
        self._w.writerow(["time_s", "frame", "track_id", "x", "y", "w", "h", "score", "label"]
                         + [f"raw_{c}" for c in self.classes] + [f"smooth_{c}" for c in self.classes])
        self.rows = 0

    def add(self, frame: Frame, faces: Sequence[TrackedFace]) -> None:
        if not faces:
            self._w.writerow([f"{frame.t:.3f}", frame.index] + [""] * (7 + 2 * len(self.classes)))
            self.rows += 1
        for f in faces:
            self._w.writerow(
                [f"{frame.t:.3f}", frame.index, f.track_id, *f.box, f"{f.score:.3f}", f.label]
                + [f"{f.probs.get(c, 0.0):.4f}" for c in self.classes]
                + [f"{f.smoothed.get(c, 0.0):.4f}" for c in self.classes]
            )
            self.rows += 1

    def close(self) -> None:
        self._f.close()


#: Codec per output suffix. OpenCV's pip wheels have no H.264 encoder, so .mp4 gets MPEG-4 Part 2 (plays in
#: VLC and most players, but not in web browsers); .webm gets VP8, which every browser plays.
VIDEO_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG", ".webm": "VP80"}


class VideoOut:
    """Annotated video writer, opened on the first frame (size known then); the codec follows the suffix
    (``VIDEO_CODECS``): write ``.webm`` for a video a web page can show."""

    def __init__(self, path: str | Path, fps: float) -> None:
        self.path, self.fps = Path(path), fps
        if self.path.suffix.lower() not in VIDEO_CODECS:
            raise VideoSourceError(f"{self.path}: cannot write a {self.path.suffix or 'suffix-less'} video; name it "
                                   f"{', '.join(VIDEO_CODECS)} (.webm plays in web browsers)")
        self._w: cv2.VideoWriter | None = None
        self.frames = 0

    def write(self, img: np.ndarray) -> None:
        if self._w is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            four = VIDEO_CODECS[self.path.suffix.lower()]
            h, w = img.shape[:2]
            self._w = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*four), self.fps, (w, h))
            if not self._w.isOpened():
                raise VideoSourceError(f"{self.path}: OpenCV cannot write {four} video here (try .mp4 or .avi)")
        self._w.write(img)
        self.frames += 1

    def close(self) -> None:
        if self._w is not None:
            self._w.release()


class CaptureTrigger:
    """Save the frame when faces have shown ``emotion`` for ``hold`` analysed frames in a row.

    ``all_faces``: every visible face must qualify (else any one is enough). One capture per occasion: after
    saving, the trigger re-arms only once the condition has stopped holding (someone stopped smiling, a face
    left or arrived), so a long smile gives one picture, not one every ``hold`` frames.
    """

    def __init__(self, emotion: str, out_dir: str | Path, hold: int = 5, all_faces: bool = False) -> None:
        self.emotion, self.hold, self.all_faces = emotion, max(1, hold), all_faces
        self.out_dir = Path(out_dir)
        self.counts: dict[int, int] = {}
        self.armed = True
        self.saved: list[Path] = []

    def update(self, frame: Frame, faces: Sequence[TrackedFace]) -> Path | None:
        """Feed one analysed frame; returns the saved file's path when this frame was captured."""
        self.counts = {f.track_id: (self.counts.get(f.track_id, 0) + 1 if f.label == self.emotion else 0)
                       for f in faces}
        ok = [self.counts[f.track_id] >= self.hold for f in faces]
        holds = bool(faces) and (all(ok) if self.all_faces else any(ok))
        if not holds:
            self.armed = True
            return None
        if not self.armed:
            return None
        self.armed = False
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"{self.emotion}_frame{frame.index:06d}.jpg"
        if not cv2.imwrite(str(path), frame.image):
            raise VideoSourceError(f"{path}: cannot write the captured frame")
        self.saved.append(path)
        return path


def display_available() -> tuple[bool, str]:
    """Whether ``--show`` can open a window here, and why not."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY/WAYLAND_DISPLAY not set)"
    try:
        with _Quiet():
            cv2.namedWindow("emoscope", cv2.WINDOW_NORMAL)
            cv2.destroyWindow("emoscope")
    except cv2.error:
        return False, "this OpenCV build has no GUI (opencv-python-headless); install opencv-python to use --show"
    return True, ""


@dataclass
class VideoReport:
    """What a :func:`run_video` call did."""

    source: str
    frames: int = 0
    analysed: int = 0
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0
    wall_s: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)
    summary_text: str = ""
    captures: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def run_video(
    source: FrameSource,
    recognizer: Recognizer,
    tracker: FaceTracker | None = None,
    every: int = 1,
    out: str | Path | None = None,
    csv_path: str | Path | None = None,
    timeline_png: str | Path | None = None,
    capture: CaptureTrigger | None = None,
    show: bool = False,
    max_frames: int | None = None,
    on_frame: Any = None,
) -> VideoReport:
    """Analyse a source end to end with the chosen outputs; streams, so memory does not grow with length.

    ``on_frame(result)`` is called for each frame (progress display). ``show`` opens a window (press q to stop).
    """
    tracker = tracker or FaceTracker(classes=recognizer.classes)
    classes = recognizer.classes
    summary, timeline = EmotionSummary(classes), Timeline(classes)
    log = CsvLog(csv_path, classes) if csv_path else None
    writer = VideoOut(out, source.fps) if out else None
    report = VideoReport(source.describe())
    dt = every / source.fps
    start = time.perf_counter()
    try:
        for res in analyze(source, recognizer, tracker, every, max_frames):
            report.frames += 1
            report.seconds = res.frame.t
            if res.analysed:
                report.analysed += 1
                summary.add(res.faces, res.frame.t, dt)
                timeline.add(res.faces, res.frame.t, dt)
                if log:
                    log.add(res.frame, res.faces)
                if capture and (path := capture.update(res.frame, res.faces)):
                    report.captures.append(str(path))
            if writer or show:
                img = draw_faces(res.frame.image, res.faces)
                if writer:
                    writer.write(img)
                if show:
                    cv2.imshow("emoscope (q to quit)", img)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        break
            if on_frame:
                on_frame(res)
    finally:
        source.close()
        if log:
            log.close()
        if writer:
            writer.close()
        if show:
            cv2.destroyAllWindows()
    report.wall_s = time.perf_counter() - start
    report.skipped, report.problems = source.skipped, list(source.problems)
    report.summary, report.summary_text = summary.as_dict(), summary.format()
    if out:
        report.outputs["video"] = str(out)
    if log:
        report.outputs["csv"] = str(csv_path)
    if timeline_png:
        report.outputs["timeline"] = str(timeline.save_png(timeline_png, f"emotions over time: {source.name}"))
    return report
