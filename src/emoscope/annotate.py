"""Drawing results on pictures: a box per face, its label (and track id), and a bar per emotion.

Works for :class:`~emoscope.recognizer.Face` and :class:`~emoscope.video.TrackedFace` alike (anything with
``box``, ``label`` and ``probs``; tracked faces show their smoothed label and bars, with the classifier's own
probability of that label in the text). Every face carries its
number, counted from 1 as in the CSV, the tables and the web page: a tracked face its track id, a face of
a photo its place in the list (``#1`` for the first face ``predict`` returns, left to right). Sizes scale
with the face and the picture so the drawing stays readable from thumbnails to 4K frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import cv2
import numpy as np

#: BGR colour per emotion (colour-blind friendly-ish, distinct on faces).
COLORS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 60),
    "fear": (160, 60, 150),
    "happy": (0, 200, 255),
    "sad": (200, 120, 40),
    "surprise": (230, 200, 0),
    "neutral": (170, 170, 170),
    "contempt": (90, 90, 140),
}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def color_for(label: str) -> tuple[int, int, int]:
    """The BGR colour used for an emotion."""
    return COLORS.get(label, (255, 255, 255))


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color, thick: int) -> None:
    """Text with a dark outline, readable on any background."""
    cv2.putText(img, text, org, _FONT, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, color, thick, cv2.LINE_AA)


def draw_faces(image_bgr: np.ndarray, faces: Iterable[Any], bars: bool = True, copy: bool = True,
               numbers: bool = True) -> np.ndarray:
    """Draw boxes, labels (``#number label percent``) and probability bars; returns the (copied) BGR image.

    Gray input is converted to BGR. ``bars=False`` draws only boxes and labels; ``numbers=False`` leaves
    out the face numbers (track id for tracked faces, else 1, 2, ... in list order).
    """
    img = np.asarray(image_bgr)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif copy:
        img = img.copy()
    img = np.ascontiguousarray(img)
    h, w = img.shape[:2]
    base = max(h, w)
    for n, f in enumerate(faces, start=1):
        probs = getattr(f, "smoothed", None) or f.probs
        label = f.label
        x, y, bw, bh = (int(v) for v in f.box)
        col = color_for(label)
        thick = max(1, round(min(bw, bh) / 60), round(base / 600))
        cv2.rectangle(img, (x, y), (x + bw, y + bh), col, thick, cv2.LINE_AA)
        scale = float(np.clip(max(bw, base / 4) / 280.0, 0.35, 1.6))
        tid = getattr(f, "track_id", None)
        number = f"#{tid if tid is not None else n} " if numbers else ""
        pct = getattr(f, "confidence", None)  # the classifier's own probability of the shown label
        pct = probs.get(label, 0) if pct is None else pct
        text = f"{number}{label} {100 * pct:.0f}%"
        (tw, th), _ = cv2.getTextSize(text, _FONT, scale, max(1, thick))
        ty = y - 4 if y - th - 6 >= 0 else min(h - 2, y + bh + th + 4)
        _text(img, text, (max(0, min(x, w - tw - 1)), ty), scale, col, max(1, thick))
        if bars:
            _draw_bars(img, probs, (x, y, bw, bh), scale)
    return img


def _draw_bars(img: np.ndarray, probs: dict[str, float], box: tuple[int, int, int, int], scale: float) -> None:
    """Seven labelled horizontal bars beside the box (right if there is room, else left, else inside)."""
    h, w = img.shape[:2]
    x, y, bw, bh = box
    fs = max(0.3, scale * 0.55)
    row = max(9, int(22 * fs))
    name_w = cv2.getTextSize("surprise", _FONT, fs, 1)[0][0] + 4
    bar_w = max(30, int(80 * fs))
    panel_w = name_w + bar_w + 4
    panel_h = row * len(probs) + 4
    px = x + bw + 6 if x + bw + 6 + panel_w <= w else (x - 6 - panel_w if x - 6 - panel_w >= 0 else x + 2)
    py = int(np.clip(y, 0, max(0, h - panel_h)))
    overlay = img.copy()
    cv2.rectangle(overlay, (px, py), (min(w - 1, px + panel_w), min(h - 1, py + panel_h)), (0, 0, 0), -1)
    cv2.addWeighted(overlay, 0.45, img, 0.55, 0, dst=img)
    for i, (name, p) in enumerate(probs.items()):
        top = py + 2 + i * row
        cv2.putText(img, name, (px + 2, top + row - 3), _FONT, fs, (255, 255, 255), 1, cv2.LINE_AA)
        x0 = px + name_w
        cv2.rectangle(img, (x0, top + 2), (x0 + int(bar_w * float(p)), top + row - 2), color_for(name), -1)
        cv2.rectangle(img, (x0, top + 2), (x0 + bar_w, top + row - 2), (255, 255, 255), 1)


def draw_message(image_bgr: np.ndarray, text: str) -> np.ndarray:
    """Write a status line (e.g. 'no face found') in the top-left corner, in place; returns the image."""
    scale = float(np.clip(image_bgr.shape[1] / 900.0, 0.4, 1.5))
    _text(image_bgr, text, (8, int(28 * scale) + 4), scale, (255, 255, 255), max(1, round(scale * 1.5)))
    return image_bgr
