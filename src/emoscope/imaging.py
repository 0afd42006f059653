"""Reading pictures: one decoder for files, uploaded bytes, numpy arrays and PIL images.

Everything that reads a picture (datasets, the recognizer, the CLI, the web server) goes through this module,
so a picture reads the same everywhere (a 16-bit gray PNG is scaled, not clipped to black and white).

**Colour order.** Every array this module *returns* is ``uint8`` and either gray (H x W) or **BGR** (H x W x 3,
OpenCV's order); :func:`decode_bgr` always returns BGR. Arrays *given* to it (:func:`from_array`,
:func:`load_image`) are read in the order named by ``color``: ``"bgr"`` (the default, OpenCV's
``cv2.imread``) or ``"rgb"`` (PIL, matplotlib, ``skimage``). Files, bytes and PIL images carry their own
mode, so ``color`` does not apply to them.

**Values.** ``uint8`` is taken as is; ``uint16`` is scaled to 0-255 (``v / 257``, rounded); other integer
types and ``bool`` are clipped to 0-255 (``True`` is 255); floats are taken as 0-1 when their largest finite
value is at most 1 (then multiplied by 255), else as 0-255; NaN is 0. See :func:`to_uint8`.

**Alpha.** Transparent pixels are laid over white (what a web page shows), for files and arrays alike.

**Limits.** Pictures over ``max_pixels`` (default :data:`MAX_PIXELS`) are refused from the file header, before
decoding (decompression bombs), and so are strips more elongated than :data:`MAX_ASPECT` (1 : 20): no face fits
in them, and searching them in tiles costs minutes. ``max_side`` decodes a picture already shrunk so its longer
side is at most that many pixels: JPEGs are decoded at 1/2, 1/4 or 1/8 scale by the codec itself (Pillow's
``draft``), which saves most of the time and memory when the caller would shrink the picture anyway.

Every problem raises a subclass of :class:`ImageReadError` (an :class:`~emoscope.errors.EmoscopeError`) whose
message says what is wrong; no other exception escapes for bad data.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import EmoscopeError, InvalidArgumentError

__all__ = [
    "COLOR_ORDERS", "IMAGE_EXTENSIONS", "MAX_ASPECT", "MAX_PIXELS", "CorruptImageError", "DecodedImage",
    "ImageReadError", "ImageShapeError", "ImageTooLargeError", "UnsupportedImageError", "center_square",
    "check_color", "check_size", "decode", "decode_bgr", "decode_image", "from_array", "from_pil", "is_pil",
    "load_image", "read_gray", "read_image", "shrink", "to_bgr", "to_gray", "to_uint8",
]

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
#: Refuse pictures above this many pixels (decompression bombs), from the header, before decoding.
MAX_PIXELS = 50_000_000
#: Refuse pictures whose longer side is more than this many times the shorter one.
MAX_ASPECT = 20.0
#: The colour orders an input array can be in.
COLOR_ORDERS = ("bgr", "rgb")


class ImageReadError(EmoscopeError, ValueError):
    """A picture could not be read; the message says why. Base of the more specific errors below."""


class UnsupportedImageError(ImageReadError):
    """The data is not a picture, or not in a format that is read here (an HTTP server answers 415)."""


class CorruptImageError(ImageReadError):
    """The data looks like a picture but is truncated or damaged (HTTP 422)."""


class ImageTooLargeError(ImageReadError):
    """The picture has more pixels than allowed (HTTP 413)."""


class ImageShapeError(ImageReadError):
    """The picture or array has a shape or type that is not a picture (empty, extreme strip, 5 channels...)."""


@dataclass(frozen=True)
class DecodedImage:
    """A decoded picture and what it was before any reduction.

    ``pixels``: uint8 gray (H x W) or BGR (H x W x 3). ``width`` x ``height``: the picture's own size (after
    EXIF rotation), so ``scale`` maps ``pixels`` coordinates back: ``x_original = x / scale``.
    ``format``: Pillow's format name (``"JPEG"``, ``"PNG"``, ...) or ``"opencv"`` for the fallback decoder.
    """

    pixels: np.ndarray
    width: int
    height: int
    format: str

    @property
    def scale(self) -> float:
        """``pixels`` width / the picture's own width (1.0 when it was not reduced)."""
        return self.pixels.shape[1] / self.width


# ------------------------------------------------------------------------------------------------ checks
def check_color(color: str) -> str:
    """``color`` if it is a known colour order (``"bgr"`` or ``"rgb"``), else a clear error."""
    if color not in COLOR_ORDERS:
        raise InvalidArgumentError(f"color must be 'bgr' or 'rgb' (the channel order of numpy arrays), got {color!r}")
    return color


