"""FER+ relabels (Microsoft, 10 annotators per image) joined onto the FER-2013 image folder.

``fer2013_row_index.csv`` maps each Kaggle image path to its row in the original ``fer2013.csv``;
the same row of ``ferplus/fer2013new.csv`` holds that image's votes. Labels follow FER+'s
"majority" mode: single stray votes are discarded, an image is kept when one emotion has more
than half of the remaining votes, and images whose winner is "unknown" or "not a face" are dropped.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..labels import LabelScheme, get_scheme
from .faceset import DatasetError, FaceSet
from .folder import read_image_folder

VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt",
                "unknown", "NF")
VOTE_TO_EMOTION = {"neutral": "neutral", "happiness": "happy", "surprise": "surprise", "sadness": "sad",
                   "anger": "angry", "disgust": "disgust", "fear": "fear", "contempt": "contempt"}


def counted_votes(votes: np.ndarray) -> np.ndarray:
    """The votes FER+ counts: a single vote for a column is an outlier and dropped (works on one row or a table)."""
    return np.where(votes <= 1, 0, votes)


def column_classes(scheme: str | LabelScheme) -> np.ndarray:
    """For each of VOTE_COLUMNS, its class index in ``scheme`` after the scheme's merges, or -1 when it has none
    ("unknown", "not a face", or an emotion the scheme drops)."""
    sch = get_scheme(scheme)
    to_class = np.full(len(VOTE_COLUMNS), -1)
    for j, col in enumerate(VOTE_COLUMNS):
        name = VOTE_TO_EMOTION.get(col)
        name = sch.merges.get(name, name) if name else None
        if name in sch.classes:
            to_class[j] = sch.index(name)
    return to_class


def majority_label(votes: np.ndarray) -> int | None:
    """Index into VOTE_COLUMNS of the majority emotion, or None (no majority, unknown or not-a-face)."""
    v = counted_votes(votes)
    total = v.sum()
    if total == 0:
        return None
    best = int(np.argmax(v))
    if v[best] * 2 <= total or VOTE_COLUMNS[best] in ("unknown", "NF"):
        return None
    return best


def read_votes(
    fer_root: str | Path, ferplus_csv: str | Path | None = None, row_index_csv: str | Path | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """FER+'s vote table (rows x VOTE_COLUMNS) and the map from each folder image's path to its row."""
    root = Path(fer_root)
    votes_path = Path(ferplus_csv or root / "ferplus" / "fer2013new.csv")
    index_path = Path(row_index_csv or root / "fer2013_row_index.csv")
    for p, what in ((votes_path, "FER+ votes (fer2013new.csv)"), (index_path, "row index (fer2013_row_index.csv)")):
        if not p.is_file():
            raise DatasetError(f"{p}: {what} not found")
    with open(votes_path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in VOTE_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{votes_path}: missing vote column(s) {missing}")
        votes = np.array([[int(r[c] or 0) for c in VOTE_COLUMNS] for r in reader]).reshape(-1, len(VOTE_COLUMNS))
    row_of: dict[str, int] = {}
    with open(index_path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("fer2013_row"):
                row_of[r["kaggle_path"]] = int(r["fer2013_row"])
    return votes, row_of


def vote_distributions(
    fer_root: str | Path,
    sources: np.ndarray | list[str],
    scheme: str | LabelScheme = "fer7",
    ferplus_csv: str | Path | None = None,
    row_index_csv: str | Path | None = None,
) -> np.ndarray:
    """Each image's share of FER+ emotion votes, as an N x classes float32 array in ``scheme``'s order.

    The annotators' disagreement is what these rows carry beyond a single label (training on them is FER+'s
    "probability" mode). As for the majority label, single stray votes are dropped, "unknown" and "not a face"
    votes do not count, and an emotion outside the scheme goes to its merge (contempt -> disgust in ``fer7``) or
    is dropped. An image with no FER+ row, or no emotion votes left, gets a row of zeros: the caller decides
    what stands in for it.
    """
    sch = get_scheme(scheme)
    votes, row_of = read_votes(fer_root, ferplus_csv, row_index_csv)
    to_scheme = (column_classes(sch)[:, None] == np.arange(sch.num_classes)).astype(np.float32)  # columns x classes
    rows = np.array([row_of.get(str(src), -1) for src in sources], dtype=int)
    found = (rows >= 0) & (rows < len(votes))
    out = np.zeros((len(sources), sch.num_classes), dtype=np.float32)
    out[found] = counted_votes(votes[rows[found]]) @ to_scheme
    total = out.sum(1, keepdims=True)
    return np.divide(out, total, out=np.zeros_like(out), where=total > 0)


def read_ferplus(
    fer_root: str | Path,
    scheme: str | LabelScheme = "ferplus8",
    ferplus_csv: str | Path | None = None,
    row_index_csv: str | Path | None = None,
    progress: bool = True,
) -> FaceSet:
    """FER-2013 folder images with FER+ majority labels (``ferplus8``, or ``fer7`` with contempt -> disgust)."""
    root = Path(fer_root)
    sch = get_scheme(scheme)
    votes, row_of = read_votes(root, ferplus_csv, row_index_csv)
    to_class = column_classes(sch)

    base = read_image_folder(root, scheme="fer7", progress=progress)
    keep, labels = [], []
    failures = list(base.failures)
    dropped = 0
    for i, src in enumerate(base.sources):
        row = row_of.get(src)
        if row is None or row >= len(votes):
            failures.append((src, "no FER+ row (unmatched image)"))
            continue
        best = majority_label(votes[row])
        if best is None or to_class[best] < 0:  # no majority, or an emotion the scheme drops
            dropped += 1
            continue
        keep.append(i)
        labels.append(int(to_class[best]))
    idx = np.array(keep, dtype=int)
    fs = FaceSet(base.images[idx], np.array(labels), base.splits[idx], base.sources[idx], sch, failures)
    fs.dropped_no_majority = dropped  # type: ignore[attr-defined]
    return fs
