"""Image-folder datasets: ``<root>/<split>/<label>/*.jpg`` (or ``<root>/<label>/*.jpg``).

The FER-2013 folder release keeps the official ``Usage`` in the file-name prefix
(``Training_``, ``PublicTest_``, ``PrivateTest_``); when every file carries such a prefix the
split is taken from it, so ``test/`` splits back into PublicTest and PrivateTest.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..labels import LabelScheme, clean_labels, get_scheme
from .cache import cache_key, load_cached, save_cached
from .faceset import DatasetError, FaceSet
from .images import IMAGE_EXTENSIONS, ImageReadError, center_square, read_gray

FER_PREFIX = re.compile(r"^(Training|PublicTest|PrivateTest)_")


def _list_images(root: Path) -> list[tuple[str, str, Path]]:
    """(split, raw_label, path) for every image; split is '' for a flat <root>/<label>/ layout."""
    entries: list[tuple[str, str, Path]] = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        rel = path.relative_to(root).parts
        if len(rel) == 3:
            entries.append((rel[0], rel[1], path))
        elif len(rel) == 2:
            entries.append(("", rel[0], path))
    return entries


def read_image_folder(
    root: str | Path,
    scheme: str | LabelScheme = "fer7",
    size: int = 48,
    merges: dict[str, str] | None = None,
    use_cache: bool = True,
    progress: bool = True,
) -> FaceSet:
    """Read an image-folder dataset of any image size into a 48x48 gray :class:`FaceSet`.

    Unreadable files are counted in ``FaceSet.failures`` (and never silently dropped);
    an empty folder or unknown class folder raises :class:`DatasetError`.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a directory. Pass the folder that holds <split>/<label>/ images.")
    sch = get_scheme(scheme)
    entries = _list_images(root)
    if not entries:
        raise DatasetError(
            f"{root}: no images found. Expected <root>/<split>/<label>/*.jpg or <root>/<label>/*.jpg "
            f"with extensions {sorted(IMAGE_EXTENSIONS)}."
        )
    fer_split = all(FER_PREFIX.match(p.name) for _, _, p in entries)
    splits = [FER_PREFIX.match(p.name).group(1) if fer_split else (s or "all") for s, _, p in entries]
    labels = clean_labels([lab for _, lab, _ in entries], sch, merges, where=f"{root} (class folder names)")

    key = None
    if use_cache:
        stats = [(str(p.relative_to(root)), p.stat().st_size, int(p.stat().st_mtime)) for _, _, p in entries]
        key = cache_key("folder", str(root.resolve()), sch.name, merges, size, stats)
        cached = load_cached(key)
        if cached is not None:
            return cached

    images = np.zeros((len(entries), size, size), np.uint8)
    keep = np.zeros(len(entries), bool)
    failures: list[tuple[str, str]] = []
    for i, (_, _, path) in enumerate(
        tqdm(entries, desc=f"reading {root.name}", unit="img", disable=not progress, leave=False)
    ):
        try:
            images[i] = center_square(read_gray(path), size)
            keep[i] = True
        except ImageReadError as exc:
            failures.append((str(path), str(exc)))
    if not keep.any():
        raise DatasetError(f"{root}: none of the {len(entries)} images could be read; first: {failures[0]}")
    fs = FaceSet(
        images[keep],
        np.asarray(labels)[keep],
        np.asarray(splits, dtype=object)[keep],
        np.asarray([str(p.relative_to(root)) for _, _, p in entries], dtype=object)[keep],
        sch,
        failures,
    )
    if key:
        save_cached(key, fs)
    return fs

