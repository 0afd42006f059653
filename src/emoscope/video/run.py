"""Running a video end to end: cuts, the recognizer on each frame, the tracker, smoothing and the outputs.

A file is read once for the analysis; with ``smoothing="hmm"`` each whole track is then re-smoothed offline
(Viterbi, see :mod:`.smoothing`) and the annotated video, if asked for, is written in a second pass over the
file, so its labels are the final ones. Webcams and streams (and the causal smoothers) stream: every output
is written as the frames come, with flat memory.

Speed: a file is read ahead (decoded, tested for a cut and resized for the detector) in a thread of its own
and the annotated video is encoded in another, while the main thread runs the models (one thread each) with
staged detection (:class:`~emoscope.video.tracking.FaceFinder`); ``benchmarks/video_quality.py --only speed``
measures each feature's cost.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Iterable, Iterator
from contextlib import closing, suppress
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..annotate import draw_faces
from ..recognizer import Recognizer
from .outputs import CaptureTrigger, CsvLog, EmotionSummary, Timeline
from .shots import ShotDetector
from .smoothing import posteriors, viterbi
from .sources import Frame, FrameSource, Prefetch, open_source
from .tracking import RECHECK_S, FaceFinder, FaceTracker, TrackedFace
from .writer import BackgroundVideoOut, VideoOut


@dataclass
class FrameResult:
    """One frame of :func:`analyze`: ``analysed`` is False on frames skipped by ``every`` (faces carried over);
    ``shot`` is the camera shot (0-based) and ``cut`` True on a shot's first frame."""

    frame: Frame
    faces: list[TrackedFace]
    analysed: bool
    shot: int = 0
    cut: bool = False


def analyze(source: Iterable[Frame], recognizer: Recognizer, tracker: FaceTracker, every: int = 1,
            max_frames: int | None = None, shots: ShotDetector | None = None,
            finder: FaceFinder | None = None) -> Iterator[FrameResult]:
    """Run the recognizer on every ``every``-th frame and track the faces; yields one result per frame.

    With ``shots``, every frame is checked for a cut, and a cut ends all tracks (``tracker.new_shot()``).
    A file or folder source is read ahead, and checked for cuts, in a background thread (:class:`Prefetch`).
    ``finder``: how faces are found (default ``FaceFinder(recognizer)``: the recognizer's faces, with one
    thread per model and the short-range detector skipped while the full-range one finds every tracked face).
    """
    if every < 1:
        raise ValueError("every must be >= 1")
    if max_frames is not None and max_frames < 1:
        raise ValueError("max_frames must be 1 or more")
    finder = finder or FaceFinder(recognizer)

    def ahead(fr: Frame) -> tuple[bool, Any]:  # in the reading thread for files: the cut test, the resizing
        hit = bool(shots.update(fr.image, fr.t)) if shots else False
        return hit, (finder.prepare(fr.image) if every == 1 else None)

    frames = _read(source, ahead, max_frames)
    last: list[TrackedFace] = []
    try:
        for n, (frame, (hit, prepared)) in enumerate(frames):
            if max_frames is not None and n >= max_frames:
                break
            cut = hit and n > 0
            if cut:
                tracker.new_shot()
                last = []
            if n % every == 0 or cut:
                faces = finder.find(frame.image, frame.t, tracker, full=cut, prepared=prepared)
                last = tracker.update(faces, frame.t)
                yield FrameResult(frame, last, True, tracker.shot, cut)
            else:
                yield FrameResult(frame, last, False, tracker.shot, cut)
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()


def _read(source: Iterable[Frame], work: Any, limit: int | None) -> Iterable[tuple[Frame, Any]]:
    """``(frame, work(frame))`` pairs: read ahead in a thread for files and folders, as they come for live
    sources (a webcam read ahead would lag) and for plain iterables."""
    if isinstance(source, FrameSource) and not getattr(source, "live", False):
        return Prefetch(source, work, limit)
    return ((fr, work(fr) if work else None) for fr in islice(source, limit))


