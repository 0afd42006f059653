"""Untrusted image bytes in, BGR arrays out (and back): type by magic bytes, size and pixel caps, clear refusals.

The decoding itself is :mod:`emoscope.imaging`'s (one decoder everywhere); this module reads headers for the
server's checks and memory budget, maps decoding errors to HTTP statuses, and encodes annotated pictures.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from dataclasses import dataclass

import cv2
import numpy as np

#: Magic-byte prefixes of the accepted formats -> MIME type. The file's name and declared type are ignored.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)
ACCEPTED_TYPES = ("image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp")
_PIL_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF", "image/bmp": "BMP"}


class MediaError(Exception):
    """A refused or undecodable image; ``status`` is the HTTP status to answer with, ``code`` a stable name."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def sniff(data: bytes) -> str | None:
    """MIME type from the first bytes, or None when they are not one of the accepted image formats."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return None if mime == "image/bmp" and len(data) < 26 else mime
    return None


#: PIL modes that ``Image.reduce`` shrinks right after decoding (others reach numpy at full size).
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"}
#: Bytes per pixel of PIL modes (others: 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
               "I;16": 2, "I;16B": 2, "I;16L": 2}  # fmt: skip
#: Bytes per pixel of the numpy copies (uint16/uint32 temporaries, RGBA, BGR) when a picture reaches numpy
#: at full size; measured peaks are below this (see tests/test_server_hardening.py).
_FULL_SIZE_COPIES = 12


@dataclass(frozen=True)
class ImageInfo:
    """What an image's header says: type, stored size, pixel mode and EXIF orientation (nothing decoded)."""

    mime: str
    width: int  # as stored, before EXIF rotation
    height: int
    mode: str
    orientation: int = 1

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as seen, after EXIF rotation."""
        return (self.height, self.width) if self.orientation in (5, 6, 7, 8) else (self.width, self.height)

    def scale_for(self, max_side: int) -> float:
        """The factor that brings the longer side to at most ``max_side`` (1.0 when it already is)."""
        return min(1.0, max_side / max(self.width, self.height))

    def draft_factor(self, max_side: int) -> int:
        """How much smaller a JPEG is decoded (1, 2, 4 or 8: libjpeg's DCT scaling) when it is shrunk anyway."""
        if self.mime != "image/jpeg":
            return 1
        s = self.scale_for(max_side)
        return max((f for f in (1, 2, 4, 8) if 1 / f >= s), default=1)

    def decode_bytes(self, max_side: int) -> int:
        """Peak bytes that decoding this image at ``max_side`` holds (an upper estimate, for the shared budget).

        Mirrors :func:`emoscope.imaging.decode_image`: the codec's own picture (at 1/f size for JPEGs), then
        either Pillow's ``reduce`` (images with alpha premultiply a full-size copy first) and small numpy
        copies, or, when it cannot be reduced that early, numpy copies at full size.
        """
        f = self.draft_factor(max_side)
        w, h = math.ceil(self.width / f), math.ceil(self.height / f)
        pixels = w * h
        per = _MODE_BYTES.get(self.mode, 4)
        s = min(1.0, max_side / max(w, h))
        small = math.ceil(w * s) * math.ceil(h * s)
        if s <= 0.5 and self.mode in _REDUCIBLE:
            alpha = "A" in self.mode or "a" in self.mode
            return pixels * per * (2 if alpha else 1) + small * 16 + 64 * 1024  # reduced: under 4 x small pixels
        return pixels * (per + _FULL_SIZE_COPIES) + 64 * 1024


def _refuse_type(accept: tuple[str, ...]) -> MediaError:
    names = ", ".join(t.split("/")[1].upper() for t in accept)
    return MediaError(415, "unsupported_media_type", f"not an accepted image (by its content): send {names}")


def _orientation(im: object, mime: str) -> int:
    """The EXIF orientation (1-8) an opened image's header gives, without decoding any pixels.

    A PNG's EXIF counts only when it comes before the pixel data (where the PNG specification puts it): for a
    PNG without one, Pillow's ``getexif`` decodes the whole picture to look behind it (0.75 s and 160 MB for
    6300 x 6300 RGBA, and on a frame of a live stream before its aspect check). The decoder still applies an
    orientation found later.
    """
    if mime not in ("image/jpeg", "image/png", "image/webp"):
        return 1
    if mime == "image/png" and "exif" not in im.info:  # type: ignore[attr-defined]
        return 1
    return int(im.getexif().get(0x0112, 1))  # type: ignore[attr-defined]


def probe(
    data: bytes, max_pixels: int, max_aspect: float = math.inf, accept: tuple[str, ...] = ACCEPTED_TYPES
) -> ImageInfo:
    """Read only the header (nothing is decoded) and refuse what must not be decoded.

    415 when the bytes are not an accepted type, 413 when width x height exceeds ``max_pixels``,
    422 ``extreme_aspect`` when one side is more than ``max_aspect`` times the other (a 1 x 2,000,000 strip
    costs the detector as much as a huge photo and holds no face), 422 when the header is corrupt.
    """
    from PIL import Image

    mime = sniff(data)
    if mime is None or mime not in accept:
        raise _refuse_type(accept)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[mime]])
            w, h = im.size
            orientation = _orientation(im, mime)
            mode = im.mode
    except Image.DecompressionBombError as exc:
        raise MediaError(413, "too_many_pixels", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any failure in a header parser on untrusted data is a bad image
        msg = str(exc).split("\n")[0] or type(exc).__name__
        raise MediaError(422, "bad_image", f"could not read the {mime.split('/')[1].upper()} header ({msg})") from None
    if w < 1 or h < 1:
        raise MediaError(422, "bad_image", "image has no pixels")
    if w * h > max_pixels:
        raise MediaError(413, "too_many_pixels", f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
    if max(w, h) > max_aspect * min(w, h):
        msg = f"image is {w}x{h}: one side is over {max_aspect:g} times the other; send a photo or frame of faces"
        raise MediaError(422, "extreme_aspect", msg)
    return ImageInfo(mime, w, h, mode, orientation if 1 <= orientation <= 8 else 1)


def decode_fit(data: bytes, info: ImageInfo, max_side: int) -> tuple[np.ndarray, float]:
    """Decode with :func:`emoscope.imaging.decode_image` (the one decoder) to uint8 BGR, longer side at most
    ``max_side``; returns (array, scale), ``scale`` mapping the original (EXIF-rotated) size to the array's.

    JPEGs are decoded at 1/2, 1/4 or 1/8 size by libjpeg when that is still large enough, other formats
    shrunk right after decoding; 16-bit pictures are scaled, transparent pixels laid over white.
    Refusals and corrupt data become :class:`MediaError` (413, 415, 422).
    """
    from .. import imaging

    try:
        d = imaging.decode_image(data, max_side=max_side, max_pixels=None, max_aspect=None,
                                 formats=(_PIL_FORMATS[info.mime],))  # fmt: skip
    except imaging.UnsupportedImageError as exc:
        raise MediaError(415, "unsupported_media_type", str(exc)) from None
    except imaging.ImageTooLargeError as exc:
        raise MediaError(413, "too_many_pixels", str(exc)) from None
    except imaging.ImageReadError as exc:
        raise MediaError(422, "bad_image", str(exc)) from None
    return imaging.to_bgr(d.pixels), d.scale


def encode(bgr: np.ndarray, fmt: str = "jpeg", quality: int = 88) -> tuple[bytes, str]:
    """BGR array -> (JPEG or PNG bytes, MIME type)."""
    if fmt == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 3])
        mime = "image/png"
    else:
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        mime = "image/jpeg"
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 BGR array
        raise MediaError(500, "encode_failed", "could not encode the annotated image")
    return buf.tobytes(), mime


def encode_b64(bgr: np.ndarray, fmt: str = "jpeg") -> dict:
    """Annotated image as a JSON-ready dict: mime, width, height, base64 data."""
    data, mime = encode(bgr, fmt)
    h, w = bgr.shape[:2]
    return {"mime": mime, "width": int(w), "height": int(h), "data": base64.b64encode(data).decode("ascii")}
