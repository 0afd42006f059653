"""``emoscope batch``: emotions for large collections of photos and videos into Parquet, resumable, on Ray or not.

Run the same command again after a kill (or a crash) and it processes only what is missing; see
:mod:`emoscope.batch` for the output layout and the exactly-once rule.
"""

from __future__ import annotations

import argparse
import sys

from . import UserError
from .options import add_recognizer_options, finite_float, positive_int, recognizer_kwargs


def cmd_batch(args: argparse.Namespace) -> int:
    from ..batch import BatchOptions, run_batch

    kw = recognizer_kwargs(args)
    options = BatchOptions(weights=kw["weights"], detector=kw["detector"], backend=kw["backend"],
                           tta=kw.get("tta", "none"), margin=kw.get("margin"), every=args.every, fps=args.fps,
                           max_frames=args.max_frames, threads=kw.get("threads"),
                           balance=kw.get("balance", 0.0))
    try:
        report = run_batch(args.sources, args.out, options, engine=args.engine, workers=args.workers,
                           address=args.address, chunk_size=args.chunk_size,
                           progress=False if args.no_progress else None)
    except (ValueError, ImportError) as exc:  # the recognizer's own refusals (bad weights, backend, ...)
        raise UserError(str(exc)) from None
    print(report.format(), file=sys.stderr)
    for source, message in report.errors[:10]:
        print(f"  error: {source}: {message}", file=sys.stderr)
    n_err = report.status.get("error", 0)
    if n_err > 10:
        print(f"  ... and {n_err - 10} more errors: see {report.out_dir}/_inputs (status == 'error')", file=sys.stderr)
    if report.processed and n_err == report.processed and not report.skipped:
        return 1  # nothing could be read at all
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "batch", help="emotions for many photos and videos into Parquet (resumable; local or Ray)",
        description="Find the faces in many photos and videos and write their emotions as Parquet files in --out: "
                    "one row per face (pandas.read_parquet(OUT) reads them as one table) and one row per input in "
                    "OUT/_inputs (status ok, no_face or error). Run the same command again after a kill and it "
                    "processes only what is missing. Exit status 0 (bad files are error rows, not a failed run); "
                    "1 when no input could be read; 2 for bad arguments.",
    )  # fmt: skip
    p.add_argument("sources", nargs="+", metavar="SOURCE",
                   help="photo or video files, folders (searched recursively), globs ('**' recurses), or a .txt or "
                        ".parquet file listing paths (a 'path' column)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (created; reused to resume)")
    p.add_argument("--engine", choices=["local", "ray"], default="local",
                   help="local: this process (default); ray: a Ray Data actor pool, one model load per worker")
    p.add_argument("--address", help="join this Ray cluster (e.g. ray://host:10001 or auto) instead of starting one")
    p.add_argument("--workers", type=positive_int, help="Ray workers (default: one per CPU of the cluster)")
    sample = p.add_mutually_exclusive_group()
    sample.add_argument("--every", type=positive_int, metavar="N", help="analyse every N-th frame of videos")
    sample.add_argument("--fps", type=finite_float,
                        help="analyse this many frames per second of video (default: 1 per second)")
    p.add_argument("--max-frames", type=positive_int, dest="max_frames",
                   help="analyse at most this many frames per video")
    p.add_argument("--chunk-size", type=positive_int, default=32, dest="chunk_size",
                   help="photos per committed chunk (default 32; each video is a chunk of its own)")
    add_recognizer_options(p, no_detect=True, threads=True)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_batch)
