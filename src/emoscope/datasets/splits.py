"""Seeded class balancing and stratified splits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def stratified_split(
    fs: FaceSet,
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
    names: Sequence[str] = ("train", "val", "test"),
    seed: int = 0,
) -> FaceSet:
    """Assign every face a split name, per class in the given proportions (seeded); returns a new FaceSet."""
    if len(fractions) != len(names):
        raise DatasetError("fractions and names must have the same length")
    if abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise DatasetError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
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


def check_classes_present(fs: FaceSet, where: str = "dataset") -> None:
    """Raise a clear error when a class of the scheme has no faces (training would silently ignore it)."""
    empty = [c for c, k in fs.class_counts().items() if k == 0]
    if empty:
        raise DatasetError(
            f"{where}: class(es) {', '.join(empty)} have no faces. Add examples, merge the class "
            f"(e.g. scheme 'fer6' drops disgust), or choose another label scheme."
        )
