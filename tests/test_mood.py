"""Mood log: writes, aggregates, CSV export, retention, migrations, SIGKILL durability, two writers on one database,
and the ``mood`` CLI. Backend-neutral tests run on SQLite and on PostgreSQL (``mood_db`` in conftest.py; the
PostgreSQL variants skip with a message unless ``EMOSCOPE_TEST_PG_URL`` names a server, which .ci/run starts)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from emoscope import mood
from emoscope.cli import main
from emoscope.labels import EMOTIONS
from emoscope.mood import SCHEMA_VERSION, MoodError, MoodRow, MoodStore, day_bounds, parse_time

T0 = datetime(2024, 5, 1, tzinfo=UTC).timestamp()  # a UTC midnight


def probs(top: str, p: float = 0.7) -> dict[str, float]:
    rest = (1 - p) / (len(EMOTIONS) - 1)
    return {e: (p if e == top else rest) for e in EMOTIONS}


@pytest.fixture
def store(mood_db):
    s = MoodStore(mood_db)
    yield s
    s.close()


def test_new_log_is_versioned_and_empty(store):
    assert store.journal_mode == ("wal" if store.engine.dialect.name == "sqlite" else None)
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


def test_retention_prunes_rows_and_captures(mood_db):
    with MoodStore(mood_db, retention_days=7) as s:
        now = T0 + 30 * 86400
        s.add([MoodRow(now - d * 86400, "live", probs("happy")) for d in (1, 6, 8, 20)])
        s.add_capture(b"\xff\xd8old", 2, 2, 1, ts=now - 10 * 86400)
        s.add_capture(b"\xff\xd8new", 2, 2, 1, ts=now)
        assert s.prune(now=now) == 2
        assert s.count() == 2
        assert len(s.list_captures()) == 1
    with MoodStore(mood_db, retention_days=0) as s:
        s.log("live", probs("happy"), ts=0)
        assert s.prune() == 0 and s.count() == 3


def test_captures_keep_only_the_newest(mood_db):
    with MoodStore(mood_db, max_captures=3) as s:
        ids = [s.add_capture(bytes([i]), 4, 3, 2, session="x") for i in range(5)]
        listed = s.list_captures()
        assert [c["id"] for c in listed] == ids[:1:-1]
        assert listed[0]["width"] == 4 and listed[0]["n_faces"] == 2 and "data" not in listed[0]
        assert s.get_capture(ids[-1]) == (bytes([4]), "image/jpeg")
        assert s.get_capture(ids[0]) is None
        assert s.delete_capture(ids[-1]) and not s.delete_capture(ids[-1])


def test_migrates_a_v1_database_and_keeps_rows(mood_db):
    with MoodStore(mood_db, migrate=False) as s:
        assert s.schema_version() == 0
        assert s.migrate(target=1) == 1
        s.log("live", probs("happy"), ts=T0)
        with s.engine.connect() as conn:
            assert not sa.inspect(conn).has_table("smile_captures")
    with MoodStore(mood_db) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.count() == 1
        s.add_capture(b"x", 1, 1, 1)


def test_refuses_a_newer_schema(mood_db):
    with MoodStore(mood_db) as s, s.engine.begin() as conn:
        conn.execute(sa.text("update emoscope_schema set version = :v"), {"v": SCHEMA_VERSION + 1})
    with pytest.raises(MoodError, match="newer"):
        MoodStore(mood_db)
    with pytest.raises(MoodError, match="newer"):
        MoodStore(mood_db, readonly=True).aggregate(T0, T0 + 1)


def test_memory_and_url_forms(tmp_path):
    with MoodStore(":memory:") as s:
        s.log("live", probs("fear"), ts=T0)
        assert s.count() == 1 and s.journal_mode == "memory"
    with MoodStore(f"sqlite:///{tmp_path / 'u.db'}") as s:
        assert s.journal_mode == "wal"
    with pytest.raises(MoodError):
        MoodStore("nosuchdialect://x/y")


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


def test_acknowledged_rows_survive_sigkill(mood_db):
    """A writer acknowledges rows on stdout after commit; kill -9 it mid-stream; every acknowledged row is there."""
    db = mood_db
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db], stdout=subprocess.PIPE, text=True)
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


TWO_WRITERS = textwrap.dedent(
    """
    import sys, time
    from emoscope.mood import MoodStore, MoodRow
    db, name, n, start_at = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    time.sleep(max(0.0, start_at - time.time()))  # both open the fresh database at the same moment
    s = MoodStore(db)
    for i in range(n):
        (rid,) = s.add([MoodRow(1.7e9 + i, "live", {"happy": 1.0}, track_id=i, session=name)])
        print(rid, flush=True)
    """
)


def test_two_servers_share_one_database(mood_db):
    """Two processes that each open (and so migrate) a fresh database at the same moment, as two servers started
    together do, then write interleaved: both start, no acknowledged row is lost, ids never collide."""
    n = 40
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", TWO_WRITERS, mood_db, name, str(n), str(start_at)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name in ("a", "b")
    ]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    acked = [int(x) for out, _ in outs for x in out.split()]
    assert len(acked) == 2 * n and len(set(acked)) == 2 * n
    with MoodStore(mood_db) as s:
        rows = list(s.rows())
        assert {r["id"] for r in rows} == set(acked)
        assert sorted(r["session"] for r in rows) == ["a"] * n + ["b"] * n
        assert s.schema_version() == SCHEMA_VERSION
        with s.engine.connect() as conn:
            assert conn.execute(sa.text("select count(*) from emoscope_schema")).scalar() == 1


def _hold_write_lock(db: str, seconds: float, locked: threading.Event) -> None:
    conn = sqlite3.connect(db, isolation_level=None)  # rollback-journal mode, as a fresh file starts
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("CREATE TABLE other_writer (x INTEGER)")
    locked.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def test_opening_waits_while_another_process_switches_a_fresh_file(tmp_path):
    """SQLite answers ``PRAGMA journal_mode=WAL`` "database is locked" at once, without waiting out the busy
    timeout, while another connection holds a fresh (rollback-mode) file's write lock, as a second server that
    opens the same new log at the same moment does; a CI run lost a server to it. Opening now waits its turn."""
    db = str(tmp_path / "mood.db")
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(db, 0.6, locked))
    holder.start()
    assert locked.wait(10)
    t0 = time.monotonic()
    with MoodStore(db) as s:
        waited = time.monotonic() - t0
        assert s.journal_mode == "wal"
        assert s.schema_version() == SCHEMA_VERSION
    holder.join()
    assert waited > 0.2  # it waited for the other writer rather than slipping past it
    with sqlite3.connect(db) as conn:
        assert {"mood_events", "other_writer"} <= {r[0] for r in conn.execute("select name from sqlite_master")}


def test_wal_switch_gives_up_with_the_lock_error(tmp_path):
    """Past its patience the switch raises SQLite's own error, which MoodStore turns into a MoodError."""
    db = str(tmp_path / "mood.db")
    locked = threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(db, 1.0, locked))
    holder.start()
    assert locked.wait(10)
    conn = sqlite3.connect(db, timeout=10)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        mood._set_wal(conn.cursor(), patience=0.1)
    conn.close()
    holder.join()


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


