"""Mood log: writes, aggregates, CSV export, retention, migrations, SIGKILL durability, and the ``mood`` CLI."""

from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from emoscope.cli import main
from emoscope.labels import EMOTIONS
from emoscope.mood import SCHEMA_VERSION, MoodError, MoodRow, MoodStore, day_bounds, parse_time

T0 = datetime(2024, 5, 1, tzinfo=UTC).timestamp()  # a UTC midnight


def probs(top: str, p: float = 0.7) -> dict[str, float]:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return {e: (p if e == top else rest) for e in EMOTIONS}


@pytest.fixture
def store(tmp_path):
    s = MoodStore(tmp_path / "mood.db")
    yield s
    s.close()


def test_sqlite_file_is_wal_and_versioned(store):
    assert store.journal_mode == "wal"
    assert store.schema_version() == SCHEMA_VERSION
    assert store.count() == 0


def test_add_and_read_back(store):
    ids = store.add([MoodRow(T0 + 5, "live", probs("happy"), track_id=3, session="abc")])
    assert len(ids) == 1
    (row,) = list(store.rows())
    assert row["id"] == ids[0] and row["label"] == "happy" and row["track_id"] == 3 and row["session"] == "abc"
    assert row["time"] == "2024-05-01T00:00:05.000Z"
    assert row["happy"] == pytest.approx(0.7)
    # missing emotions count as zero; the label is the argmax
    store.log("photo", {"sad": 0.9, "fear": 0.1}, ts=T0 + 6)
    assert [r["label"] for r in store.rows(source="photo")] == ["sad"]


@pytest.mark.parametrize("bad", [{"happy": 1.5}, {"happy": float("nan")}, {"happy": -0.1}])
def test_rejects_bad_probabilities(store, bad):
    with pytest.raises(ValueError):
        store.log("live", bad, ts=T0)
    assert store.count() == 0


def test_aggregates_match_the_rows_written(store):
    # hour 0: 3 happy + 1 sad; hour 2: 2 neutral; next day 10:00: 1 happy
    rows = [MoodRow(T0 + 60 * i, "live", probs("happy"), track_id=1) for i in range(3)]
    rows += [MoodRow(T0 + 600, "photo", probs("sad", 0.9))]
    rows += [MoodRow(T0 + 2 * 3600 + i, "live", probs("neutral")) for i in range(2)]
    rows += [MoodRow(T0 + 86400 + 10 * 3600, "live", probs("happy", 0.5))]
    store.add(rows)

    hours = store.aggregate(T0, T0 + 2 * 86400, "hour")
    assert [(h["t"], h["n"]) for h in hours] == [(T0, 4), (T0 + 7200, 2), (T0 + 86400 + 36000, 1)]
    h0 = hours[0]
    assert h0["counts"]["happy"] == 3 and h0["counts"]["sad"] == 1 and h0["dominant"] == "happy"
    assert h0["happy_share"] == pytest.approx(0.75)
    assert h0["mean"]["happy"] == pytest.approx((3 * 0.7 + 0.1 / 6) / 4, abs=1e-6)
    assert h0["start"] == "2024-05-01T00:00:00.000Z"

    days = store.aggregate(T0, T0 + 2 * 86400, "day")
    assert [(d["n"], d["happy_share"]) for d in days] == [(6, 0.5), (1, 1.0)]
    assert store.aggregate(T0, T0 + 86400, "day", source="photo")[0]["n"] == 1
    # the range is half-open and filters rows
    assert store.aggregate(T0 + 60, T0 + 3600, "hour")[0]["n"] == 3
    assert store.aggregate(T0 + 86400 * 5, T0 + 86400 * 6, "hour") == []


def test_buckets_follow_the_local_offset(store):
    # 23:30 UTC is 01:30 the next day at UTC+2
    store.log("live", probs("happy"), ts=T0 - 1800)
    (d,) = store.aggregate(T0 - 86400, T0 + 86400, "day", tz_offset_minutes=120)
    assert d["t"] == T0 - 7200  # local midnight, in UTC
    (d,) = store.aggregate(T0 - 86400, T0 + 86400, "day", tz_offset_minutes=0)
    assert d["t"] == T0 - 86400
    (m,) = store.aggregate(T0 - 3600, T0, "minute")
    assert m["t"] == T0 - 1800


def test_aggregate_refuses_bad_arguments(store):
    with pytest.raises(MoodError):
        store.aggregate(T0, T0 + 1, "week")
    with pytest.raises(MoodError):
        store.aggregate(T0, T0 + 1, "hour", tz_offset_minutes=24 * 60)


def test_csv_export(store):
    store.add([MoodRow(T0 + i, "live", probs("surprise"), track_id=i) for i in range(3)])
    buf = io.StringIO()
    assert store.write_csv(buf, T0 + 1) == 2
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [r["track_id"] for r in rows] == ["1", "2"]
    assert rows[0]["label"] == "surprise" and float(rows[0]["surprise"]) == pytest.approx(0.7)
    assert list(rows[0]) == ["id", "time", "source", "session", "track_id", "label", *EMOTIONS]


def test_retention_prunes_rows_and_captures(tmp_path):
    with MoodStore(tmp_path / "m.db", retention_days=7) as s:
        now = T0 + 30 * 86400
        s.add([MoodRow(now - d * 86400, "live", probs("happy")) for d in (1, 6, 8, 20)])
        s.add_capture(b"\xff\xd8old", 2, 2, 1, ts=now - 10 * 86400)
        s.add_capture(b"\xff\xd8new", 2, 2, 1, ts=now)
        assert s.prune(now=now) == 2
        assert s.count() == 2
        assert len(s.list_captures()) == 1
    with MoodStore(tmp_path / "m2.db", retention_days=0) as s:
        s.log("live", probs("happy"), ts=0)
        assert s.prune() == 0 and s.count() == 1


