"""Untrusted image bytes in, BGR arrays out (and back): type by magic bytes, size and pixel caps, clear refusals."""

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


#: PIL modes that ``Image.reduce`` shrinks directly (others are converted to RGB first, at full size).
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "I", "F"}
#: Bytes per pixel of PIL modes (others: 4).
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
               "I;16": 2, "I;16B": 2, "I;16L": 2}  # fmt: skip


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
        """Peak bytes that decoding this image at ``max_side`` holds (for the server's shared budget)."""
        f = self.draft_factor(max_side)
        pixels = math.ceil(self.width / f) * math.ceil(self.height / f)
        per = _MODE_BYTES.get(self.mode, 4)
        if self.mode not in _REDUCIBLE:
            per += 3  # converted to RGB at full size before it can be shrunk
        elif "A" in self.mode or "a" in self.mode:
            per += 1  # reduced one band at a time
        s = self.scale_for(max_side)
        small = math.ceil(self.width * s) * math.ceil(self.height * s) * 3
        return pixels * per + 3 * small + 64 * 1024


def _refuse_type(accept: tuple[str, ...]) -> MediaError:
    names = ", ".join(t.split("/")[1].upper() for t in accept)
    return MediaError(415, "unsupported_media_type", f"not an accepted image (by its content): send {names}")


def _open(data: bytes, mime: str):
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[mime]])


def _bad(mime: str, exc: BaseException) -> MediaError:
    msg = str(exc).split("\n")[0] or type(exc).__name__
    return MediaError(422, "bad_image", f"could not decode the {mime.split('/')[1].upper()} data ({msg})")


def probe(
    data: bytes, max_pixels: int, max_aspect: float = math.inf, accept: tuple[str, ...] = ACCEPTED_TYPES
) -> ImageInfo:
    """Read only the header and refuse what must not be decoded.

    415 when the bytes are not an accepted type, 413 when width x height exceeds ``max_pixels``,
    422 ``extreme_aspect`` when one side is more than ``max_aspect`` times the other (a 1 x 2,000,000 strip
    costs the detector as much as a huge photo and holds no face), 422 when the header is corrupt.
    """
    from PIL import Image

    mime = sniff(data)
    if mime is None or mime not in accept:
        raise _refuse_type(accept)
    try:
        im = _open(data, mime)
        w, h = im.size
        orientation = int(im.getexif().get(0x0112, 1)) if mime in ("image/jpeg", "image/png", "image/webp") else 1
        mode = im.mode
    except Image.DecompressionBombError as exc:
        raise MediaError(413, "too_many_pixels", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError, TypeError) as exc:
        raise _bad(mime, exc) from None
    if w < 1 or h < 1:
        raise MediaError(422, "bad_image", "image has no pixels")
    if w * h > max_pixels:
        raise MediaError(413, "too_many_pixels", f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}")
    if max(w, h) > max_aspect * min(w, h):
        msg = f"image is {w}x{h}: one side is over {max_aspect:g} times the other; send a photo or frame of faces"
        raise MediaError(422, "extreme_aspect", msg)
    return ImageInfo(mime, w, h, mode, orientation if 1 <= orientation <= 8 else 1)


def _reduce(im, k: int):
    """``im`` shrunk k times by box averaging. Pillow's own ``reduce`` premultiplies alpha in a full-size
    copy first, so images with alpha are reduced band by band (alpha is dropped, as RGB conversion does)."""
    from PIL import Image

    if im.mode in ("RGBA", "RGBa", "LA", "La"):
        names = "RGB" if im.mode.startswith("RGB") else "L"
        return Image.merge(names if names == "L" else "RGB", [im.getchannel(c).reduce(k) for c in names])
    return im.reduce(k)


def decode_fit(data: bytes, info: ImageInfo, max_side: int, exif: bool = True) -> tuple[np.ndarray, float]:
    """Decode to a uint8 BGR array whose longer side is at most ``max_side``; returns (array, scale).

    ``scale`` maps the original (EXIF-rotated) size to the returned one: boxes found on the array are
    divided by it. JPEGs are decoded at 1/2, 1/4 or 1/8 size when that is still large enough (libjpeg's
    draft mode), other formats are shrunk by an integer factor right after decoding, so the full-size
    image never exists as RGB and BGR copies.
    """
    from PIL import ImageOps

    mime = info.mime
    scale = info.scale_for(max_side)
    ow, oh = info.size if exif else (info.width, info.height)
    target = (max(1, round(ow * scale)), max(1, round(oh * scale)))
    try:
        im = _open(data, mime)
        if info.draft_factor(max_side) > 1:
            need = (max(1, math.ceil(info.width * scale)), max(1, math.ceil(info.height * scale)))
            im.draft("RGB" if im.mode in ("RGB", "YCbCr") else None, need)
        im.load()
        if im.mode not in _REDUCIBLE:
            im = im.convert("RGB")
        k = int(min(im.size[0] / max(1, round(info.width * scale)), im.size[1] / max(1, round(info.height * scale))))
        if k >= 2:
            im = _reduce(im, k)
        if exif and info.orientation != 1:
            im = ImageOps.exif_transpose(im)
        rgb = np.asarray(im.convert("RGB"))
    except MediaError:
        raise
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise _bad(mime, exc) from None
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    if (bgr.shape[1], bgr.shape[0]) != target:
        bgr = cv2.resize(bgr, target, interpolation=cv2.INTER_AREA)
    return bgr, scale


def decode(
    data: bytes,
    max_pixels: int,
    accept: tuple[str, ...] = ACCEPTED_TYPES,
    exif: bool = True,
) -> tuple[np.ndarray, str]:
    """Decode to a uint8 BGR array (EXIF rotation applied); returns (array, MIME type).

    Refusals: 415 when the bytes are not an accepted image type, 413 when width x height exceeds
    ``max_pixels`` (checked from the header, before decoding), 422 when the data is corrupt or truncated.
    """
    from PIL import Image, ImageOps

    mime = sniff(data)
    if mime is None or mime not in accept:
        names = ", ".join(t.split("/")[1].upper() for t in accept)
        raise MediaError(415, "unsupported_media_type", f"not an accepted image (by its content): send {names}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[mime]])
            w, h = im.size
            if w * h > max_pixels:
                msg = f"image is {w}x{h} = {w * h} pixels; the limit is {max_pixels}"
                raise MediaError(413, "too_many_pixels", msg)
            if w < 1 or h < 1:
                raise MediaError(422, "bad_image", "image has no pixels")
            im.load()
            if exif:
                im = ImageOps.exif_transpose(im)
            rgb = np.asarray(im.convert("RGB"))
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError(413, "too_many_pixels", str(exc)) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        msg = str(exc).split("\n")[0] or type(exc).__name__
        raise MediaError(422, "bad_image", f"could not decode the {mime.split('/')[1].upper()} data ({msg})") from None
    return np.ascontiguousarray(rgb[..., ::-1]), mime


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


def fit(bgr: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink so the longer side is at most ``max_side``; returns (image, scale applied)."""
    h, w = bgr.shape[:2]
    s = max(h, w)
    if s <= max_side:
        return bgr, 1.0
    scale = max_side / s
    out = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    return out, scale
