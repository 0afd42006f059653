"""Decoding image files into gray face arrays, with errors that say what went wrong."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import EmoscopeError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
#: Refuse images above this many pixels (decompression bombs).
MAX_PIXELS = 50_000_000


class ImageReadError(EmoscopeError, ValueError):
    """An image file could not be decoded."""


def read_gray(path: str | Path) -> np.ndarray:
    """Read any image file as a 2-D ``uint8`` gray array; raise :class:`ImageReadError` with the reason."""
    return to_gray(read_image(path))


def _is_pil(obj: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _from_pil(img: Any) -> np.ndarray:
    if img.mode in ("L", "1", "F") or img.mode.startswith("I;16"):
        return _from_array(np.asarray(img), "bgr")
    if img.mode == "I":  # 32-bit integer gray, in practice 16-bit data
        return _from_array(np.clip(np.asarray(img), 0, 65535).astype(np.uint16), "bgr")
    arr = np.asarray(img.convert("RGB"))
    return np.ascontiguousarray(arr[..., ::-1])


def _from_array(arr: np.ndarray, color: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)) or min(a.shape[:2]) < 1:
        raise ImageReadError(f"array of shape {a.shape} is not a picture (want H x W, H x W x 3 or H x W x 4)")
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a)
        a = a * 255.0 if a.size and a.max() <= 1.0 else a
        a = np.clip(a, 0, 255).astype(np.uint8)
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype != np.uint8:
        a = np.clip(a, 0, 255).astype(np.uint8)
    if a.ndim == 2:
        return np.ascontiguousarray(a)
    if a.shape[2] == 4:
        a = cv2.cvtColor(a, cv2.COLOR_RGBA2BGR if color == "rgb" else cv2.COLOR_BGRA2BGR)
    elif color == "rgb":
        a = a[..., ::-1]
    return np.ascontiguousarray(a)


def read_image(path: str | Path) -> np.ndarray:
    """Decode an image file to uint8 gray or BGR; raise :class:`ImageReadError` saying what is wrong.

    Catches: missing file, folder, empty file, non-image or unsupported format, truncated/corrupt data, and
    images over ``MAX_PIXELS`` (decompression bombs: the size is read from the header before decoding).
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError("file not found")
    if p.is_dir():
        raise ImageReadError("is a folder, not an image file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise ImageReadError(f"cannot open ({exc.strerror})") from None
    if size == 0:
        raise ImageReadError("empty file")
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise ImageReadError(f"image too large ({w}x{h} pixels > {MAX_PIXELS}); refusing to decode")
                im.load()
                im = ImageOps.exif_transpose(im)
                return _from_pil(im)
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        raise ImageReadError(f"image too large (more than {MAX_PIXELS} pixels); refusing to decode") from None
    except UnidentifiedImageError:
        pass  # not a format Pillow knows: let OpenCV try (e.g. .exr, .pfm, .hdr)
    except PermissionError:
        raise ImageReadError("cannot open (permission denied)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        msg = str(exc).split("\n")[0]
        if "truncated" in msg.lower() or "broken" in msg.lower() or isinstance(exc, (SyntaxError, ValueError)):
            raise ImageReadError(f"corrupt or truncated image ({msg})") from None
        raise ImageReadError(f"cannot decode ({msg})") from None
    data = np.fromfile(p, dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            raise ImageReadError(f"not an image (not decodable): the contents are not valid {p.suffix.lower()} data")
        raise ImageReadError(f"not an image (not decodable), or an unsupported format ({p.suffix or 'no extension'})")
    if img.shape[0] * img.shape[1] > MAX_PIXELS:
        raise ImageReadError(f"image too large ({img.shape[1]}x{img.shape[0]} pixels > {MAX_PIXELS})")
    return _from_array(img, "bgr")





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
