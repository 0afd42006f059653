"""Kept for old imports: picture decoding lives in :mod:`emoscope.imaging` (one decoder for everything)."""

from __future__ import annotations

from ..imaging import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    ImageReadError,
    center_square,
    from_array,
    from_pil,
    is_pil,
    read_gray,
    read_image,
    to_gray,
)

__all__ = ["IMAGE_EXTENSIONS", "MAX_PIXELS", "ImageReadError", "center_square", "from_array", "from_pil", "is_pil",
           "read_gray", "read_image", "to_gray"]
