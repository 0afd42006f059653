"""The mood log: emotion probabilities over time, stored in SQL, aggregated per minute / hour / day.

Each row is one face at one moment (a sampled live frame or an analysed photo): time, source, session,
track id, label and the seven probabilities. No images are stored, except smile captures, which the
server saves only while that mode is on. SQLite (WAL mode) is the default; the same SQLAlchemy Core
code runs on PostgreSQL given a database URL. The schema is versioned and migrated on open.

Durability: :meth:`MoodStore.add` returns only after its transaction has committed; with SQLite in
WAL mode and ``synchronous=NORMAL`` a committed row survives the process being killed (SIGKILL); only
a power loss or OS crash may lose the last transactions.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import EmoscopeError
from .labels import EMOTIONS

#: Schema version written by this code; see ``_MIGRATIONS``.
SCHEMA_VERSION = 2
#: Rows older than this many days are deleted by :meth:`MoodStore.prune` (0 or None: keep forever).
DEFAULT_RETENTION_DAYS = 365.0
#: At most this many smile captures are kept; older ones are dropped when a new one is added.
DEFAULT_MAX_CAPTURES = 48
#: Bucket sizes accepted by :meth:`MoodStore.aggregate`, in milliseconds.
BUCKETS: dict[str, int] = {"minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
#: Sources written by emoscope itself (others are accepted, up to 16 characters).
SOURCES = ("live", "photo")
CSV_COLUMNS = ("id", "time", "source", "session", "track_id", "label", *EMOTIONS)


class MoodError(EmoscopeError):
    """A problem with the mood database the user can fix (bad URL, newer schema, bad range)."""


# --------------------------------------------------------------------------------------------- schema

_meta = sa.MetaData()
_version = sa.Table("emoscope_schema", _meta, sa.Column("version", sa.Integer, nullable=False))
events = sa.Table(
    "mood_events",
    _meta,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("session", sa.String(64)),
    sa.Column("track_id", sa.Integer),
    sa.Column("label", sa.String(16), nullable=False),
    *(sa.Column(f"p_{e}", sa.Float, nullable=False) for e in EMOTIONS),
)
captures = sa.Table(
    "smile_captures",
    _meta,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("session", sa.String(64)),
    sa.Column("n_faces", sa.Integer, nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("mime", sa.String(32), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)


def _migrate_1(conn: Connection) -> None:
    """v1: the event table and its time index (frozen definition: later versions change it by migration)."""
    m = sa.MetaData()
    t = sa.Table(
        "mood_events",
        m,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("session", sa.String(64)),
        sa.Column("track_id", sa.Integer),
        sa.Column("label", sa.String(16), nullable=False),
        *(sa.Column(f"p_{e}", sa.Float, nullable=False) for e in EMOTIONS),
    )
    sa.Index("ix_mood_events_ts", t.c.ts_ms)
    m.create_all(conn)


def _migrate_2(conn: Connection) -> None:
    """v2: smile captures (the only table that holds images) and a source index for per-source queries."""
    m = sa.MetaData()
    t = sa.Table(
        "smile_captures",
        m,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("session", sa.String(64)),
        sa.Column("n_faces", sa.Integer, nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("mime", sa.String(32), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )
    sa.Index("ix_smile_captures_ts", t.c.ts_ms)
    m.create_all(conn)
    conn.execute(sa.text("CREATE INDEX IF NOT EXISTS ix_mood_events_source_ts ON mood_events (source, ts_ms)"))


#: A PostgreSQL advisory lock key held while migrating (any fixed number; "emoscope" in ASCII, truncated).
_PG_MIGRATION_LOCK = 0x656D6F73636F
#: SQLite has no such lock: a migration that collides with another process's is retried this many times.
_MIGRATE_TRIES = 40

#: Migration i+1 brings a database from version i to i+1. Append only; never edit a released one.
_MIGRATIONS: list[Callable[[Connection], None]] = [_migrate_1, _migrate_2]
assert len(_MIGRATIONS) == SCHEMA_VERSION


# ----------------------------------------------------------------------------------------- locations


def default_data_dir() -> Path:
    """Per-user data folder: ``$EMOSCOPE_DATA_DIR``, else the platform's usual place (XDG on Linux)."""
    env = os.environ.get("EMOSCOPE_DATA_DIR")
    if env:
        return Path(env).expanduser()
    home = Path.home()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", home / "AppData" / "Local")) / "emoscope"
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "emoscope"
    return Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share") / "emoscope"


