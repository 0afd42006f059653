"""The annotated video writer: H.264 / VP9 through PyAV, with the source's sound and timestamps.

PyAV ships its own FFmpeg (libx264, libvpx, AAC, Opus) in its wheel, so nothing depends on a system ffmpeg
or on OpenCV's codec build (whose ``mp4v`` browsers do not play and whose ``.webm`` writer printed a warning
on every run). Frames are stamped with the source's own times, so the output stays in step with the original
(a stream that starts at 0.85 s still starts there), and the sound is copied packet by packet (or re-encoded
when the container cannot hold its codec, e.g. AAC into WebM becomes Opus).
"""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .sources import VideoSourceError

#: Video codec per output suffix: H.264 (yuv420p, plays in every browser) or VP9 in WebM, MJPEG in AVI.
VIDEO_CODECS = {".mp4": "libx264", ".m4v": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9",
                ".avi": "mjpeg"}
_OPTIONS = {"libx264": {"preset": "veryfast", "crf": "23"},
            "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "34", "b": "0"},
            "mjpeg": {"q:v": "3"}}
#: Sound codecs each container takes as they are; others are re-encoded to the second item.
_AUDIO = {".webm": ({"opus", "vorbis"}, "libopus"), ".avi": ({"mp3", "ac3", "pcm_s16le"}, "libmp3lame"),
          ".mkv": ({"aac", "mp3", "opus", "vorbis", "ac3", "flac", "pcm_s16le"}, "aac")}
_AUDIO_DEFAULT = ({"aac", "mp3", "alac", "ac3", "opus"}, "aac")
_TB = Fraction(1, 90000)
#: Up to this many pixels per frame (1280 x 720) x264 encodes on one thread: measured 1.8-1.9 ms of CPU per
#: 640 x 480 frame against 2.2-2.6 ms with its default thread pool on this 2-core machine; bigger frames keep
#: the pool, so a 4K file's encoding does not fall behind its analysis.
_ONE_THREAD_PIXELS = 1280 * 720


class VideoOut:
    """Annotated video writer, opened on the first frame (size known then); the codec follows the suffix
    (``VIDEO_CODECS``). ``audio_from``: a file whose sound is copied alongside (up to the last frame written).

    :meth:`write` takes the frame's time in seconds (the source's timestamp); without one, frames are spaced
    ``1 / fps`` apart from 0.
    """

    def __init__(self, path: str | Path, fps: float, audio_from: str | Path | None = None) -> None:
        self.path, self.fps, self.audio_from = Path(path), float(fps), audio_from
        if self.path.suffix.lower() not in VIDEO_CODECS:
            raise VideoSourceError(f"{self.path}: cannot write a {self.path.suffix or 'suffix-less'} video; name it "
                                   f"{', '.join(VIDEO_CODECS)} (.mp4 and .webm play in web browsers)")
        try:
            import av  # noqa: F401
        except ImportError:
            raise VideoSourceError("writing a video needs PyAV: pip install 'emoscope[video]'") from None
        self._out: Any = None
        self._v: Any = None
        self._audio: _AudioCopy | None = None
        self._last_pts = -1
        self.frames = 0

    def _open(self, w: int, h: int) -> None:
        import av

        self.path.parent.mkdir(parents=True, exist_ok=True)
        codec = VIDEO_CODECS[self.path.suffix.lower()]
        try:
            self._out = av.open(str(self.path), "w")
        except (av.FFmpegError, OSError) as exc:
            raise VideoSourceError(f"{self.path}: cannot write here ({exc})") from None
        rate = Fraction(self.fps).limit_denominator(1001) if self.fps > 0 else Fraction(25)
        options = dict(_OPTIONS.get(codec, {}))
        if codec == "libx264" and w * h <= _ONE_THREAD_PIXELS:
            options["threads"] = "1"  # in the writer's own thread: less CPU than x264's thread pool at this size
        self._v = self._out.add_stream(codec, rate=rate, options=options)
        self._v.width, self._v.height = w, h
        self._v.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        self._v.codec_context.time_base = _TB
        if self.audio_from is not None:
            self._audio = _AudioCopy.open(self.audio_from, self._out, self.path.suffix.lower())

    def write(self, img: np.ndarray, t: float | None = None) -> None:
        """Add one BGR frame shown at ``t`` seconds (odd sizes lose their last row/column: 4:2:0 needs even)."""

        h, w = img.shape[:2]
        w2, h2 = max(2, w - w % 2), max(2, h - h % 2)
        if self._out is None:
            self._open(w2, h2)
        t = self.frames / self.fps if t is None else float(t)
        pts = max(round(t / _TB), self._last_pts + 1)  # strictly increasing, as encoders need
        frame = _to_video_frame(img[:h2, :w2], self._v.pix_fmt)
        frame.pts, frame.time_base, self._last_pts = pts, _TB, pts
        if self._audio is not None:
            self._audio.until(t)
        for packet in self._v.encode(frame):
            self._out.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and the sound up to the end of the last frame, and close the file."""
        if self._out is None:
            return
        for packet in self._v.encode():
            self._out.mux(packet)
        if self._audio is not None:
            self._audio.until(float(self._last_pts * _TB) + 1 / max(self.fps, 1))
            self._audio.close()
        self._out.close()
        self._out = None


def _to_video_frame(bgr: np.ndarray, pix_fmt: str) -> Any:
    """A BGR picture as the encoder's frame. For yuv420p, OpenCV converts (BT.601, as FFmpeg does: luma
    within 1 of FFmpeg's, chroma within 5 where it is sited differently): 0.3 ms for 640 x 480 here against
    about 1 ms for FFmpeg's own bgr24 path, on every frame of the annotated video."""
    import av

    if pix_fmt == "yuv420p" and bgr.ndim == 3 and bgr.shape[2] == 3:
        return av.VideoFrame.from_ndarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), format="yuv420p")
    return av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")