class FaceTable:
    """Every tracked face of every analysed frame, stored compactly (flat typed arrays: about 100 bytes per face
    per frame with seven emotions), so a long file's offline smoothing and tables stay small in memory.

    :meth:`resmooth` replaces the causal labels by the whole-track Viterbi path and forward-backward
    posteriors; :meth:`frames` gives back :class:`TrackedFace` lists per analysed frame; :meth:`rows` flat dicts.
    """

    def __init__(self, classes: tuple[str, ...]) -> None:
        self.classes, self.k = classes, len(classes)
        self.index, self.shot, self.first, self.count = array("q"), array("i"), array("q"), array("i")
        self.t = array("d")
        self.track, self.box, self.label = array("i"), array("i"), array("b")
        self.score, self.raw, self.smooth = array("f"), array("f"), array("f")

    def __len__(self) -> int:
        return len(self.track)

    def add(self, frame: Frame, faces: list[TrackedFace], shot: int) -> None:
        self.index.append(frame.index)
        self.t.append(frame.t)
        self.shot.append(shot)
        self.first.append(len(self.track))
        self.count.append(len(faces))
        for f in faces:
            self.track.append(f.track_id)
            self.box.extend(int(v) for v in f.box)
            self.score.append(float(f.score))
            self.raw.extend(f.probs.get(c, 0.0) for c in self.classes)
            self.smooth.extend(f.smoothed.get(c, 0.0) for c in self.classes)
            self.label.append(self.classes.index(f.label) if f.label in self.classes else 0)

    def resmooth(self, tracker: FaceTracker) -> None:
        """Whole-track smoothing: Viterbi labels and forward-backward probabilities, track by track."""
        times = np.repeat(np.frombuffer(self.t, np.float64), np.frombuffer(self.count, np.int32))
        tracks = np.frombuffer(self.track, np.int32)
        raw = np.frombuffer(self.raw, np.float32).reshape(-1, self.k).astype(np.float64)
        smooth = np.frombuffer(self.smooth, np.float32).reshape(-1, self.k)  # a view: written in place
        label = np.frombuffer(self.label, np.int8)
        for tid in np.unique(tracks):
            idx = np.flatnonzero(tracks == tid)
            label[idx] = viterbi(raw[idx], times[idx], tracker.hmm)
            smooth[idx] = posteriors(raw[idx], times[idx], tracker.hmm)

    def _face(self, i: int, shot: int) -> TrackedFace:
        c, k = self.classes, self.k
        return TrackedFace(self.track[i], tuple(self.box[4 * i : 4 * i + 4]), self.score[i],
                           dict(zip(c, self.raw[k * i : k * i + k])), dict(zip(c, self.smooth[k * i : k * i + k])),
                           c[self.label[i]], shot)

    def frames(self) -> Iterator[tuple[Frame, list[TrackedFace], int]]:
        """(frame without its picture, its faces, its shot) per analysed frame, in order."""
        empty = np.empty((0,), np.uint8)
        for index, t, shot, first, n in zip(self.index, self.t, self.shot, self.first, self.count):
            yield Frame(index, t, empty), [self._face(i, shot) for i in range(first, first + n)], shot

    def rows(self) -> list[dict[str, Any]]:
        """One flat dict per face per analysed frame (the CSV's columns)."""
        return [_row(frame, f, self.classes) for frame, faces, _ in self.frames() for f in faces]


