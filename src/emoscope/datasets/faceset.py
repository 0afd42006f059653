"""FaceSet: the one in-memory form every dataset reader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EmoscopeError
from ..labels import LabelScheme, get_scheme


class DatasetError(EmoscopeError, ValueError):
    """A dataset could not be read; the message names the file/row and what to do."""


@dataclass
class FaceSet:
    """Faces as ``uint8`` N x H x W gray images with labels, split names and source ids.

    ``failures`` lists ``(source, reason)`` for inputs that could not be read, so callers
    can report them instead of losing them silently.
    """

    images: np.ndarray
    labels: np.ndarray
    splits: np.ndarray
    sources: np.ndarray
    scheme: LabelScheme = field(default_factory=lambda: get_scheme("fer7"))
    failures: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.splits = np.asarray(self.splits, dtype=object)
        self.sources = np.asarray(self.sources, dtype=object)
        n = len(self.images)
        if self.images.ndim != 3:
            raise DatasetError(f"images must be N x H x W, got shape {self.images.shape}")
        for name in ("labels", "splits", "sources"):
            if len(getattr(self, name)) != n:
                raise DatasetError(f"{name} has {len(getattr(self, name))} entries for {n} images")
        if n and (self.labels.min() < 0 or self.labels.max() >= self.scheme.num_classes):
            raise DatasetError(f"labels outside 0..{self.scheme.num_classes - 1} for scheme {self.scheme.name}")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.scheme.classes

    @property
    def split_names(self) -> list[str]:
        return sorted(set(self.splits.tolist()))

    def subset(self, mask_or_index: np.ndarray | slice) -> FaceSet:
        """A new FaceSet holding the selected rows (boolean mask, integer index or slice)."""
        idx = mask_or_index if isinstance(mask_or_index, slice) else np.asarray(mask_or_index)
        return FaceSet(
            self.images[idx], self.labels[idx], self.splits[idx], self.sources[idx], self.scheme, []
        )

    def split(self, name: str) -> FaceSet:
        """Rows of one split; the name is matched case-insensitively."""
        lowered = np.array([str(s).lower() for s in self.splits])
        mask = lowered == name.lower()
        if not mask.any():
            raise DatasetError(f"no split named {name!r}; this dataset has splits {self.split_names}")
        return self.subset(mask)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=self.scheme.num_classes)
        return {c: int(k) for c, k in zip(self.classes, counts, strict=True)}

    def counts_by_split(self) -> dict[str, dict[str, int]]:
        return {s: self.split(s).class_counts() for s in self.split_names}

    def failure_summary(self, kinds: int = 4, examples: int = 2) -> str:
        """One readable paragraph about unreadable inputs ('' when none): each kind of failure with its count and
        a few of its inputs, most common first, so that a rare kind (no face found) is not hidden behind a common
        one (thousands of legend rows whose image is missing)."""
        if not self.failures:
            return ""
        by_reason: dict[str, list[str]] = {}
        for src, why in self.failures:
            by_reason.setdefault(why, []).append(src)
        ranked = sorted(by_reason.items(), key=lambda kv: -len(kv[1]))
        parts = []
        for why, srcs in ranked[:kinds]:
            more = f", +{len(srcs) - examples} more" if len(srcs) > examples else ""
            parts.append(f"{why} x{len(srcs)} (e.g. {', '.join(srcs[:examples])}{more})")
        rest = ranked[kinds:]
        if rest:
            parts.append(f"{len(rest)} other reason(s) x{sum(len(v) for _, v in rest)} (e.g. {rest[0][1][0]}: "
                         f"{rest[0][0]})")
        return f"{len(self.failures)} input(s) could not be read and were left out: " + "; ".join(parts)

    @staticmethod
    def concat(parts: list[FaceSet]) -> FaceSet:
        """Join face sets that share a scheme and image size."""
        if not parts:
            raise DatasetError("nothing to concatenate")
        failures = [f for p in parts for f in p.failures]
        return FaceSet(
            np.concatenate([p.images for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.splits for p in parts]),
            np.concatenate([p.sources for p in parts]),
            parts[0].scheme,
            failures,
        )