def check_size(width: int, height: int, max_pixels: int | None = MAX_PIXELS, max_aspect: float | None = MAX_ASPECT
               ) -> None:
    """Raise a clear error when a ``width`` x ``height`` picture is empty, over ``max_pixels`` or too elongated."""
    if width < 1 or height < 1:
        raise ImageShapeError(f"picture is {width}x{height} pixels: it has no pixels")
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(f"image too large ({width}x{height} = {width * height} pixels, the limit is "
                                 f"{max_pixels}); refusing to decode: shrink it first")
    if max_aspect is not None and max(width, height) > max_aspect * min(width, height):
        ratio = max(width, height) / min(width, height)
        raise ImageShapeError(f"picture is {width}x{height} pixels, a strip of {ratio:.0f}:1; pictures up to "
                              f"{max_aspect:g}:1 are read: crop it into parts")


# ------------------------------------------------------------------------------------------------ arrays
def to_uint8(arr: np.ndarray) -> np.ndarray:
    """Pixel values of any numeric dtype as ``uint8`` (the rules are in the module doc); same shape."""
    a = np.asarray(arr)
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * np.uint8(255)
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        return np.clip(a, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.floating):
        a = np.nan_to_num(a, nan=0.0, posinf=255.0, neginf=0.0)
        unit = bool(a.size) and float(a.max()) <= 1.0  # 0-1 floats
        a = np.clip(a, 0.0, 1.0 if unit else 255.0).astype(np.float32)  # clipped first: no overflow in the cast
        return np.rint(a * np.float32(255.0) if unit else a).astype(np.uint8)
    raise ImageShapeError(f"array of dtype {a.dtype} is not a picture (want uint8, uint16, other integers, "
                          "bool or floats)")


def _over_white(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Lay ``color`` (H x W or H x W x C uint8) with ``alpha`` (H x W uint8) over white."""
    if alpha.min() == 255:
        return np.ascontiguousarray(color)
    a = alpha.astype(np.uint16)
    if color.ndim == 3:
        a = a[..., None]
    out = (color.astype(np.uint16) * a + 255 * (255 - a) + 127) // 255
    return out.astype(np.uint8)


def from_array(arr: np.ndarray, color: str = "bgr") -> np.ndarray:
    """A numpy picture -> uint8 gray (H x W) or BGR (H x W x 3).

    ``arr``: H x W (gray), H x W x 1, H x W x 2 (gray + alpha), H x W x 3 or H x W x 4 (with alpha), in the
    channel order ``color`` (``"bgr"`` or ``"rgb"``); any numeric dtype (see :func:`to_uint8`).
    """
    check_color(color)
    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4) and a.shape[0] in (1, 3, 4):
        raise ImageShapeError(f"array of shape {a.shape} is not a picture: it looks channels-first (C x H x W); "
                              "give H x W x C (e.g. arr.transpose(1, 2, 0))")
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise ImageShapeError(f"array of shape {a.shape} is not a picture (want H x W, H x W x 3 or H x W x 4)")
    if min(a.shape[:2]) < 1:
        raise ImageShapeError(f"array of shape {a.shape} is not a picture: it has no pixels")
    a = to_uint8(a)
    if a.ndim == 2:
        return np.ascontiguousarray(a)
    c = a.shape[2]
    if c == 1:
        return np.ascontiguousarray(a[..., 0])
    if c == 2:
        return _over_white(a[..., 0], a[..., 1])
    rgb_order = color == "rgb"
    out = a[..., 2::-1] if rgb_order else a[..., :3]
    if c == 4:
        return _over_white(out, a[..., 3])
    return np.ascontiguousarray(out)


def is_pil(obj: Any) -> bool:
    """Whether ``obj`` is a PIL image."""
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return False
    return isinstance(obj, Image.Image)


def _pil_array(img: Any) -> np.ndarray:
    """A PIL image's pixels as a numpy array (gray, gray + alpha, RGB or RGBA) with as little conversion as
    its mode allows: 16-bit gray stays 16-bit, so :func:`to_uint8` scales it instead of clipping it."""
    mode = img.mode
    if mode in ("L", "LA", "RGB", "RGBA", "F") or mode.startswith("I;16"):
        return np.asarray(img)
    if mode == "I":  # 32-bit integer gray, in practice 16-bit data (TIFF, older Pillow's 16-bit PNG)
        return np.clip(np.asarray(img), 0, 65535).astype(np.uint16)
    if mode == "1":
        return np.asarray(img.convert("L"))
    if mode == "La":
        return np.asarray(img.convert("LA"))
    has_alpha = "A" in img.getbands() or "transparency" in img.info or mode in ("RGBa", "PA")
    return np.asarray(img.convert("RGBA" if has_alpha else "RGB"))


def from_pil(img: Any) -> np.ndarray:
    """A PIL image (any mode, 16-bit gray included) -> uint8 gray (H x W) or BGR (H x W x 3)."""
    return from_array(_pil_array(img), "rgb")


def shrink(img: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink so the longer side is at most ``max_side`` (area interpolation); returns (image, scale applied)."""
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img, 1.0
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), scale