def test_captures_keep_only_the_newest(tmp_path):
    with MoodStore(tmp_path / "m.db", max_captures=3) as s:
        ids = [s.add_capture(bytes([i]), 4, 3, 2, session="x") for i in range(5)]
        listed = s.list_captures()
        assert [c["id"] for c in listed] == ids[:1:-1]
        assert listed[0]["width"] == 4 and listed[0]["n_faces"] == 2 and "data" not in listed[0]
        assert s.get_capture(ids[-1]) == (bytes([4]), "image/jpeg")
        assert s.get_capture(ids[0]) is None
        assert s.delete_capture(ids[-1]) and not s.delete_capture(ids[-1])


def test_migrates_a_v1_database_and_keeps_rows(tmp_path):
    path = tmp_path / "old.db"
    with MoodStore(path, migrate=False) as s:
        assert s.schema_version() == 0
        assert s.migrate(target=1) == 1
        s.log("live", probs("happy"), ts=T0)
    con = sqlite3.connect(path)
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    con.close()
    assert "smile_captures" not in tables
    with MoodStore(path) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.count() == 1
        s.add_capture(b"x", 1, 1, 1)


def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "new.db"
    MoodStore(path).close()
    con = sqlite3.connect(path)
    con.execute("update emoscope_schema set version = ?", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(MoodError, match="newer"):
        MoodStore(path)


def test_memory_and_url_forms(tmp_path):
    with MoodStore(":memory:") as s:
        s.log("live", probs("fear"), ts=T0)
        assert s.count() == 1 and s.journal_mode == "memory"
    with MoodStore(f"sqlite:///{tmp_path / 'u.db'}") as s:
        assert s.journal_mode == "wal"
    with pytest.raises(MoodError):
        MoodStore("nosuchdialect://x/y")


def test_postgres_when_available():
    """The same code on PostgreSQL; runs only when EMOSCOPE_TEST_PG_URL names a scratch database."""
    url = os.environ.get("EMOSCOPE_TEST_PG_URL")
    if not url:
        pytest.skip("set EMOSCOPE_TEST_PG_URL=postgresql+psycopg://... to run the mood log on PostgreSQL")
    s = MoodStore(url)
    try:
        with s.engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM mood_events"))
        s.add([MoodRow(T0 + i * 1800, "live", probs("happy" if i % 2 else "sad")) for i in range(4)])
        hours = s.aggregate(T0, T0 + 86400, "hour", tz_offset_minutes=-300)
        assert sum(h["n"] for h in hours) == 4 and hours[0]["happy_share"] == 0.5
        assert s.write_csv(io.StringIO()) == 4
        cid = s.add_capture(b"\xff\xd8abc", 1, 1, 1)
        assert s.get_capture(cid) == (b"\xff\xd8abc", "image/jpeg")
    finally:
        s.close()


WRITER = textwrap.dedent(
    """
    import sys, time
    from emoscope.mood import MoodStore, MoodRow
    s = MoodStore(sys.argv[1])
    i = 0
    while True:
        (rid,) = s.add([MoodRow(time.time(), "live", {"happy": 1.0}, track_id=i)])
        print(rid, flush=True)
        i += 1
    """
)


def test_acknowledged_rows_survive_sigkill(tmp_path):
    """A writer acknowledges rows on stdout after commit; kill -9 it mid-stream; every acknowledged row is there."""
    db = tmp_path / "kill.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    acked = []
    try:
        deadline = time.monotonic() + 60
        while len(acked) < 200 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 20, "the writer acknowledged too few rows"
    with MoodStore(db) as s:
        ids = {r["id"] for r in s.rows()}
    assert set(acked) <= ids


def test_day_bounds_and_parse_time():
    start, end, _ = day_bounds("2024-05-01")
    assert (end - start).total_seconds() in (82800, 86400, 90000)
    with pytest.raises(MoodError):
        day_bounds("May 1")
    assert parse_time("2024-05-01T00:00:00Z").timestamp() == T0
    assert parse_time(str(T0)).timestamp() == T0
    assert parse_time(None) is None
    assert parse_time("2024-05-01T02:00:00 02:00").timestamp() == T0  # '+' decoded as a space
    with pytest.raises(MoodError):
        parse_time("yesterday")


def test_cli_summary_and_export(tmp_path, capsys):
    db = tmp_path / "cli.db"
    start, _, _ = day_bounds("2024-05-01")
    with MoodStore(db) as s:
        s.add([MoodRow(start.timestamp() + 3600 + i, "live", probs("happy")) for i in range(3)])
        s.add([MoodRow(start.timestamp() + 7200, "photo", probs("angry"))])
    assert main(["mood", "summary", "--day", "2024-05-01", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "4 rows" in out and "mostly happy" in out and "happy 75%" in out
    assert "01:00      3  happy" in out and "02:00      1  angry" in out

    assert main(["mood", "summary", "--day", "2024-05-02", "--db", str(db)]) == 0
    assert "no mood rows" in capsys.readouterr().out

    out_csv = tmp_path / "out.csv"
    assert main(["mood", "export", "--db", str(db), "-o", str(out_csv)]) == 0
    assert len(out_csv.read_text().splitlines()) == 5
    assert main(["mood", "export", "--db", str(db), "--from", str(start.timestamp() + 7000)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    assert main(["mood", "summary", "--db", str(tmp_path / "missing.db")]) == 2
    assert "no mood log" in capsys.readouterr().err
    assert main(["mood", "export", "--db", str(db), "--from", "soon"]) == 2
