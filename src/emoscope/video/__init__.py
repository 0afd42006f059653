"""Emotions over time: frame sources, cuts, face tracking, smoothing that holds labels still, and outputs.

- :mod:`.sources`: :func:`open_source` opens a video file, a webcam index (``0``), a stream URL (``rtsp://``,
  ``http://``, ...) or a folder of frame images; iterate it for :class:`Frame` objects (index, time, image).
- :mod:`.shots`: :class:`ShotDetector` finds camera cuts; no track crosses one.
- :mod:`.tracking`: :class:`FaceTracker` gives each face a stable id (1, 2, ...) through gaps of up to a
  second or so, and smooths its probabilities over that track only (:mod:`.smoothing`).
- :mod:`.outputs` and :mod:`.writer`: the summary, timeline, CSV, smile-triggered captures, and the annotated
  video (H.264 / VP9 with the source's sound, through PyAV).
- :mod:`.run`: :func:`run_video` runs a source end to end and returns a :class:`VideoReport` (a table per
  face per frame in ``rows``, one per face in ``tracks``, ``to_frame()`` for pandas).

The shortest use::

    from emoscope import Recognizer
    from emoscope.video import open_source, run_video

    report = run_video(open_source("clip.mp4"), Recognizer(), out="annotated.mp4")
    print(report.summary_text)
    df = report.to_frame("tracks")  # one row per face: share of time per emotion, confidence
"""

from .outputs import CaptureTrigger, CsvLog, EmotionSummary, Timeline, display_available
from .run import FaceTable, FrameResult, VideoReport, analyze, run_video
from .shots import ShotDetector
from .smoothing import SMOOTHING, CausalHmm, HmmParams, posteriors, viterbi
from .sources import VIDEO_EXTENSIONS, Frame, FrameSource, VideoSourceError, open_source
from .tracking import FaceTracker, TrackedFace, box_iou
from .writer import VIDEO_CODECS, VideoOut

__all__ = [
    "SMOOTHING", "VIDEO_CODECS", "VIDEO_EXTENSIONS", "CaptureTrigger", "CausalHmm", "CsvLog", "EmotionSummary",
    "FaceTable", "FaceTracker", "Frame", "FrameResult", "FrameSource", "HmmParams", "ShotDetector", "TrackedFace",
    "Timeline", "VideoOut", "VideoReport", "VideoSourceError", "analyze", "box_iou", "display_available",
    "open_source", "posteriors", "run_video", "viterbi",
]
