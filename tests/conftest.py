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


#: Set by .ci/run, which starts a scratch PostgreSQL server for the test run.
PG_URL_ENV = "EMOSCOPE_TEST_PG_URL"


@pytest.fixture
def pg_url():
    """A fresh, empty PostgreSQL schema on the scratch server named by ``$EMOSCOPE_TEST_PG_URL`` (started by
    .ci/run); skips with a message when it is unset. The URL sets ``search_path``, so every connection made from
    it (subprocesses too) sees only this test's schema, which is dropped afterwards."""
    import uuid

    import sqlalchemy as sa

    base = os.environ.get(PG_URL_ENV)
    if not base:
        pytest.skip(f"no PostgreSQL server: set {PG_URL_ENV}=postgresql+psycopg://... (.ci/run starts one)")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def mood_db(request, tmp_path) -> str:
    """Where a new mood log lives, once per backend: an SQLite file in tmp_path, and a fresh PostgreSQL schema
    (skipped without a server, see :func:`pg_url`)."""
    if request.param == "sqlite":
        return str(tmp_path / "mood.db")
    return request.getfixturevalue("pg_url")
