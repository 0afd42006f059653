"""Frame sources: a video file, a webcam, a network stream or a folder of frame images, one frame at a time.

Problems the user can fix raise :class:`VideoSourceError`; a corrupt frame is skipped, counted and reported,
and the run carries on.
"""

from __future__ import annotations

import math
import queue
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..datasets.images import IMAGE_EXTENSIONS, ImageReadError
from ..errors import EmoscopeError
from ..recognizer import read_image

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
VIDEO_EXTENSIONS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif"}


class VideoSourceError(EmoscopeError, ValueError):
    """A video source cannot be opened or read (missing file, no such webcam, unreachable stream, ...)."""



@dataclass
class Frame:
    """One decoded frame: position in the source (0-based), time in seconds, uint8 BGR image.

    ``t`` is the source's own timestamp where it has one (a file read through PyAV: the presentation time,
    which may start above 0 and may step unevenly in a variable-frame-rate file), else ``index / fps``, or
    the seconds since the start of a live source.
    """

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
        """Frames in order. Failed reads count as skipped only when a good frame follows: a file's frame count
        is the container's estimate, and reads past the real end are the end, not lost frames."""
        index, failures, t0 = 0, 0, time.monotonic()
        pending: list[str] = []
        while True:
            ok, img = self.cap.read()
            if not ok or img is None or img.size == 0:
                more = self.live or (self.frame_count is not None and index < self.frame_count - 1)
                if not more:
                    break
                failures += 1
                pending.append(f"frame {index}: could not be decoded")
                index += 1
                if failures >= self.max_failures:
                    self.problems.append(f"stopped after {failures} unreadable frames in a row")
                    break
                continue
            for reason in pending:
                self._skip(reason)
            pending, failures = [], 0
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


class AvFileSource(FrameSource):
    """A video file decoded by PyAV (its own FFmpeg): frames carry the file's presentation timestamps.

    Times follow the file, so a stream that starts late (``t`` of the first frame above 0) or a variable
    frame rate is kept as it is; ``fps`` (if given) replaces them by ``index / fps``. A packet that fails to
    decode is skipped, counted and reported. ``has_audio`` tells the writer there is sound to copy.
    """

    kind = "file"

    def __init__(self, path: Path, fps: float | None = None) -> None:
        import av

        try:
            self.container = av.open(str(path))
        except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
            hint = "" if path.suffix.lower() in VIDEO_EXTENSIONS else " (is it a video file?)"
            raise VideoSourceError(f"{path}: cannot open as a video: corrupt, truncated or unsupported format{hint} "
                                   f"({exc.__class__.__name__})") from None
        if not self.container.streams.video:
            audio = bool(self.container.streams.audio)
            self.container.close()
            what = "has sound but no video stream" if audio else "has no video stream"
            raise VideoSourceError(f"{path}: {what}; give a file with pictures")
        self.stream = self.container.streams.video[0]
        self.stream.thread_type = "AUTO"  # frame threads: decoding is not the bottleneck then
        rate = self.stream.average_rate or self.stream.guessed_rate
        own = float(rate) if rate and 0 < float(rate) <= 1000 else 25.0
        super().__init__(str(path), fps or own)
        self.path, self.fixed_fps = path, fps
        self.has_audio = bool(self.container.streams.audio)
        n = self.stream.frames
        dur = self.stream.duration * self.stream.time_base if self.stream.duration else None
        if not n and dur is None and self.container.duration:
            dur = self.container.duration / 1_000_000
        self.frame_count = int(n) if n else (round(float(dur) * own) if dur else None)

    def __iter__(self) -> Iterator[Frame]:
        import av

        index = 0
        try:
            for packet in self.container.demux(self.stream):
                try:
                    frames = packet.decode()
                except av.FFmpegError as exc:
                    self._skip(f"packet at {_packet_time(packet)}: {exc.__class__.__name__}")
                    continue
                for fr in frames:
                    own = fr.time if fr.time is not None else index / self.fps
                    t = index / self.fixed_fps if self.fixed_fps else own
                    yield Frame(index, float(t), fr.to_ndarray(format="bgr24"))
                    index += 1
        except av.FFmpegError as exc:  # a broken container: keep what was read, say where it stopped
            self.problems.append(f"stopped reading after frame {index - 1}: {exc.__class__.__name__}")

    def close(self) -> None:
        self.container.close()


class Prefetch:
    """Frames read ahead in a background thread, each with ``work(frame)`` done there too (the cut test).

    PyAV and OpenCV decode (and OpenCV resizes) without holding Python's lock, so on two cores the next frames
    are read while the models look at this one. Iterate for ``(frame, work(frame))`` in order; at most
    ``limit`` frames are read (and worked on). :meth:`close` (also at the end of iteration) stops the thread
    and waits for it, so the source can be closed safely afterwards. An error in the thread is raised here.
    Only for files and folders: a webcam or stream read ahead would show a backlog, not the newest frame.
    """

    _END = object()

    def __init__(self, frames: Iterable[Frame], work: Callable[[Frame], Any] | None = None,
                 limit: int | None = None, depth: int = 8) -> None:
        self._frames, self._work, self._limit = frames, work, limit
        self._queue: queue.Queue = queue.Queue(max(1, depth))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="emoscope-read", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _read(self) -> None:
        it = iter(self._frames)
        try:
            for n, frame in enumerate(it):
                if self._stop.is_set() or (self._limit is not None and n >= self._limit):
                    break
                if not self._put((frame, self._work(frame) if self._work else None)):
                    break
        except BaseException as exc:  # handed to the reading side, raised there
            self._put((self._END, exc))
            return
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        self._put((self._END, None))

    def __iter__(self) -> Iterator[tuple[Frame, Any]]:
        try:
            while True:
                frame, extra = self._queue.get()
                if frame is self._END:
                    if extra is not None:
                        raise extra
                    return
                yield frame, extra
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading and wait for the thread (frames already read are dropped)."""
        self._stop.set()  # the thread sees it within 0.1 s, even while waiting on a full queue
        self._thread.join()
        while not self._queue.empty():
            self._queue.get_nowait()


def _packet_time(packet: Any) -> str:
    if packet.pts is None or packet.time_base is None:
        return "an unknown time"
    return f"{float(packet.pts * packet.time_base):.3f} s"


def _have_av() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def open_source(source: str | int | Path, fps: float | None = None, timeout: float = 8.0) -> FrameSource:
    """Open a video file, webcam index, stream URL or frame folder; raise :class:`VideoSourceError` if it can't.

    ``fps`` overrides the frame rate (needed for folders, default 25; must be above 0). ``timeout`` bounds
    opening a stream. Files are read through PyAV when it is installed (``pip install 'emoscope[video]'``:
    the file's own timestamps), else through OpenCV. Iterate the source for :class:`Frame` objects; close it
    (or use ``with``) when done.
    """
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
        raise VideoSourceError(f"fps must be above 0 and at most 1000 frames per second, got {fps:g}")
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
    if _have_av():
        return AvFileSource(p, fps)
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

