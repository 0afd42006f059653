"""Shared test helpers: where the real datasets live (tests that need them skip when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("EMOSCOPE_DATASETS", REPO.parent / "shared" / "datasets"))


def dataset_or_skip(name: str) -> Path:
    """Path of ``../shared/datasets/<name>``, or skip the test with a message saying what is missing."""
    path = DATASETS / name
    if not path.is_dir():
        pytest.skip(f"real dataset {path} is absent (set EMOSCOPE_DATASETS to the folder holding {name}/)")
    return path


@pytest.fixture
def fer_folder(tmp_path: Path) -> Path:
    """A small generated FER-2013-style image folder (3 faces per class and split), with one face copied across
    splits so the duplicate report has something to find."""
    import cv2

    from test_datasets import make_folder

    root = make_folder(tmp_path / "fer", per_class=3)
    img = cv2.imread(str(next((root / "train" / "happy").glob("*.png"))), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(root / "test" / "happy" / "PublicTest_copy.png"), img)
    return root