def resolve_db_url(db: str | os.PathLike | None = None, create: bool = True) -> str:
    """A database URL from ``--db``: None -> the default SQLite file, a path -> SQLite there, a URL -> as is.

    ``create`` makes the SQLite file's folder when it is missing (writers); readers pass False so that
    looking at a log never leaves folders behind.
    """
    if db is None:
        db = default_data_dir() / "mood.sqlite3"
    text = os.fspath(db)
    if "://" in text:
        return text
    if text == ":memory:":
        return "sqlite://"
    if not text.strip():
        raise MoodError("the mood database path is empty; give a file path or a database URL")
    path = Path(text).expanduser().resolve()
    if create:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise MoodError(f"cannot create the folder for the mood database {path}: {exc.strerror or exc}") from exc
    return f"sqlite:///{path}"


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL (None for other databases and in-memory SQLite)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def explain_db_error(exc: BaseException, url: str) -> MoodError:
    """One clear line for a database that cannot be opened or used (instead of SQLAlchemy's traceback)."""
    orig = getattr(exc, "orig", None) or exc
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    path = sqlite_path(url)
    if path is None:
        try:
            shown = sa.engine.make_url(url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            shown = url
        return MoodError(f"cannot use the mood database {shown}: {reason}")
    low = reason.lower()
    if path.is_dir():
        return MoodError(f"{path} is a folder, not a mood database file; give a file path such as "
                         f"{path / 'mood.sqlite3'}")
    if "not a database" in low or "malformed" in low:
        return MoodError(f"{path} is not an SQLite database (or it is damaged); give another --db file")
    folder_ro = path.parent.is_dir() and not os.access(path.parent, os.W_OK)
    if "readonly" in low or "read-only" in low or "unable to open" in low or folder_ro:
        if path.is_file() and not os.access(path, os.W_OK):
            return MoodError(f"mood database {path} is read-only; make it writable or give another --db")
        if folder_ro:
            return MoodError(f"cannot write in the folder {path.parent} (read-only), which SQLite needs beside "
                             f"the mood database; make it writable or give another --db")
        if not path.parent.is_dir():
            return MoodError(f"no folder {path.parent} for the mood database; create it or give another --db")
    return MoodError(f"cannot use the mood database {path}: {reason}")


#: How long a new connection keeps retrying ``PRAGMA journal_mode=WAL`` while another one holds the lock it needs.
_WAL_SWITCH_SECONDS = 10.0


def _set_wal(cur: Any, patience: float = _WAL_SWITCH_SECONDS) -> None:
    """Put the database in WAL mode, retrying while another connection is switching it at the same moment.

    The switch reads the file, then asks for its write lock; while another connection holds that lock on a fresh
    (rollback-mode) file, as a second server opening the same new log at the same moment does, SQLite answers
    "database is locked" at once instead of waiting out the busy timeout (a lock-upgrade deadlock it refuses to
    wait on; ``test_opening_waits_while_another_process_switches_a_fresh_file`` makes it happen). So wait and try
    again; once the file is in WAL mode the pragma only reads.
    """
    deadline = time.monotonic() + patience
    delay = 0.005
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.25)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    _set_wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")  # durable against process kills in WAL mode
    cur.close()


