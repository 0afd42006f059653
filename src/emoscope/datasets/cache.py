"""A small on-disk cache so that re-reading a large dataset takes seconds, not minutes."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from ..labels import get_scheme
from .faceset import FaceSet

CACHE_VERSION = 1


def cache_dir() -> Path:
    """``$EMOSCOPE_CACHE`` or ``~/.cache/emoscope``."""
    return Path(os.environ.get("EMOSCOPE_CACHE", Path.home() / ".cache" / "emoscope"))


def cache_key(*parts: object) -> str:
    """A stable hash of the reader's arguments and the files' (name, size, mtime)."""
    blob = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def load_cached(key: str) -> FaceSet | None:
    path = cache_dir() / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            failures = json.loads(str(z["failures"]))
            return FaceSet(
                z["images"],
                z["labels"],
                z["splits"].astype(object),
                z["sources"].astype(object),
                get_scheme(str(z["scheme"])),
                [tuple(f) for f in failures],
            )
    except Exception:  # a damaged cache file is rebuilt, never trusted
        return None


def save_cached(key: str, fs: FaceSet) -> None:
    """Write atomically (temp file + rename) so an interrupted write never leaves a bad cache."""
    d = cache_dir()
    try:
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"{key}.tmp.npz"
        np.savez(
            tmp,
            images=fs.images,
            labels=fs.labels,
            splits=fs.splits.astype(str),
            sources=fs.sources.astype(str),
            scheme=np.array(fs.scheme.name),
            failures=np.array(json.dumps(fs.failures)),
        )
        os.replace(tmp, d / f"{key}.npz")
    except OSError:
        pass  # caching is an optimisation; a read-only home must not break loading
