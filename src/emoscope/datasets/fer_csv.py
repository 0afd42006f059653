"""FER-2013 as Kaggle distributes it: ``fer2013.csv`` (optionally ``.gz``) with ``emotion,pixels,Usage``."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..labels import LabelScheme, get_scheme
from .cache import cache_key, load_cached, save_cached
from .faceset import DatasetError, FaceSet

FER_IDS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _open_text(path: Path) -> io.TextIOBase:
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def read_fer_csv(
    path: str | Path,
    scheme: str | LabelScheme = "fer7",
    use_cache: bool = True,
    progress: bool = True,
    size: int = 48,
) -> FaceSet:
    """Read ``emotion,pixels[,Usage]`` rows; each pixel string holds ``size*size`` gray values.

    Rows without ``Usage`` get split ``all``. Rows whose emotion is not in ``scheme`` after its merges
    (e.g. disgust under ``fer6``) are dropped and counted in ``failures``. Malformed rows raise
    :class:`DatasetError` naming the row.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file not found. Download fer2013.csv (Kaggle) and pass its path.")
    sch = get_scheme(scheme)
    key = None
    if use_cache:
        st = path.stat()
        key = cache_key("fer_csv", str(path.resolve()), st.st_size, int(st.st_mtime), sch.name, size)
        cached = load_cached(key)
        if cached is not None:
            return cached

    n_pix = size * size
    images, labels, splits, sources = [], [], [], []
    failures: list[tuple[str, str]] = []
    try:
        with _open_text(path) as f:
            reader = csv.DictReader(f)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            reader.fieldnames = cols
            missing = {"emotion", "pixels"} - set(cols)
            if missing:
                raise DatasetError(
                    f"{path}: missing column(s) {sorted(missing)}; found {cols}. "
                    "A FER-2013 CSV has the header 'emotion,pixels,Usage'."
                )
            for i, row in enumerate(tqdm(reader, desc=f"reading {path.name}", unit="row", disable=not progress,
                                         leave=False)):
                line = i + 2  # 1-based, after the header
                where = f"{path.name} line {line}"
                try:
                    emotion = int(str(row["emotion"]).strip())
                except (TypeError, ValueError):
                    raise DatasetError(f"{where}: emotion {row['emotion']!r} is not an integer 0-6") from None
                if not 0 <= emotion < len(FER_IDS):
                    raise DatasetError(f"{where}: emotion {emotion} is outside 0-6")
                try:
                    pix = np.array(str(row["pixels"] or "").split(), dtype=np.int64)
                except ValueError:
                    raise DatasetError(f"{where}: pixels must be space-separated integers") from None
                if pix.size != n_pix:
                    raise DatasetError(f"{where}: {pix.size} pixel values, expected {n_pix} ({size}x{size})")
                if pix.min() < 0 or pix.max() > 255:
                    raise DatasetError(f"{where}: pixel values must be 0-255")
                name = FER_IDS[emotion]
                name = sch.merges.get(name, name)
                if name not in sch.classes:
                    failures.append((where, f"label {FER_IDS[emotion]!r} not in scheme {sch.name}"))
                    continue
                images.append(pix.astype(np.uint8).reshape(size, size))
                labels.append(sch.index(name))
                splits.append((row.get("Usage") or "all").strip())
                sources.append(f"{path.name}:{i}")
    except (OSError, EOFError, gzip.BadGzipFile, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read ({type(exc).__name__}: {exc}); is the file complete?") from None
    if not images:
        raise DatasetError(f"{path}: no data rows")
    fs = FaceSet(np.stack(images), np.array(labels), np.array(splits, dtype=object),
                 np.array(sources, dtype=object), sch, failures)
    if key:
        save_cached(key, fs)
    return fs