@pytest.mark.parametrize("value", ["1e20", "-1e20", "inf", "nan", "1" * 55, "0001-01-01", "10000-01-01"])
def test_out_of_range_times_are_clear_errors(value):
    with pytest.raises(MoodError, match="range|not a date"):
        parse_time(value)


def test_cli_export_refuses_absurd_times_in_one_line(tmp_path, capsys):
    db = tmp_path / "m.db"
    MoodStore(db).close()
    assert main(["mood", "export", "--db", str(db), "--from", "1e20"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of range" in err and "Traceback" not in err


def test_cli_bad_databases_are_one_line_and_readers_create_nothing(tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    (tmp_path / "text.txt").write_text("not a database\n" * 100)
    cases = {
        "folder": "is a folder",
        "text.txt": "not an SQLite database",
        "no/such/dir/mood.db": "no mood log",
    }
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for name, message in cases.items():
        for action in (["summary"], ["export"], ["prune", "--retention-days", "1"]):
            assert main(["mood", *action, "--db", str(tmp_path / name)]) == 2, (name, action)
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and message in err and "Traceback" not in err, (name, action, err)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "text.txt").read_text().startswith("not a database")


def test_cli_readers_leave_an_empty_file_alone(tmp_path, capsys):
    """A zero-byte file is an empty SQLite database; reading it must not turn it into a mood log."""
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["mood", "summary", "--db", str(empty)]) == 2
    assert "holds no emoscope mood log" in capsys.readouterr().err
    assert empty.stat().st_size == 0


def as_unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run so that file permissions apply: as root, without the capabilities that bypass them."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("running as root without setpriv (util-linux): root would ignore the read-only folder")
    drop = "-dac_override,-dac_read_search"
    return [setpriv, f"--inh-caps={drop}", f"--bounding-set={drop}", *argv]


def test_cli_read_only_folder(tmp_path):
    """A log in a read-only folder can still be read (summary, export); writers get one clear line."""
    ro = tmp_path / "ro"
    ro.mkdir()
    with MoodStore(ro / "m.db") as s:
        s.log("live", probs("happy"), ts=T0)
    ro.chmod(0o555)
    try:
        cli = [sys.executable, "-m", "emoscope", "mood"]
        out = subprocess.run(as_unprivileged([*cli, "export", "--db", str(ro / "m.db")]), capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert len(out.stdout.splitlines()) == 2
        out = subprocess.run(as_unprivileged([*cli, "prune", "--retention-days", "1", "--db", str(ro / "m.db")]),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and "read-only" in out.stderr, out.stderr
        assert sorted(p.name for p in ro.iterdir()) == ["m.db"]
    finally:
        ro.chmod(0o755)


def test_cli_reads_postgresql(pg_url, capsys):
    start, _, _ = day_bounds("2024-05-01")
    with MoodStore(pg_url) as s:
        s.add([MoodRow(start.timestamp() + 3600 + i, "live", probs("happy")) for i in range(3)])
    assert main(["mood", "summary", "--day", "2024-05-01", "--db", pg_url]) == 0
    assert "3 rows" in capsys.readouterr().out
    assert main(["mood", "export", "--db", pg_url]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