def _sqlite_readonly_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str, readonly: bool = False) -> Engine:
    """An engine for ``url``; SQLite gets WAL mode, a busy timeout, and sharing across server threads.

    ``readonly`` opens an SQLite file with ``mode=ro`` (it is never created) and leaves its journal mode alone.
    """
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise MoodError(f"not a database URL: {url!r}") from exc
    if parsed.get_backend_name() == "sqlite":
        memory = parsed.database in (None, "", ":memory:")
        kw: dict[str, Any] = {"connect_args": {"check_same_thread": False, "timeout": 10}}
        if memory:
            kw["poolclass"] = sa.pool.StaticPool  # one shared in-memory database
        else:
            kw.update(pool_size=8, max_overflow=32)  # server threads; SQLite itself serialises the writes
        if readonly and not memory:
            # SQLAlchemy passes ``file:...`` with uri=true to sqlite3 as a URI filename; mode=ro never creates it
            file = Path(parsed.database).resolve()
            query = {"mode": "ro", "uri": "true"}
            if file.parent.is_dir() and not os.access(file.parent, os.W_OK):
                # A WAL database needs its -shm file beside it, which a read-only folder cannot take: read it as an
                # immutable file (nobody can be writing it there: a writer needs that folder too).
                query["immutable"] = "1"
            parsed = sa.engine.URL.create("sqlite", database=f"file:{quote(str(file))}", query=query)
        engine = sa.create_engine(parsed, **kw)
        if not memory:
            sa.event.listen(engine, "connect", _sqlite_readonly_pragmas if readonly else _sqlite_pragmas)
        return engine
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise MoodError(f"no database driver for {parsed.drivername} ({exc.name}); install it with pip") from exc
    except sa.exc.NoSuchModuleError as exc:
        raise MoodError(f"unknown database kind {parsed.drivername!r} in the database URL") from exc


# -------------------------------------------------------------------------------------------- store


def _ms(t: float | datetime) -> int:
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.astimezone()  # naive = local time
        return int(round(t.timestamp() * 1000))
    return int(round(float(t) * 1000))


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class MoodRow:
    """One face at one moment; ``probs`` maps emotion -> probability (missing ones count as 0)."""

    ts: float
    source: str
    probs: Mapping[str, float]
    track_id: int | None = None
    session: str | None = None

    def values(self) -> dict[str, Any]:
        p = {e: float(self.probs.get(e, 0.0)) for e in EMOTIONS}
        for e, v in p.items():
            if not math.isfinite(v) or v < 0 or v > 1.0001:
                raise ValueError(f"probability for {e} out of range: {v}")
        if not self.source or len(self.source) > 16:
            raise ValueError(f"bad source {self.source!r}")
        return {
            "ts_ms": _ms(self.ts),
            "source": self.source,
            "session": None if self.session is None else str(self.session)[:64],
            "track_id": None if self.track_id is None else int(self.track_id),
            "label": max(EMOTIONS, key=p.__getitem__),
            **{f"p_{e}": v for e, v in p.items()},
        }