# ------------------------------------------------------------------------------------------------ decoding
def _decode_pil(src: Any, formats: tuple[str, ...] | None, max_side: int | None, max_pixels: int | None,
                max_aspect: float | None) -> DecodedImage | None:
    """Decode with Pillow; None when Pillow does not know the format (and ``formats`` allows a fallback)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    fmt = "?"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(src, formats=list(formats) if formats else None) as im:
                fmt = im.format or "?"
                w, h = im.size
                check_size(w, h, max_pixels, max_aspect)
                if max_side and max(w, h) > max_side and fmt == "JPEG":
                    r = max_side / max(w, h)
                    im.draft(im.mode, (math.ceil(w * r), math.ceil(h * r)))  # decode at 1/2, 1/4 or 1/8 scale
                im.load()
                if max_side and max(im.size) >= 2 * max_side:
                    k = max(im.size) // max_side
                    # box-average in Pillow before any copy to numpy (and before EXIF rotation, which copies
                    # the full-size picture); a mode reduce() lacks: shrink() does it all
                    with contextlib.suppress(ValueError, NotImplementedError):
                        im = im.reduce(k)
                ow, oh = w, h
                try:
                    orientation = im.getexif().get(0x0112, 1)
                    if orientation in (5, 6, 7, 8):  # EXIF orientation turns it a quarter
                        ow, oh = h, w
                    if orientation != 1:  # exif_transpose copies the picture even when there is nothing to turn
                        im = ImageOps.exif_transpose(im)
                except Exception:  # noqa: BLE001 - unreadable EXIF: keep the picture as stored
                    ow, oh = w, h
                arr = from_pil(im)
    except ImageReadError:
        raise
    except Image.DecompressionBombError:
        raise ImageTooLargeError(f"image too large (more than {max_pixels or MAX_PIXELS} pixels); refusing to "
                                 "decode: shrink it first") from None
    except UnidentifiedImageError:
        if formats:
            names = ", ".join(formats)
            raise UnsupportedImageError(f"not an accepted image (by its content): send {names}") from None
        return None
    except PermissionError:
        raise ImageReadError("cannot open (permission denied)") from None
    except MemoryError:
        raise ImageTooLargeError("not enough memory to decode this image: shrink it first") from None
    except Exception as exc:  # noqa: BLE001 - any failure inside a codec on untrusted data is a corrupt file
        msg = str(exc).split("\n")[0] or type(exc).__name__
        raise CorruptImageError(f"corrupt or truncated {fmt if fmt != '?' else 'image'} data ({msg})") from None
    if max_side:
        arr, _ = shrink(arr, max_side)
    return DecodedImage(arr, ow, oh, fmt)


def _decode_cv2(data: np.ndarray, max_side: int | None, max_pixels: int | None, max_aspect: float | None
                ) -> DecodedImage | None:
    """OpenCV's decoder for formats Pillow lacks (.exr, .pfm, .hdr...); None when it cannot decode either."""
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    if img is None:
        return None
    h, w = img.shape[:2]
    check_size(w, h, max_pixels, max_aspect)
    arr = from_array(img, "bgr")
    if max_side:
        arr, _ = shrink(arr, max_side)
    return DecodedImage(arr, w, h, "opencv")


