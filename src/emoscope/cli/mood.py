"""``emoscope mood``: read the mood log written by ``emoscope serve`` (summary, CSV export, pruning)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from . import UserError


def _open(args: argparse.Namespace, readonly: bool = True):  # -> MoodStore
    """The mood log named by ``--db``; readers never create a folder, file or table (``readonly``)."""
    from ..mood import MoodError, MoodStore, resolve_db_url, sqlite_path

    try:
        path = sqlite_path(resolve_db_url(args.db, create=False))
        if path is not None and not path.exists():
            raise UserError(f"no mood log at {path} (run `emoscope serve` first, or pass --db)")
        return MoodStore(args.db, retention_days=getattr(args, "retention_days", None), readonly=readonly)
    except MoodError as exc:
        raise UserError(str(exc)) from exc


@contextmanager
def _db_errors(args: argparse.Namespace) -> Iterator[None]:
    """Database failures while reading or writing (a locked, damaged or vanished database) as one clear line."""
    import sqlalchemy as sa

    from ..mood import MoodError, explain_db_error, resolve_db_url

    try:
        yield
    except MoodError as exc:
        raise UserError(str(exc)) from exc
    except sa.exc.SQLAlchemyError as exc:
        raise UserError(str(explain_db_error(exc, resolve_db_url(args.db, create=False)))) from None


def _bar(share: float, width: int = 20) -> str:
    n = round(share * width)
    return "#" * n + "." * (width - n)


def cmd_summary(args: argparse.Namespace) -> int:
    from ..labels import EMOTIONS
    from ..mood import day_bounds

    day = args.day or datetime.now().strftime("%Y-%m-%d")
    with _db_errors(args):
        start, end, offset = day_bounds(day)
        with _open(args) as store:
            hours = store.aggregate(start, end, "hour", offset)
            days = store.aggregate(start, end, "day", offset)
    if not days:
        print(f"{day}: no mood rows")
        return 0
    total = days[0]
    print(
        f"{day} (local time, UTC{offset / 60:+g}): {total['n']} rows, mostly {total['dominant']}, "
        f"happy {total['happy_share']:.0%} of the time"
    )
    print("mean probability: " + ", ".join(f"{e} {total['mean'][e]:.2f}" for e in EMOTIONS))
    print(f"{'hour':>5} {'rows':>6}  {'dominant':<9} {'happy share':<27}")
    for h in hours:
        local = datetime.fromtimestamp(h["t"]).astimezone()
        print(f"{local:%H:00} {h['n']:>6}  {h['dominant']:<9} {_bar(h['happy_share'])} {h['happy_share']:>4.0%}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..mood import parse_time

    with _db_errors(args):
        start, end = parse_time(args.start), parse_time(args.end)
        with _open(args) as store:
            if args.output in (None, "-"):
                try:
                    n = store.write_csv(sys.stdout, start, end)
                    sys.stdout.flush()
                except BrokenPipeError:  # `emoscope mood export | head`
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                    return 0
            else:
                out = Path(args.output)
                tmp = out.with_name(out.name + ".part")
                try:
                    with tmp.open("w", newline="", encoding="utf-8") as fh:
                        n = store.write_csv(fh, start, end)
                    tmp.replace(out)
                except OSError as exc:
                    tmp.unlink(missing_ok=True)
                    raise UserError(f"cannot write {out}: {exc.strerror or exc}") from None
    print(f"exported {n} rows" + (f" to {args.output}" if args.output not in (None, "-") else ""), file=sys.stderr)
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    if args.retention_days is None or args.retention_days <= 0:
        raise UserError("--retention-days must be a positive number of days")
    with _db_errors(args), _open(args, readonly=False) as store:
        n = store.prune()
    print(f"deleted {n} rows older than {args.retention_days:g} days")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mood", help="summarise or export the mood log")
    msub = p.add_subparsers(dest="mood_command", required=True, metavar="ACTION")
    db_help = "mood database: SQLite file or database URL (default: mood.sqlite3 in the user's data folder)"

    s = msub.add_parser("summary", help="one day's moods, hour by hour")
    s.add_argument("--day", help="YYYY-MM-DD, local time (default: today)")
    s.add_argument("--db", help=db_help)
    s.set_defaults(func=cmd_summary)

    e = msub.add_parser("export", help="all rows (or a time range) as CSV")
    e.add_argument("--from", dest="start", help="ISO 8601 date or time, or Unix seconds (default: the beginning)")
    e.add_argument("--to", dest="end", help="exclusive end, same formats (default: now and later)")
    e.add_argument("-o", "--output", help="CSV file to write (default: standard output)")
    e.add_argument("--db", help=db_help)
    e.set_defaults(func=cmd_export)

    r = msub.add_parser("prune", help="delete rows older than the retention period")
    r.add_argument("--retention-days", type=float, required=True, dest="retention_days")
    r.add_argument("--db", help=db_help)
    r.set_defaults(func=cmd_prune)
