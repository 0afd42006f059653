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