def decode_image(
    data: bytes | bytearray | memoryview,
    *,
    max_side: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
    max_aspect: float | None = MAX_ASPECT,
    formats: tuple[str, ...] | None = None,
) -> DecodedImage:
    """Decode picture bytes to a :class:`DecodedImage` (uint8 gray or BGR pixels, EXIF rotation applied).

    ``max_side``: shrink so the longer side is at most this (JPEGs decode at reduced scale). ``max_pixels``,
    ``max_aspect``: refuse bigger or more elongated pictures, from the header (``None``: no limit).
    ``formats``: Pillow format names to accept (e.g. ``("JPEG", "PNG", "WEBP", "GIF", "BMP")`` for untrusted
    uploads); anything else raises :class:`UnsupportedImageError`. ``None`` accepts every format Pillow or
    OpenCV reads.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_image takes bytes, got {type(data).__name__}")
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be at least 1, got {max_side}")
    raw = bytes(data)
    if not raw:
        raise UnsupportedImageError("empty data: no image")
    out = _decode_pil(io.BytesIO(raw), formats, max_side, max_pixels, max_aspect)
    if out is None:
        out = _decode_cv2(np.frombuffer(raw, np.uint8), max_side, max_pixels, max_aspect)
    if out is None:
        raise UnsupportedImageError("not an image (not decodable), or an unsupported format")
    return out


def decode(data: bytes | bytearray | memoryview, **kwargs: Any) -> np.ndarray:
    """Picture bytes -> uint8 gray (H x W) or BGR (H x W x 3); the options are :func:`decode_image`'s."""
    return decode_image(data, **kwargs).pixels


def decode_bgr(data: bytes | bytearray | memoryview, **kwargs: Any) -> np.ndarray:
    """Picture bytes -> uint8 **BGR** (H x W x 3, gray pictures too); the options are :func:`decode_image`'s.

    For untrusted uploads: every problem raises an :class:`ImageReadError` subclass
    (:class:`UnsupportedImageError`, :class:`CorruptImageError`, :class:`ImageTooLargeError`,
    :class:`ImageShapeError`) with a message fit to show the sender.
    """
    return to_bgr(decode_image(data, **kwargs).pixels)


def read_image(
    path: str | Path,
    *,
    max_side: int | None = None,
    max_pixels: int | None = MAX_PIXELS,
    max_aspect: float | None = MAX_ASPECT,
) -> np.ndarray:
    """Decode an image file to uint8 gray (H x W) or BGR (H x W x 3); raise :class:`ImageReadError` saying why.

    Catches: an empty path, a missing file, a folder, an empty file, a non-image or unsupported format,
    truncated or corrupt data, and pictures over ``max_pixels`` or beyond ``max_aspect`` (from the header).
    """
    if isinstance(path, str) and not path.strip():
        raise ImageReadError("empty path: give an image file")
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
        raise UnsupportedImageError("empty file")
    out = _decode_pil(p, None, max_side, max_pixels, max_aspect)
    if out is None:
        try:
            data = np.fromfile(p, dtype=np.uint8)
        except OSError as exc:
            raise ImageReadError(f"cannot open ({exc.strerror})") from None
        out = _decode_cv2(data, max_side, max_pixels, max_aspect)
    if out is None:
        ext = p.suffix.lower()
        if ext in IMAGE_EXTENSIONS:
            raise UnsupportedImageError(f"not an image (not decodable): the contents are not valid {ext} data")
        raise UnsupportedImageError(f"not an image (not decodable), or an unsupported format "
                                    f"({p.suffix or 'no extension'})")
    return out.pixels


def read_gray(path: str | Path) -> np.ndarray:
    """Read any image file as a 2-D ``uint8`` gray array; raise :class:`ImageReadError` with the reason."""
    return to_gray(read_image(path))


def load_image(image: Any, color: str = "bgr") -> np.ndarray:
    """Any supported picture -> uint8 gray (H x W) or BGR (H x W x 3).

    ``image``: a path, picture bytes, a numpy array (in channel order ``color``: ``"bgr"`` or ``"rgb"``) or a
    PIL image. Files, bytes and PIL images carry their own mode, so ``color`` does not apply to them.
    """
    check_color(color)
    if isinstance(image, (str, Path)):
        return read_image(image)
    if isinstance(image, (bytes, bytearray, memoryview)):
        return decode(image)
    if is_pil(image):
        return from_pil(image)
    if isinstance(image, np.ndarray):
        return from_array(image, color)
    raise TypeError(f"unsupported picture type {type(image).__name__}: give a path, bytes, a numpy array or a "
                    "PIL image")


# ------------------------------------------------------------------------------------------------ conversions
def to_gray(img: np.ndarray) -> np.ndarray:
    """A gray, BGR or BGRA array (any dtype :func:`to_uint8` reads) -> ``uint8`` gray."""
    img = to_uint8(img)
    if img.ndim == 2:
        return img
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2GRAY)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    return np.ascontiguousarray(img[..., 0])


def to_bgr(img: np.ndarray) -> np.ndarray:
    """A uint8 gray (H x W) or BGR array -> BGR (H x W x 3)."""
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    return img


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
