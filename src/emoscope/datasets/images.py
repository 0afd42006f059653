"""Decoding image files into gray face arrays, with errors that say what went wrong."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
#: Refuse images above this many pixels (decompression bombs).
MAX_PIXELS = 50_000_000


class ImageReadError(ValueError):
    """An image file could not be decoded."""


def read_gray(path: str | Path) -> np.ndarray:
    """Read any image file as a 2-D ``uint8`` gray array; raise :class:`ImageReadError` with the reason."""
    p = Path(path)
    try:
        data = np.fromfile(p, dtype=np.uint8)
    except FileNotFoundError:
        raise ImageReadError("file not found") from None
    except OSError as exc:
        raise ImageReadError(f"cannot open ({exc.strerror})") from None
    if data.size == 0:
        raise ImageReadError("empty file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError("not a decodable image (corrupt, truncated or unsupported format)")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageReadError(f"image too large ({img.shape[1]}x{img.shape[0]} pixels > {MAX_PIXELS})")
    return to_gray(img)


def to_gray(img: np.ndarray) -> np.ndarray:
    """Convert a gray, BGR or BGRA array (uint8 or uint16) to ``uint8`` gray."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    if img.ndim == 2:
        return img
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return img[..., 0]


def center_square(img: np.ndarray, size: int = 48) -> np.ndarray:
    """Centre-crop the largest square and resize it to ``size`` x ``size`` (area interpolation)."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = img[top : top + s, left : left + s]
    if s == size:
        return np.ascontiguousarray(crop)
    interp = cv2.INTER_AREA if s > size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interp)
