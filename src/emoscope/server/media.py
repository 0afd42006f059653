"""Untrusted image bytes in, BGR arrays out (and back): type by magic bytes, size and pixel caps, clear refusals."""

from __future__ import annotations

import base64
import io
import warnings

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
