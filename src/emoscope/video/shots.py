"""Shot boundaries: where a video cuts from one camera shot to another, so no track crosses a cut.

:class:`ShotDetector` looks at each frame once, shrunk to ``width`` pixels wide (a cut changes the whole
picture, so a thumbnail is enough and costs well under a millisecond). It uses PySceneDetect's
``ContentDetector`` (the mean change of hue, saturation and lightness between frames, in HSV) when
``scenedetect`` is installed, and the same score computed here otherwise, so results do not depend on the
extra. It is causal: a cut is reported on the first frame of the new shot, as a webcam or stream needs.
"""

from __future__ import annotations

import cv2
import numpy as np

#: PySceneDetect's default threshold for ContentDetector (mean HSV change, 0-255 scale).
DEFAULT_THRESHOLD = 27.0


class ShotDetector:
    """Feed frames in order with :meth:`update`; it returns True on the first frame of each new shot.

    ``threshold``: score above which two frames are different shots (27 = PySceneDetect's default;
    lower finds more cuts). ``min_shot_s``: a new cut is accepted only this long after the previous one
    (flashes and fast pans do not make a run of one-frame shots). ``shot`` is the 0-based index of the
    current shot; ``cuts`` the times of the cuts found so far.
    """

    def __init__(self, threshold: float = DEFAULT_THRESHOLD, min_shot_s: float = 0.5, width: int = 160,
                 use_scenedetect: bool | None = None) -> None:
        if not threshold > 0:
            raise ValueError(f"cut threshold must be above 0, got {threshold}")
        if min_shot_s < 0:
            raise ValueError(f"min_shot_s must be >= 0 seconds, got {min_shot_s}")
        self.threshold, self.min_shot_s, self.width = float(threshold), float(min_shot_s), int(width)
        self.shot, self.cuts = 0, []
        self._last_cut_t: float | None = None
        self._prev: np.ndarray | None = None
        self._n = 0
        self._sd = _scenedetect_detector(self.threshold) if use_scenedetect in (None, True) else None
        if use_scenedetect and self._sd is None:
            raise ImportError("use_scenedetect=True needs PySceneDetect: pip install 'emoscope[video]'")
        self.backend = "pyscenedetect" if self._sd is not None else "builtin"

    def reset(self) -> None:
        """Forget the previous frame (the next frame starts a new comparison, not a new shot)."""
        self._prev = None
        if self._sd is not None:
            self._sd = _scenedetect_detector(self.threshold)

    def _small(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if w <= self.width:
            return np.ascontiguousarray(image)
        return cv2.resize(image, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_AREA)

    def score(self, small_bgr: np.ndarray) -> float | None:
        """The built-in content score against the previous thumbnail (None on the first frame)."""
        hsv = cv2.cvtColor(small_bgr, cv2.COLOR_BGR2HSV)
        prev, self._prev = self._prev, hsv
        if prev is None or prev.shape != hsv.shape:
            return None
        # mean |change| per channel, then over H, S, V (OpenCV: a tenth of numpy's time, the same to 1e-15)
        return float(np.mean(cv2.mean(cv2.absdiff(hsv, prev))[:3]))

    def update(self, image: np.ndarray, t: float) -> bool:
        """Whether the frame at time ``t`` (seconds) starts a new shot; advances ``shot`` when it does."""
        small = self._small(image)
        if self._sd is not None:
            from scenedetect.common import FrameTimecode

            hit = bool(self._sd.process_frame(FrameTimecode(self._n, fps=1000.0), small))
        else:
            s = self.score(small)
            hit = s is not None and s >= self.threshold
        self._n += 1
        if hit and (self._last_cut_t is None or t - self._last_cut_t >= self.min_shot_s):
            self.shot += 1
            self.cuts.append(float(t))
            self._last_cut_t = t
            return True
        return False


def _scenedetect_detector(threshold: float):
    try:
        from scenedetect import ContentDetector
    except ImportError:
        return None
    # min_scene_len=1: the time rule above decides (PySceneDetect counts frames, not seconds)
    return ContentDetector(threshold=threshold, min_scene_len=1)
