"""Running a video end to end: the recognizer on each frame, the tracker, and the chosen outputs."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from ..annotate import draw_faces
from ..recognizer import Recognizer
from .outputs import CaptureTrigger, CsvLog, EmotionSummary, Timeline, VideoOut
from .sources import Frame, FrameSource
from .tracking import FaceTracker, TrackedFace


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
    _note_outputs(report, out, csv_path, timeline, timeline_png, source.name)
    return report


def _note_outputs(report: VideoReport, out: str | Path | None, csv_path: str | Path | None, timeline: Timeline,
                  timeline_png: str | Path | None, name: str) -> None:
    if out:
        report.outputs["video"] = str(out)
    if csv_path:
        report.outputs["csv"] = str(csv_path)
    if timeline_png:
        report.outputs["timeline"] = str(timeline.save_png(timeline_png, f"emotions over time: {name}"))