class BackgroundVideoOut:
    """A :class:`VideoOut` fed through a queue to a thread of its own: encoding (FFmpeg works without Python's
    lock) overlaps the caller's next frames. Same :meth:`write` and :meth:`close`; the caller must not change
    a picture after handing it over. An error in the thread (a full disk, a path that cannot be written) is
    raised by the next :meth:`write` or by :meth:`close`."""

    def __init__(self, out: VideoOut, depth: int = 8) -> None:
        self.out, self.path = out, out.path
        self._queue: queue.Queue = queue.Queue(max(1, depth))
        self._error: BaseException | None = None
        self._raised = False
        self._thread: threading.Thread | None = None

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self.out.frames

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None:  # after an error, drain so the writing side never blocks
                try:
                    self.out.write(*item)
                except BaseException as exc:  # raised on the caller's side
                    self._error = exc

    def write(self, img: np.ndarray, t: float | None = None) -> None:
        """Queue one BGR frame shown at ``t`` seconds (see :meth:`VideoOut.write`)."""
        self._check()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="emoscope-write", daemon=True)
            self._thread.start()
        self._queue.put((img, t))

    def close(self) -> None:
        """Wait for the queued frames, then close the file (see :meth:`VideoOut.close`)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        self._check()
        self.out.close()

    def _check(self) -> None:
        if self._error is not None and not self._raised:
            self._raised = True
            raise self._error


class _AudioCopy:
    """The source's sound, muxed into the output as the video advances (copied, or re-encoded if needed)."""

    def __init__(self, src: Any, out: Any, copy: bool, codec: str) -> None:
        self.src, self.out = src, out
        self.ain = src.streams.audio[0]
        if copy:
            self.aout = out.add_stream_from_template(self.ain)
        else:
            self.aout = out.add_stream(codec, rate=48000 if codec == "libopus" else self.ain.rate)
            self.aout.layout = "stereo" if self.ain.layout.nb_channels >= 2 else "mono"
        self.copy = copy
        self._packets = src.demux(self.ain)
        self._pending: Any = None
        self.done = False

    @classmethod
    def open(cls, path: str | Path, out: Any, suffix: str) -> _AudioCopy | None:
        import av

        try:
            src = av.open(str(path))
        except (av.FFmpegError, OSError):
            return None
        if not src.streams.audio:
            src.close()
            return None
        ok, codec = _AUDIO.get(suffix, _AUDIO_DEFAULT)
        return cls(src, out, src.streams.audio[0].codec_context.name in ok, codec)

    def until(self, t: float) -> None:
        """Mux the sound that starts before ``t`` seconds."""
        import av

        while not self.done:
            pk = self._pending or next(self._packets, None)
            self._pending = None
            if pk is None:
                self.done = True
                break
            if pk.pts is None or pk.dts is None:
                continue
            if float(pk.pts * pk.time_base) >= t:
                self._pending = pk
                break
            try:
                self._mux(pk)
            except av.FFmpegError:  # a damaged sound packet: leave it out, keep the picture
                continue

    def _mux(self, pk: Any) -> None:
        if self.copy:
            pk.stream = self.aout
            self.out.mux(pk)
            return
        for fr in pk.decode():
            fr.pts = None  # the encoder numbers its own samples
            for p in self.aout.encode(fr):
                self.out.mux(p)

    def close(self) -> None:
        if not self.copy:
            for p in self.aout.encode():
                self.out.mux(p)
        self.src.close()
