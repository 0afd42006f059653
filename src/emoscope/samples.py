"""Sample pictures that need no download: skimage's astronaut photo and scenes built from her face.

``emoscope predict --example`` runs on :func:`astronaut_bgr`; :func:`group_photo` is the "distant group" the face
detector's tiles are tested and timed on (tests, ``benchmarks/speed.py``), and a quick way to try a detector.
"""

from __future__ import annotations

import cv2
import numpy as np

#: The astronaut's face box (x, y, w, h) in the 512 x 512 photo.
ASTRONAUT_FACE = (174, 70, 105, 105)


def astronaut_bgr() -> np.ndarray:
    """skimage's astronaut photo (Eileen Collins, public domain) as a 512 x 512 BGR uint8 array."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[..., ::-1])


def group_photo(width: int = 1920, height: int = 1080, face_px: int = 60, seed: int = 0
                ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Eight copies of the astronaut's face, ``face_px`` wide, in a 4 x 2 grid on blurred noise.

    Returns the BGR picture and the eight face centres (x, y), for checking what a detector found.
    """
    x, y, w, h = ASTRONAUT_FACE
    m = int(0.6 * w)
    face = astronaut_bgr()[y - m : y + h + m, x - m : x + w + m]
    side = int(face_px * face.shape[0] / h)
    if side > min(width // 4, height // 2):
        raise ValueError(f"{face_px}-px faces do not fit a 4 x 2 grid in {width} x {height}")
    face = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(seed).integers(60, 200, (height, width, 3), dtype=np.uint8)
    canvas = cv2.GaussianBlur(noise, (31, 31), 10)
    centres = []
    for gy in range(2):
        for gx in range(4):
            cx, cy = int((gx + 0.5) * width / 4), int((gy + 0.5) * height / 2)
            canvas[cy - side // 2 : cy - side // 2 + side, cx - side // 2 : cx - side // 2 + side] = face
            centres.append((cx, cy))
    return canvas, centres