class MoodStore:
    """Reads and writes the mood log; safe to share between threads (one connection per call)."""

    def __init__(
        self,
        db: str | os.PathLike | None = None,
        retention_days: float | None = DEFAULT_RETENTION_DAYS,
        max_captures: int = DEFAULT_MAX_CAPTURES,
        migrate: bool = True,
        readonly: bool = False,
    ) -> None:
        """``readonly``: only read an existing log (the ``mood summary``/``export`` commands): no folder, file
        or table is created, SQLite is opened read-only, and a missing or foreign database is a :class:`MoodError`.
        """
        self.url = resolve_db_url(db, create=not readonly)
        self.readonly = readonly
        path = sqlite_path(self.url)
        if readonly and path is not None and not path.exists():
            raise MoodError(f"no mood log at {path} (run `emoscope serve` first, or pass --db)")
        self.engine = make_engine(self.url, readonly=readonly)
        self.retention_days = retention_days
        self.max_captures = max_captures
        try:
            if readonly:
                version = self.schema_version()
                if version < 1:
                    raise MoodError(f"{self.safe_url} holds no emoscope mood log (no schema table)")
                self._refuse_newer(version)
            elif migrate:
                self.migrate()
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise explain_db_error(exc, self.url) from None
        except MoodError:
            self.engine.dispose()
            raise

    # ---- schema
    def schema_version(self) -> int:
        """Version of the database's schema (0 for an empty database)."""
        with self.engine.connect() as conn:
            return self._version(conn)

    @staticmethod
    def _version(conn: Connection) -> int:
        if not sa.inspect(conn).has_table(_version.name):
            return 0
        v = conn.execute(sa.select(sa.func.max(_version.c.version))).scalar()
        return int(v or 0)

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Bring the schema up to ``target`` (each step in its own transaction); returns the version."""
        with self.engine.connect() as conn:
            current = self._version(conn)
        self._refuse_newer(current)
        for v in range(current, target):
            for attempt in range(_MIGRATE_TRIES):
                try:
                    self._migrate_step(v)
                    break
                except sa.exc.DBAPIError:
                    # Another process (a second server started at the same moment) is migrating the same database:
                    # SQLite answers "database is locked" or "already exists"; wait and look at the version again.
                    if self.engine.dialect.name != "sqlite" or attempt == _MIGRATE_TRIES - 1:
                        raise
                    time.sleep(0.05 * (attempt + 1))
        return max(current, target)

    def _migrate_step(self, v: int) -> None:
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one migrator at a time; the others wait, then see the new version
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            if self._version(conn) != v:  # another process migrated meanwhile
                return
            _MIGRATIONS[v](conn)
            _version.create(conn, checkfirst=True)
            conn.execute(_version.delete())
            conn.execute(_version.insert().values(version=v + 1))

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise MoodError(
                f"mood database {self.safe_url} has schema v{version}, newer than this emoscope (v{SCHEMA_VERSION}); "
                "upgrade emoscope"
            )

    @property
    def safe_url(self) -> str:
        """The database URL with any password hidden (for logs and /health)."""
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def journal_mode(self) -> str | None:
        """SQLite's journal mode ('wal' expected); None on other databases."""
        if self.engine.dialect.name != "sqlite":
            return None
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("PRAGMA journal_mode").scalar())

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> MoodStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- writing
    def add(self, rows: Iterable[MoodRow]) -> list[int]:
        """Insert rows in one transaction; returns their ids once committed (the acknowledgement)."""
        values = [r.values() for r in rows]
        if not values:
            return []
        ids: list[int] = []
        with self.engine.begin() as conn:
            for v in values:  # one statement per row so every id is known on every backend
                ids.append(int(conn.execute(events.insert().values(**v)).inserted_primary_key[0]))
        return ids

    def log(
        self,
        source: str,
        probs: Mapping[str, float],
        ts: float | None = None,
        track_id: int | None = None,
        session: str | None = None,
    ) -> int:
        """Insert one row (now, unless ``ts`` is given); returns its id once committed."""
        row = MoodRow(time.time() if ts is None else ts, source, probs, track_id, session)
        return self.add([row])[0]

    def prune(self, now: float | None = None, retention_days: float | None = None) -> int:
        """Delete rows and captures older than the retention period; returns how many rows went."""
        days = self.retention_days if retention_days is None else retention_days
        if not days or days <= 0:
            return 0
        cutoff = _ms((time.time() if now is None else now) - days * 86400)
        with self.engine.begin() as conn:
            n = conn.execute(events.delete().where(events.c.ts_ms < cutoff)).rowcount
            conn.execute(captures.delete().where(captures.c.ts_ms < cutoff))
        return int(n or 0)

    # ---- reading
    def count(self, start: float | datetime | None = None, end: float | datetime | None = None) -> int:
        """Number of rows with ``start <= time < end`` (open ends when None)."""
        q = sa.select(sa.func.count()).select_from(events).where(*self._range(start, end))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    @staticmethod
    def _range(start: float | datetime | None, end: float | datetime | None, source: str | None = None) -> list:
        cond = []
        if start is not None:
            cond.append(events.c.ts_ms >= _ms(start))
        if end is not None:
            cond.append(events.c.ts_ms < _ms(end))
        if source is not None:
            cond.append(events.c.source == source)
        return cond

    def rows(
        self,
        start: float | datetime | None = None,
        end: float | datetime | None = None,
        source: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Rows in time order as dicts (time as ISO 8601 UTC), streamed in chunks."""
        q = sa.select(events).where(*self._range(start, end, source)).order_by(events.c.ts_ms, events.c.id)
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=1000).execute(q)
            for r in result.mappings():
                yield {
                    "id": r["id"],
                    "time": _iso(r["ts_ms"]),
                    "source": r["source"],
                    "session": r["session"],
                    "track_id": r["track_id"],
                    "label": r["label"],
                    **{e: r[f"p_{e}"] for e in EMOTIONS},
                }

    def csv_lines(
        self,
        start: float | datetime | None = None,
        end: float | datetime | None = None,
        source: str | None = None,
    ) -> Iterator[str]:
        """The export as CSV text, line by line (header first), for files and HTTP streaming alike."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")

        def line(values: Iterable[Any]) -> str:
            buf.seek(0)
            buf.truncate(0)
            w.writerow(values)
            return buf.getvalue()

        yield line(CSV_COLUMNS)
        for r in self.rows(start, end, source):
            head = ("" if r[c] is None else r[c] for c in CSV_COLUMNS[:6])
            yield line([*head, *(f"{r[e]:.4f}" for e in EMOTIONS)])

    def write_csv(self, fh: IO[str], start: float | datetime | None = None, end: float | datetime | None = None) -> int:
        """Write the export to ``fh``; returns the number of data rows."""
        lines = self.csv_lines(start, end)
        fh.write(next(lines))
        n = 0
        for text in lines:
            fh.write(text)
            n += 1
        return n

    def aggregate(
        self,
        start: float | datetime,
        end: float | datetime,
        bucket: str = "hour",
        tz_offset_minutes: int = 0,
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        """Per-bucket statistics, oldest first, only buckets that have rows.

        Buckets are aligned to local time given as a fixed offset east of UTC (the browser's
        ``-getTimezoneOffset()``), so days start at local midnight. Each bucket has ``start``
        (ISO UTC) and ``t`` (Unix seconds), ``n`` rows, ``mean`` probabilities, ``counts`` of
        top labels, the ``dominant`` label and ``happy_share`` (fraction of rows whose top label is happy).
        """
        if bucket not in BUCKETS:
            raise MoodError(f"bucket must be one of {', '.join(BUCKETS)}, not {bucket!r}")
        if not -16 * 60 <= tz_offset_minutes <= 16 * 60:
            raise MoodError(f"time-zone offset out of range: {tz_offset_minutes} minutes")
        size = BUCKETS[bucket]
        off = int(tz_offset_minutes) * 60_000
        b = ((events.c.ts_ms + off) // size).label("b")
        cols = [
            b,
            sa.func.count().label("n"),
            *(sa.func.avg(events.c[f"p_{e}"]).label(f"m_{e}") for e in EMOTIONS),
            *(sa.func.sum(sa.case((events.c.label == e, 1), else_=0)).label(f"c_{e}") for e in EMOTIONS),
        ]
        q = sa.select(*cols).where(*self._range(start, end, source)).group_by(b).order_by(b)
        out = []
        with self.engine.connect() as conn:
            for r in conn.execute(q).mappings():
                n = int(r["n"])
                counts = {e: int(r[f"c_{e}"] or 0) for e in EMOTIONS}
                t0 = int(r["b"]) * size - off
                out.append(
                    {
                        "start": _iso(t0),
                        "t": t0 / 1000,
                        "n": n,
                        "mean": {e: round(float(r[f"m_{e}"] or 0.0), 6) for e in EMOTIONS},
                        "counts": counts,
                        "dominant": max(EMOTIONS, key=counts.__getitem__),
                        "happy_share": counts["happy"] / n if n else 0.0,
                    }
                )
        return out

    # ---- smile captures
    def add_capture(
        self,
        data: bytes,
        width: int,
        height: int,
        n_faces: int,
        session: str | None = None,
        ts: float | None = None,
        mime: str = "image/jpeg",
    ) -> int:
        """Store one capture (keeping only the newest ``max_captures``); returns its id once committed."""
        with self.engine.begin() as conn:
            cid = conn.execute(
                captures.insert().values(
                    ts_ms=_ms(time.time() if ts is None else ts),
                    session=session,
                    n_faces=int(n_faces),
                    width=int(width),
                    height=int(height),
                    mime=mime,
                    data=bytes(data),
                )
            ).inserted_primary_key[0]
            keep = sa.select(captures.c.id).order_by(captures.c.id.desc()).limit(max(1, self.max_captures))
            conn.execute(captures.delete().where(captures.c.id.not_in(keep.scalar_subquery())))
        return int(cid)

    def list_captures(self, limit: int = DEFAULT_MAX_CAPTURES) -> list[dict[str, Any]]:
        """Newest first, without the image bytes."""
        cols = [c for c in captures.c if c.name != "data"]
        q = sa.select(*cols).order_by(captures.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [
                {
                    "id": int(r["id"]),
                    "time": _iso(r["ts_ms"]),
                    "n_faces": r["n_faces"],
                    "width": r["width"],
                    "height": r["height"],
                    "mime": r["mime"],
                }
                for r in conn.execute(q).mappings()
            ]

    def get_capture(self, capture_id: int) -> tuple[bytes, str] | None:
        """(image bytes, MIME type), or None if there is no such capture."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(captures.c.data, captures.c.mime).where(captures.c.id == capture_id)).first()
        return None if r is None else (bytes(r[0]), str(r[1]))

    def delete_capture(self, capture_id: int) -> bool:
        """Delete one capture; False if it did not exist."""
        with self.engine.begin() as conn:
            return bool(conn.execute(captures.delete().where(captures.c.id == capture_id)).rowcount)


def day_bounds(day: str) -> tuple[datetime, datetime, int]:
    """Local midnight to midnight for ``YYYY-MM-DD``, and the local UTC offset in minutes that day."""
    try:
        d = datetime.strptime(day, "%Y-%m-%d")
    except ValueError as exc:
        raise MoodError(f"day must be YYYY-MM-DD, not {day!r}") from exc
    start = d.astimezone()  # local midnight
    end = (d + timedelta(days=1)).astimezone()  # next local midnight (23 or 25 h away on DST days)
    offset = start.utcoffset()
    return start, end, int(offset.total_seconds() // 60) if offset else 0


def parse_time(value: str | float | None) -> datetime | None:
    """A moment from user input: ISO 8601 date or date-time (naive = local), or Unix seconds; None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return _from_seconds(float(value), repr(value))
    text = str(value).strip()
    text = re.sub(r"(T[\d:.]+) (\d\d:?\d\d)$", r"\1+\2", text)  # '+02:00' that became ' 02:00' in a URL
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return _from_seconds(seconds, text)
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        t = t if t.tzinfo is not None else t.astimezone()
        t.astimezone(UTC)  # a moment near year 1 or 9999 may not exist in UTC
    except (ValueError, OverflowError) as exc:
        if re.match(r"^\d{4}-\d\d", text):
            raise MoodError(f"time out of range (years 2 to 9998): {text!r}") from None
        raise MoodError(f"not a date or time (use ISO 8601, e.g. 2024-05-01 or 2024-05-01T12:00Z): {text!r}") from exc
    if not _MIN_TIME <= t <= _MAX_TIME:
        raise MoodError(f"time out of range (years 2 to 9998): {text!r}")
    return t


#: Moments accepted from users: a day inside the range datetime can hold in every time zone.
_MIN_TIME = datetime(1, 12, 31, tzinfo=UTC)
_MAX_TIME = datetime(9999, 1, 1, tzinfo=UTC)


def _from_seconds(seconds: float, text: str) -> datetime:
    if not math.isfinite(seconds):
        raise MoodError(f"not a date or time: {text[:40]!r} (Unix seconds must be a finite number)")
    if not _MIN_TIME.timestamp() <= seconds <= _MAX_TIME.timestamp():
        raise MoodError(f"time out of range (Unix seconds from {_MIN_TIME.timestamp():.0f} to "
                        f"{_MAX_TIME.timestamp():.0f}): {text[:40]!r}")
    return datetime.fromtimestamp(seconds, UTC)
