"""``legend.csv`` datasets (columns ``user.id,image,emotion``) with images of any size and colour.

Example: the muxspace facial_expressions set (``data/legend.csv`` + ``images/``). Labels are cleaned
(case, synonyms, merges such as contempt -> disgust); each image becomes a 48x48 gray face through
``crop`` (a face-detector crop when the caller has one; centre square otherwise).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..labels import LabelError, LabelScheme, canonical_name, get_scheme
from .cache import cache_key, load_cached, save_cached
from .faceset import DatasetError, FaceSet
from .images import ImageReadError, center_square, read_gray
from .splits import cap_classes, grouped_split, stratified_split

REQUIRED = ("image", "emotion")


def _locate(path: Path) -> tuple[Path, Path]:
    """(legend.csv, image folder) from a dataset folder or the legend file itself."""
    if path.is_file():
        legend = path
        root = path.parent.parent if path.parent.name == "data" else path.parent
    else:
        legend = path / "legend.csv" if (path / "legend.csv").is_file() else path / "data" / "legend.csv"
        root = path
    images = root / "images" if (root / "images").is_dir() else root
    if not legend.is_file():
        raise DatasetError(f"{path}: no legend.csv found (looked in {path} and {path / 'data'})")
    return legend, images


def read_legend_rows(legend: Path) -> list[dict[str, str]]:
    """The legend's rows with stripped column names; clear errors for a missing file or wrong columns."""
    try:
        with open(legend, encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            cols = [c.strip().lower() for c in reader.fieldnames or []]
            missing = [c for c in REQUIRED if c not in cols]
            if missing:
                raise DatasetError(
                    f"{legend}: missing column(s) {missing}; found {cols}. Expected 'user.id,image,emotion'."
                )
            reader.fieldnames = cols
            return [{k: (v or "").strip() for k, v in row.items() if k} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{legend}: cannot read ({exc})") from None


def labelled_images(rows: list[dict[str, str]], sch: LabelScheme, table: Mapping[str, str], legend: Path
                     ) -> tuple[list[tuple[str, int]], list[tuple[str, str]]]:
    """(image, class id) per image with one agreed label, and failures for images with conflicting labels.

    Unknown labels raise one :class:`LabelError` listing each with its count.
    """
    by_image: dict[str, set[str]] = {}
    unknown: Counter[str] = Counter()
    for row in rows:
        name = canonical_name(row["emotion"])
        name = table.get(name, name)
        if name not in sch.classes:
            unknown[row["emotion"]] += 1
            continue
        by_image.setdefault(row["image"], set()).add(name)
    if unknown:
        listing = ", ".join(f"{k!r} x{v}" for k, v in unknown.most_common())
        raise LabelError(f"{legend}: labels not in scheme {sch.name!r} ({', '.join(sch.classes)}): {listing}. "
                         "Pass merges={...} to map them.")
    failures: list[tuple[str, str]] = []
    items: list[tuple[str, int]] = []
    for image, names in sorted(by_image.items()):
        if len(names) > 1:
            failures.append((image, f"conflicting labels {sorted(names)}"))
        else:
            items.append((image, sch.index(next(iter(names)))))
    return items, failures


def _read_faces(items: list[tuple[str, int]], failures: list[tuple[str, str]], legend: Path, img_dir: Path,
                sch: LabelScheme, crop: Callable[[np.ndarray], np.ndarray | None] | None, size: int, progress: bool
                ) -> FaceSet:
    """Read and crop every labelled image; missing, unreadable and faceless ones are added to ``failures``."""
    images, labels, sources = [], [], []
    for image, label in tqdm(items, desc=f"reading {legend.parent.name}", unit="img", disable=not progress,
                             leave=False):
        p = img_dir / image
        if not p.is_file():
            failures.append((image, "listed in legend.csv but the image file is missing"))
            continue
        try:
            gray = read_gray(p)
            face = crop(gray) if crop else center_square(gray, size)
        except ImageReadError as exc:
            failures.append((image, str(exc)))
            continue
        if face is None:
            failures.append((image, "no face found"))
            continue
        images.append(face)
        labels.append(label)
        sources.append(image)
    if not images:
        raise DatasetError(f"{legend}: none of {len(items)} labelled images could be read from {img_dir}")
    return FaceSet(np.stack(images), np.array(labels), np.full(len(images), "all", dtype=object),
                   np.array(sources, dtype=object), sch, failures)


def read_legend(
    path: str | Path,
    scheme: str | LabelScheme = "fer7",
    merges: Mapping[str, str] | None = None,
    crop: Callable[[np.ndarray], np.ndarray | None] | None = None,
    cap_per_class: int | Mapping[str, int] | None = None,
    split: tuple[float, float, float] | None = (0.6, 0.2, 0.2),
    seed: int = 0,
    split_by: str = "photo",
    size: int = 48,
    use_cache: bool = True,
    progress: bool = True,
) -> FaceSet:
    """Read a legend.csv dataset into a :class:`FaceSet` with seeded ``train``/``val``/``test`` splits.

    - Labels: case-insensitive, synonyms resolved, ``merges`` (default: the scheme's, contempt -> disgust);
      unknown labels raise :class:`LabelError` listing each with its count.
    - Rows naming the same image twice keep one row; an image with conflicting labels is left out
      and reported in ``failures``. Rows whose image file is missing or unreadable are reported too.
    - ``cap_per_class`` (e.g. 500, or {"neutral": 500, "happy": 500}) balances classes, seeded.
    - ``split_by="photo"`` stratifies each class's photos into the splits; ``"person"`` keeps each person's
      photos in one split (the person read from LFW-style file names, ``Al_Gore_0002.jpg`` -> ``Al_Gore``; see
      :func:`~emoscope.datasets.splits.grouped_split`), so a held-out split shows people the model never saw.
    - ``crop`` maps a gray image of any size to a face (or None when it finds none: the image is reported in
      ``failures``); default: centre square resized to ``size``.
    """
    if split_by not in ("photo", "person"):
        raise DatasetError(f"split_by must be 'photo' or 'person', got {split_by!r}")
    sch = get_scheme(scheme)
    legend, img_dir = _locate(Path(path))
    rows = read_legend_rows(legend)
    if not rows:
        raise DatasetError(f"{legend}: no rows")
    table = dict(sch.merges if merges is None else merges)

    items, failures = labelled_images(rows, sch, table, legend)
    key = None
    if use_cache and crop is None:
        key = cache_key("legend", str(legend.resolve()), legend.stat().st_mtime, str(img_dir.resolve()),
                        sch.name, table, size, len(items))
    cached = load_cached(key) if key else None
    if cached is None:
        cached = _read_faces(items, failures, legend, img_dir, sch, crop, size, progress)
        if key:
            save_cached(key, cached)
    fs = cached
    if cap_per_class is not None:
        fs = cap_classes(fs, cap_per_class, seed)
        fs.failures = list(cached.failures)
    if split is not None:
        how = stratified_split if split_by == "photo" else grouped_split
        fs = how(fs, split, ("train", "val", "test"), seed)
    return fs


__all__ = ["LabelError", "labelled_images", "read_legend", "read_legend_rows"]