@dataclass
class VideoReport:
    """What a :func:`run_video` call did, and what it found.

    :attr:`rows`: one dict per face per analysed frame (``time_s, frame, shot, track_id, x, y, w, h, score,
    label, confidence``, then ``raw_<emotion>`` and ``smooth_<emotion>``; shots and faces numbered from 1),
    kept for files (``keep_rows``). :attr:`tracks`: one dict per face (track): the share of time in each
    emotion, the dominant one, its confidence and the number of label changes. :meth:`to_frame` gives either
    as a pandas DataFrame. ``summary`` holds the same per-track figures nested, plus the shots.
    """

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
    cuts: list[float] = field(default_factory=list)
    table: FaceTable | None = field(default=None, repr=False)

    @property
    def fps(self) -> float:
        """Frames processed per second of wall time."""
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One dict per face per analysed frame ([] when rows were not kept)."""
        return self.table.rows() if self.table is not None else []

    @property
    def tracks(self) -> list[dict[str, Any]]:
        """One flat dict per face (track): id, shot (from 1), times, frames, dominant, confidence, share_*."""
        out = []
        for tid, tr in self.summary.get("tracks", {}).items():
            row = {"track_id": tid, "shot": tr["shot"] + 1, "first_s": tr["first_s"], "last_s": tr["last_s"],
                   "frames": tr["frames"], "dominant": tr["dominant"], "confidence": tr["confidence"],
                   "label_changes": tr["label_changes"]}
            row.update({f"share_{k}": v for k, v in tr["share"].items()})
            out.append(row)
        return out

    def to_frame(self, kind: str = "faces") -> Any:
        """``"faces"``: :attr:`rows` (one per face per analysed frame); ``"tracks"``: :attr:`tracks`. Needs
        pandas (``pip install 'emoscope[dataframe]'``)."""
        if kind not in ("faces", "tracks"):
            raise ValueError(f"kind must be 'faces' or 'tracks', got {kind!r}")
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_frame needs pandas: pip install 'emoscope[dataframe]'") from None
        return pd.DataFrame(self.rows if kind == "faces" else self.tracks)


class _Outputs:
    """The per-frame outputs of one run: summary, timeline, CSV file, captures."""

    def __init__(self, classes: tuple[str, ...], dt: float, csv_path: str | Path | None,
                 capture: CaptureTrigger | None) -> None:
        self.classes, self.dt, self.capture = classes, dt, capture
        self.summary, self.timeline = EmotionSummary(classes), Timeline(classes)
        self.log = CsvLog(csv_path, classes) if csv_path else None
        self.captures: list[str] = []

    def add(self, frame: Frame, faces: list[TrackedFace], shot: int) -> None:
        """Count one analysed frame."""
        self.summary.add(faces, frame.t, self.dt, shot)
        self.timeline.add(faces, frame.t, self.dt)
        if self.log:
            self.log.add(frame, faces, shot)

    def close(self) -> None:
        if self.log:
            self.log.close()


def _row(frame: Frame, f: TrackedFace, classes: tuple[str, ...]) -> dict[str, Any]:
    x, y, w, h = f.box
    row: dict[str, Any] = {"time_s": round(frame.t, 4), "frame": frame.index, "shot": f.shot + 1,
                           "track_id": f.track_id, "x": x, "y": y, "w": w, "h": h, "score": round(f.score, 4),
                           "label": f.label, "confidence": round(f.confidence, 4)}
    row.update({f"raw_{c}": round(f.probs.get(c, 0.0), 4) for c in classes})
    row.update({f"smooth_{c}": round(f.smoothed.get(c, 0.0), 4) for c in classes})
    return row


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
    shots: ShotDetector | bool = True,
    offline: bool | None = None,
    keep_rows: bool | None = None,
    recheck_s: float = RECHECK_S,
) -> VideoReport:
    """Analyse a source end to end with the chosen outputs and return a :class:`VideoReport`.

    ``tracker``: default ``FaceTracker(smoothing="hmm")``. ``shots``: True (default) ends tracks at camera
    cuts (:class:`ShotDetector`), False never. ``offline``: re-smooth whole tracks (Viterbi) before writing;
    default True for files with ``hmm`` smoothing, False for webcams and streams (their labels are causal).
    ``keep_rows``: keep one row per face per analysed frame in the report (default: files yes, live no).
    ``on_frame(result)`` is called for each frame (progress display). ``show`` opens a window (q to stop);
    the smile-triggered ``capture`` and the window always use the causal labels, as they happen.
    ``recheck_s``: while the full-range detector finds every tracked face, the whole detector runs only this
    often (see :class:`FaceFinder`; 0: on every frame). Files are read, and the annotated video encoded, in
    background threads.
    """
    tracker = tracker or FaceTracker(classes=recognizer.classes)
    tracker.classes = tuple(tracker.classes or recognizer.classes)
    live = bool(getattr(source, "live", False))
    offline = (tracker.smoothing == "hmm" and not live) if offline is None else offline
    keep = (not live) if keep_rows is None else keep_rows
    detector = ShotDetector() if shots is True else (shots or None)
    audio = getattr(source, "path", None) if getattr(source, "has_audio", False) else None
    writer = BackgroundVideoOut(VideoOut(out, source.fps, audio)) if out else None
    finder = FaceFinder(recognizer, recheck_s)
    outs = _Outputs(tracker.classes, every / source.fps, None if offline else csv_path, capture)
    table = FaceTable(tracker.classes) if (offline or keep) else None
    report = VideoReport(source.describe())
    start = time.perf_counter()
    try:
        try:
            _first_pass(source, finder, tracker, every, max_frames, detector, outs, table, offline,
                        None if offline else writer, show, on_frame, report)
        finally:
            source.close()
            outs.close()
            if show:
                cv2.destroyAllWindows()
        if offline and table is not None:
            outs = _finish_offline(table, tracker, outs, csv_path)
            if writer:
                _second_pass(source, table, writer, report.frames)
    except BaseException:
        if writer:  # end the writing thread; the error that stopped the run is the one to see
            with suppress(Exception):
                writer.close()
        raise
    if writer:
        writer.close()
    report.wall_s = time.perf_counter() - start
    report.skipped, report.problems = source.skipped, list(source.problems)
    report.summary, report.summary_text = outs.summary.as_dict(), outs.summary.format()
    report.captures, report.table = outs.captures, table if keep else None
    report.cuts = list(detector.cuts) if detector else []
    _note_outputs(report, out, csv_path, outs.timeline, timeline_png, source.name)
    return report


def _first_pass(source: FrameSource, finder: FaceFinder, tracker: FaceTracker, every: int,
                max_frames: int | None, detector: ShotDetector | None, outs: _Outputs, table: FaceTable | None,
                offline: bool, writer: BackgroundVideoOut | None, show: bool, on_frame: Any,
                report: VideoReport) -> None:
    """The analysis loop: every frame once; streamed outputs are written here, offline ones only stored."""
    results = analyze(source, finder.recognizer, tracker, every, max_frames, detector, finder)
    with closing(results):  # stops the reading thread before the source is closed, also on 'q'
        _consume(results, outs, table, offline, writer, show, on_frame, report)


def _consume(results: Iterator[FrameResult], outs: _Outputs, table: FaceTable | None, offline: bool,
             writer: BackgroundVideoOut | None, show: bool, on_frame: Any, report: VideoReport) -> None:
    """Count, store and write each result of :func:`analyze`."""
    for res in results:
        report.frames += 1
        report.seconds = res.frame.t
        if res.analysed:
            report.analysed += 1
            if table is not None:
                table.add(res.frame, res.faces, res.shot)
            if not offline:
                outs.add(res.frame, res.faces, res.shot)
            if outs.capture and (path := outs.capture.update(res.frame, res.faces)):
                outs.captures.append(str(path))
        if writer or show:
            img = draw_faces(res.frame.image, res.faces)
            if writer:
                writer.write(img, res.frame.t)
            if show:
                cv2.imshow("emoscope (q to quit)", img)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    break
        if on_frame:
            on_frame(res)


def _finish_offline(table: FaceTable, tracker: FaceTracker, first: _Outputs, csv_path: str | Path | None
                    ) -> _Outputs:
    """Re-smooth every track over its whole length, then count the frames into fresh outputs."""
    table.resmooth(tracker)
    outs = _Outputs(first.classes, first.dt, csv_path, first.capture)
    outs.captures = first.captures
    try:
        for frame, faces, shot in table.frames():
            outs.add(frame, faces, shot)
    finally:
        outs.close()
    return outs


def _second_pass(source: FrameSource, table: FaceTable, writer: BackgroundVideoOut, n_frames: int) -> None:
    """Read the file again and write each frame with its final (offline-smoothed) faces.

    Three threads overlap: reading ahead (:class:`Prefetch`), drawing here, encoding in the writer's thread.
    """
    again = open_source(getattr(source, "path", source.name), fps=getattr(source, "fixed_fps", source.fps))
    analysed = table.frames()
    nxt = next(analysed, None)
    faces: list[TrackedFace] = []
    frames = Prefetch(again, limit=n_frames)
    try:
        for frame, _ in frames:
            while nxt is not None and nxt[0].index <= frame.index:
                if nxt[0].index == frame.index:
                    faces = nxt[1]
                nxt = next(analysed, None)
            # the picture was decoded for this loop alone: draw on it in place
            writer.write(draw_faces(frame.image, faces, copy=False), frame.t)
    finally:
        frames.close()
        again.close()


def _note_outputs(report: VideoReport, out: str | Path | None, csv_path: str | Path | None, timeline: Timeline,
                  timeline_png: str | Path | None, name: str) -> None:
    if out:
        report.outputs["video"] = str(out)
    if csv_path:
        report.outputs["csv"] = str(csv_path)
    if timeline_png:
        report.outputs["timeline"] = str(timeline.save_png(timeline_png, f"emotions over time: {name}"))
