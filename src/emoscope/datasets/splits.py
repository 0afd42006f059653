"""Seeded class balancing and stratified splits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath

import numpy as np

from .faceset import DatasetError, FaceSet


def cap_classes(fs: FaceSet, cap: int | Mapping[str, int], seed: int = 0) -> FaceSet:
    """Keep at most ``cap`` faces per class (an int for all, or {class: cap}), chosen at random (seeded)."""
    rng = np.random.default_rng(seed)
    keep: list[np.ndarray] = []
    for c, name in enumerate(fs.classes):
        idx = np.flatnonzero(fs.labels == c)
        limit = cap.get(name) if isinstance(cap, Mapping) else cap
        if limit is not None and len(idx) > limit:
            idx = np.sort(rng.choice(idx, size=limit, replace=False))
        keep.append(idx)
    return fs.subset(np.sort(np.concatenate(keep)))


def _check_fractions(fractions: Sequence[float], names: Sequence[str]) -> None:
    if len(fractions) != len(names):
        raise DatasetError("fractions and names must have the same length")
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise DatasetError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")


def stratified_split(
    fs: FaceSet,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    names: Sequence[str] = ("train", "val", "test"),
    seed: int = 0,
) -> FaceSet:
    """Assign every face a split name, per class in the given proportions (seeded); returns a new FaceSet."""
    _check_fractions(fractions, names)
    rng = np.random.default_rng(seed)
    splits = np.empty(len(fs), dtype=object)
    for c in range(fs.scheme.num_classes):
        idx = rng.permutation(np.flatnonzero(fs.labels == c))
        bounds = np.round(np.cumsum(fractions) * len(idx)).astype(int)
        start = 0
        for name, end in zip(names, bounds, strict=True):
            splits[idx[start:end]] = name
            start = end
    out = fs.subset(np.arange(len(fs)))
    out.splits = splits
    out.failures = list(fs.failures)
    return out


def person_of(name: str) -> str:
    """The person an LFW-style file name shows: ``George_W_Bush_0001.jpg`` -> ``George_W_Bush``; other names are
    their own person (the stem)."""
    stem = PurePath(name).stem
    return re.sub(r"_\d+$", "", stem) or stem


def hashed_split(
    keys: Sequence[str],
    fractions: Sequence[float] = (0.5, 0.5),
    names: Sequence[str] = ("train", "test"),
    seed: int = 0,
) -> np.ndarray:
    """The split name of each key, from a seeded hash of the key alone.

    Every row with the same key (one person's photos) lands in the same split, and a key's split does not depend
    on which other rows are present, so two tools reading different subsets of a dataset (a trainer that drops
    faceless photos, a benchmark that keeps them) agree on which people were held out. Split sizes follow the
    fractions in expectation, not exactly, and classes are not stratified.
    """
    _check_fractions(fractions, names)
    bounds = np.cumsum(fractions)
    out = np.empty(len(keys), dtype=object)
    for i, key in enumerate(keys):
        digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2.0**64
        out[i] = names[min(int(np.searchsorted(bounds, u, side="right")), len(names) - 1)]
    return out


def grouped_split(
    fs: FaceSet,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    names: Sequence[str] = ("train", "val", "test"),
    seed: int = 0,
) -> FaceSet:
    """Assign every face a split by its person (:func:`person_of` its source name), so that no person is in two
    splits: the held-out splits measure other people, not other photos of the same people."""
    out = fs.subset(np.arange(len(fs)))
    out.splits = hashed_split([person_of(str(s)) for s in fs.sources], fractions, names, seed)
    out.failures = list(fs.failures)
    return out


def check_classes_present(fs: FaceSet, where: str = "dataset") -> None:
    """Raise a clear error when a class of the scheme has no faces (training would silently ignore it)."""
    empty = [c for c, k in fs.class_counts().items() if k == 0]
    if empty:
        raise DatasetError(
            f"{where}: class(es) {', '.join(empty)} have no faces. Add examples, merge the class "
            f"(e.g. scheme 'fer6' drops disgust), or choose another label scheme."
        )
