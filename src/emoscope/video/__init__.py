"""Emotions over time: frame sources, face tracking with per-face smoothing, and the video writers.

- :mod:`.sources`: :func:`open_source` opens a video file, a webcam index (``0``), a stream URL (``rtsp://``,
  ``http://``, ...) or a folder of frame images and yields :class:`Frame` objects one at a time.
- :mod:`.tracking`: :class:`FaceTracker` gives each face a stable id and smooths its probabilities over that
  track only (:mod:`.smoothing`).
- :mod:`.outputs`: the summary, timeline, CSV, annotated video and smile-triggered captures.
- :mod:`.run`: :func:`run_video` runs a source end to end with the chosen outputs.
"""

from .outputs import VIDEO_CODECS, CaptureTrigger, CsvLog, EmotionSummary, Timeline, VideoOut, display_available
from .run import FrameResult, VideoReport, analyze, run_video
from .smoothing import SMOOTHING
from .sources import VIDEO_EXTENSIONS, Frame, FrameSource, VideoSourceError, open_source
from .tracking import FaceTracker, TrackedFace, box_iou

__all__ = [
    "SMOOTHING", "VIDEO_CODECS", "VIDEO_EXTENSIONS", "CaptureTrigger", "CsvLog", "EmotionSummary", "FaceTracker",
    "Frame", "FrameResult", "FrameSource", "TrackedFace", "Timeline", "VideoOut", "VideoReport", "VideoSourceError",
    "analyze", "box_iou", "display_available", "open_source", "run_video",
]
