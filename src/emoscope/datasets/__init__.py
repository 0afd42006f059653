"""Dataset readers. Every reader returns a :class:`FaceSet`; :func:`load_dataset` picks one by path."""

from __future__ import annotations

from pathlib import Path

from ..labels import LabelScheme
from .faceset import DatasetError, FaceSet
from .folder import read_image_folder


def load_dataset(path: str | Path, scheme: str | LabelScheme = "fer7", labels: str = "default", **kwargs) -> FaceSet:
    """Read a dataset, choosing the reader from what ``path`` is.

    ``labels="ferplus"`` reads the FER-2013 folder with the FER+ majority-vote labels instead
    (see :mod:`emoscope.datasets.ferplus`; use scheme ``ferplus8`` to keep contempt).

    - ``*.csv`` / ``*.csv.gz`` with ``emotion,pixels`` columns: FER-2013 CSV;
    - a folder holding ``legend.csv`` (or ``data/legend.csv``), or a ``legend.csv`` file: legend dataset;
    - any other folder: image-folder layout ``<root>/<split>/<label>/*``.
    """
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"{p}: no such file or folder")
    if labels == "ferplus":
        from .ferplus import read_ferplus

        return read_ferplus(p, scheme=scheme, **kwargs)
    if labels != "default":
        raise DatasetError(f"unknown labels {labels!r}; use 'default' or 'ferplus'")
    if p.is_file() and p.name.lower() == "legend.csv" or p.is_dir() and _find_legend(p):
        from .legend import read_legend

        return read_legend(p, scheme=scheme, **kwargs)
    if p.is_file() and (p.suffix.lower() == ".csv" or p.name.lower().endswith(".csv.gz")):
        from .fer_csv import read_fer_csv

        return read_fer_csv(p, scheme=scheme, **kwargs)
    if p.is_dir():
        return read_image_folder(p, scheme=scheme, **kwargs)
    raise DatasetError(f"{p}: not a dataset. Give a FER-2013 CSV, an image folder, or a legend.csv dataset.")


def _find_legend(folder: Path) -> Path | None:
    for cand in (folder / "legend.csv", folder / "data" / "legend.csv"):
        if cand.is_file():
            return cand
    return None


__all__ = ["DatasetError", "FaceSet", "load_dataset", "read_image_folder"]
