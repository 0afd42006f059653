"""Face tracking: a stable id per face across frames, with probabilities smoothed over that track only.

:class:`FaceTracker` is causal (it sees only the past), so the same tracker serves files, webcams and the web
page's live stream. Each track keeps its last box and a velocity; a new frame's faces are matched to the
tracks by one optimal assignment (Hungarian method, ``scipy.optimize.linear_sum_assignment``) on the overlap
with the predicted box, the centre distance and the size. A track that finds no face is kept, coasting on its
velocity, for up to ``max_gap`` seconds, with a search radius that grows with the time it has been missing:
a face hidden behind a hand or a microphone for a second keeps its id when it comes back. :meth:`new_shot`
ends every track at a cut (ids keep counting up, so an id never names two people).

Why a tracker of our own: the maintained ByteTrack / OC-SORT packages do not fit this install. ``trackers``
needs ``opencv-python`` (the GUI build, which fights ``opencv-python-headless`` over ``cv2``), ``norfair``
pins ``numpy<2``, ``boxmot`` pulls a detector stack, and ``supervision`` 0.31 no longer ships a tracker
(checked with ``pip install --dry-run`` and the wheels' metadata, 2026-12-03).
The few-faces case here needs neither their detection-score cascade nor re-identification networks.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..faces import BlazeFaceDetector, Detection, big_enough
from ..labels import EMOTIONS
from ..recognizer import Face, Recognizer, _OnnxBackend
from .smoothing import SMOOTHING, CausalHmm, HmmParams, smooth_step

_NO = 1e6  # cost of a forbidden pairing


@dataclass
class TrackedFace:
    """A face in one frame: its track id (1, 2, ... in order of first appearance), box, detector score, raw
    probabilities, probabilities smoothed over that track only, the smoothed label, and the shot (0-based)."""

    track_id: int
    box: tuple[int, int, int, int]
    score: float
    probs: dict[str, float]  # raw, this frame
    smoothed: dict[str, float]  # smoothed over this track only
    label: str  # the smoothed label
    shot: int = 0

    @property
    def confidence(self) -> float:
        """The classifier's own probability for the shown label in this frame (raw, not smoothed: the offline
        HMM's probabilities are near 0 or 1 and say how sure the model of label changes is, not the face)."""
        return float(self.probs.get(self.label, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "track_id": self.track_id,
            "shot": self.shot,
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
    velocity: tuple[float, float] = (0.0, 0.0)  # centre, pixels per second
    hmm: CausalHmm | None = None
    label: int = 0

    def predicted(self, t: float) -> tuple[float, float, float, float]:
        """The box moved on by the velocity for up to half a second (a longer guess is worse than none)."""
        dt = min(max(0.0, t - self.last_t), 0.5)
        x, y, w, h = self.box
        return (x + self.velocity[0] * dt, y + self.velocity[1] * dt, w, h)


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
    """Stable track ids across frames plus per-track smoothing (see the module doc).

    Matching: a face pairs with a track when their IoU (with the predicted box) is at least ``iou_threshold``,
    or their centres are closer than ``center_threshold`` x the box side (more while the track is missing:
    + 0.5 per second) with a similar size. A track is dropped after ``max_gap`` seconds without a face (or
    ``max_missing`` updates, if given).
    Smoothing: ``"hmm"`` (default) the causal label HMM with hysteresis (``hmm``: :class:`HmmParams`);
    ``"ema"`` with time constant ``time_constant`` seconds; ``"vote"`` = share of frames per label over the
    last ``time_constant`` seconds; or ``"none"``. For files, :func:`~emoscope.video.run_video` then re-smooths
    each whole track offline (Viterbi).
    """

    def __init__(
        self,
        smoothing: str = "hmm",
        time_constant: float = 0.5,
        iou_threshold: float = 0.3,
        max_missing: int | None = None,
        center_threshold: float = 0.6,
        classes: Sequence[str] | None = None,
        max_gap: float = 1.5,
        hmm: HmmParams | None = None,
    ) -> None:
        if smoothing not in SMOOTHING:
            raise ValueError(f"smoothing must be one of {SMOOTHING}, got {smoothing!r}")
        if time_constant < 0:
            raise ValueError("time_constant must be >= 0 seconds")
        if not max_gap >= 0:
            raise ValueError(f"max_gap must be >= 0 seconds, got {max_gap}")
        self.smoothing, self.time_constant = smoothing, float(time_constant)
        self.iou_threshold, self.max_missing, self.center_threshold = iou_threshold, max_missing, center_threshold
        self.max_gap, self.hmm = float(max_gap), hmm or HmmParams()
        self.classes: tuple[str, ...] | None = tuple(classes) if classes else None
        self.tracks: list[_Track] = []
        self._next_id = 1
        self.shot = 0

    def reset(self) -> None:
        """Forget every track (ids restart at 1, shots at 0)."""
        self.tracks, self._next_id, self.shot = [], 1, 0

    def new_shot(self) -> None:
        """A cut: end every track; the next faces get new ids (ids keep counting up)."""
        self.tracks = []
        self.shot += 1

    def _cost(self, b: tuple[int, int, int, int], tr: _Track, t: float) -> float:
        """Cost of pairing face box ``b`` with track ``tr`` at time ``t``, or ``_NO`` if they cannot pair."""
        gap = max(0.0, t - tr.last_t)
        pb = tr.predicted(t)
        iou = box_iou(b, pb)
        side = max(pb[2], pb[3], b[2], b[3], 1)
        d = math.hypot(b[0] + b[2] / 2 - pb[0] - pb[2] / 2, b[1] + b[3] / 2 - pb[1] - pb[3] / 2) / side
        ratio = max(b[2], 1) / max(pb[2], 1)
        lost = gap > 0.25  # missing for a while: the face may come back a little elsewhere
        size_ok = (0.5 < ratio < 2.0) if lost else (0.6 < ratio < 1.67)
        gate = self.center_threshold + min(0.5 * gap, 0.9)
        if iou < self.iou_threshold and not (d < gate and size_ok):
            return _NO
        return (1.0 - iou) + 0.5 * d + abs(math.log(ratio)) + 0.1 * gap

    def _match(self, boxes: list[tuple[int, int, int, int]], t: float) -> dict[int, int]:
        if not boxes or not self.tracks:
            return {}
        cost = np.array([[self._cost(b, tr, t) for tr in self.tracks] for b in boxes])
        rows, cols = linear_sum_assignment(cost)
        return {int(i): int(j) for i, j in zip(rows, cols) if cost[i, j] < _NO}

    def covers(self, boxes: Sequence[Sequence[float]], t: float) -> bool:
        """Whether every live track (seen or coasting) would pair with one of ``boxes`` (x, y, w, h) at time
        ``t``: the faces the tracker follows are all there. Changes nothing."""
        if len(boxes) < len(self.tracks):
            return False
        matched = self._match([tuple(int(v) for v in b) for b in boxes], t)
        return len(matched) == len(self.tracks)

    def update(self, faces: Sequence[Face], t: float) -> list[TrackedFace]:
        """Assign the faces of the frame at time ``t`` (seconds) to tracks; returns them in the input order."""
        if self.classes is None and faces:
            self.classes = tuple(faces[0].probs)
        classes = self.classes or EMOTIONS
        boxes = [tuple(int(v) for v in f.box) for f in faces]
        matched = self._match(boxes, t)
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
                self._move(tr, boxes[i], t)
            tr.last_t, tr.missing = t, 0
            seen.add(tr.track_id)
            sm = {c: float(v) for c, v in zip(classes, tr.state)}
            out.append(TrackedFace(tr.track_id, boxes[i], float(f.score), dict(f.probs), sm, classes[tr.label],
                                   self.shot))
        for tr in self.tracks:
            if tr.track_id not in seen:
                tr.missing += 1
        self.tracks = [tr for tr in self.tracks if self._alive(tr, t)]
        return out

    def _alive(self, tr: _Track, t: float) -> bool:
        if self.max_missing is not None and tr.missing > self.max_missing:
            return False
        return t - tr.last_t <= self.max_gap

    @staticmethod
    def _move(tr: _Track, box: tuple[int, int, int, int], t: float) -> None:
        """New box; the velocity is a running average of the centre's motion (reset after a long gap)."""
        dt = t - tr.last_t
        if dt > 0:
            vx = (box[0] + box[2] / 2 - tr.box[0] - tr.box[2] / 2) / dt
            vy = (box[1] + box[3] / 2 - tr.box[1] - tr.box[3] / 2) / dt
            keep = 0.5 if dt < 0.3 else 0.0
            tr.velocity = (keep * tr.velocity[0] + (1 - keep) * vx, keep * tr.velocity[1] + (1 - keep) * vy)
        tr.box = box

    def _smooth(self, tr: _Track, p: np.ndarray, t: float, first: bool) -> None:
        if self.smoothing == "hmm":
            if tr.hmm is None:
                tr.hmm = CausalHmm(self.hmm, len(p))
            tr.state, tr.label = tr.hmm.update(p, t)
            return
        tr.state = smooth_step(self.smoothing, self.time_constant, tr.state, tr.votes, p, t, tr.last_t, first)
        tr.label = int(np.argmax(tr.state))


#: Seconds between runs of the whole detector while its first network finds every tracked face.
RECHECK_S = 0.25
_ONE_THREAD: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # classifier backend -> one-thread copy


class FaceFinder:
    """The faces of each analysed frame for a tracker: the recognizer's own detection and classification,
    made cheaper where that keeps the faces the same.

    - **One thread per model**: the detector always, the classifier unless the recognizer was given
      ``threads``. On few shared cores ONNX Runtime's default pool (a thread per core, spinning between
      runs) costs more than it gains on these small networks, and the reading and writing threads need
      the other core (``benchmarks/video_quality.py --only speed`` measures both).
    - **Staged detection** (a BlazeFace detector with both networks): the full-range network runs first, and
      when it finds every face the tracker follows (:meth:`FaceTracker.covers`) the short-range network and
      the tiles are skipped. Where the full-range network finds a face, the whole detector takes that
      network's box and keypoints anyway, so those faces are the same (boxes, crops, probabilities; only the
      detector's score is then the full-range network's own). The whole detector still runs every
      ``recheck_s`` seconds, on the first frame of a shot and on any frame where a tracked face is missing,
      so a new face that only the short-range network sees (a close-up) is found within ``recheck_s``.
      ``recheck_s=0`` runs the whole detector on every frame.
    """

    def __init__(self, recognizer: Recognizer, recheck_s: float = RECHECK_S, one_thread: bool = True) -> None:
        if not recheck_s >= 0:
            raise ValueError(f"recheck_s must be >= 0 seconds, got {recheck_s}")
        self.recognizer = _one_thread(recognizer) if one_thread else recognizer
        det = self.recognizer.detector
        self.staged = isinstance(det, BlazeFaceDetector) and len(det.models) > 1 and recheck_s > 0
        self.recheck_s = float(recheck_s)
        self._last_full: float | None = None
        self.full_runs = self.short_runs = 0  # frames with the whole detector / with its first network only

    def prepare(self, image: np.ndarray) -> Any:
        """Work on a frame that needs no tracker (resizing it for the detector's networks), so a reading
        thread can do it ahead; hand the result to :meth:`find`."""
        if not self.staged:
            return None
        return self.recognizer.detector.prepare(self.recognizer.check(image))

    def find(self, image: np.ndarray, t: float, tracker: FaceTracker, full: bool = False,
             prepared: Any = None) -> list[Face]:
        """The faces (left to right, as ``Recognizer.predict_arrays`` gives them) of the frame at ``t`` seconds;
        ``full``: run the whole detector (a cut); ``prepared``: :meth:`prepare` of this frame."""
        rec = self.recognizer
        if not self.staged:
            self.full_runs += 1
            return rec.predict_arrays([image])[0]
        img = rec.check(image)
        last = self._last_full
        due = full or last is None or not 0 <= t - last < self.recheck_s
        stopped = False

        def enough(dets: list[Detection]) -> bool:
            nonlocal stopped
            stopped = not due and tracker.covers([d.box for d in big_enough(dets, rec.min_face)], t)
            return stopped

        dets = rec.detector.detect_until(img, enough, prepared)
        if stopped:
            self.short_runs += 1
        else:
            self.full_runs += 1
            self._last_full = t
        # as Recognizer.predict_arrays: faces of at least min_face px, left to right, classified together
        dets = sorted(big_enough(dets, rec.min_face), key=lambda d: (d.box[0], d.box[1]))
        if not dets:
            return []
        probs = rec.classify(rec._crops(img, dets))
        return [rec._face(d, p) for d, p in zip(dets, probs)]


def _one_thread(rec: Recognizer) -> Recognizer:
    """The recognizer itself, or a shallow copy sharing everything but one-thread model sessions."""
    det, backend = rec.detector, rec.backend
    one_det = det.single_threaded() if isinstance(det, BlazeFaceDetector) else det
    one_backend = backend
    if (isinstance(backend, _OnnxBackend) and getattr(backend, "path", None) is not None
            and backend.sess.get_session_options().intra_op_num_threads == 0):
        one_backend = _ONE_THREAD.get(backend)
        if one_backend is None:
            one_backend = _ONE_THREAD[backend] = _OnnxBackend(backend.path, threads=1)
            one_backend.name = backend.name
    if one_det is det and one_backend is backend:
        return rec
    out = copy.copy(rec)
    out.detector, out.backend = one_det, one_backend
    return out
