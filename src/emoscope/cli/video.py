"""``emoscope video``: emotions over time in a video file, webcam, stream or folder of frames."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from . import UserError
from .options import add_recognizer_options, recognizer_from_args


def _check(args: argparse.Namespace) -> None:
    """Refuse impossible argument values before any work, each with a one-line reason."""
    positive = {"--every": args.every, "--hold": args.hold, "--max-frames": args.max_frames}
    for flag, v in positive.items():
        if v is not None and v < 1:
            raise UserError(f"{flag} must be 1 or more, got {v}")
    above0 = {"--fps": args.fps, "--switch-rate": args.switch_rate, "--evidence": args.evidence,
              "--cut-threshold": args.cut_threshold}
    for flag, v in above0.items():
        if v is not None and not (math.isfinite(v) and v > 0):
            raise UserError(f"{flag} must be a number above 0, got {v:g}")
    if args.fps is not None and args.fps > 1000:
        raise UserError(f"--fps must be at most 1000, got {args.fps:g}")
    for flag, v in {"--time-constant": args.time_constant, "--max-gap": args.max_gap}.items():
        if not (math.isfinite(v) and v >= 0):
            raise UserError(f"{flag} must be 0 or more seconds, got {v:g}")
    if not 0 <= args.hysteresis < 1:
        raise UserError(f"--hysteresis must be from 0 to below 1, got {args.hysteresis:g}")
    if (args.all_faces or args.capture_dir) and not args.capture_when:
        raise UserError("--all-faces/--capture-dir go with --capture-when EMOTION")


def _bar_name(kind: str, name: str, width: int = 32) -> str:
    """The progress bar's label: the file's own name (never a cut path), shortened in the middle if long."""
    base = Path(name).name if kind in ("file", "folder") else name
    if len(base) > width:
        base = base[: width // 2 - 1] + "…" + base[-(width // 2 - 1) :]
    return f"{kind} {base}"


def cmd_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..video import (
        CaptureTrigger,
        FaceTracker,
        HmmParams,
        ShotDetector,
        VideoSourceError,
        display_available,
        open_source,
        run_video,
    )

    _check(args)
    if args.show:
        ok, why = display_available()
        if not ok:
            raise UserError(f"--show: {why}")
    rec = recognizer_from_args(args)
    if args.capture_when and args.capture_when not in rec.classes:
        raise UserError(f"--capture-when must be one of {', '.join(rec.classes)}, got {args.capture_when!r}")
    try:
        tracker = FaceTracker(smoothing=args.smoothing, time_constant=args.time_constant, classes=rec.classes,
                              max_gap=args.max_gap, hmm=HmmParams(args.switch_rate, args.evidence, args.hysteresis))
        shots = ShotDetector(threshold=args.cut_threshold) if args.cuts else False
        source = open_source(args.source, fps=args.fps)
    except (VideoSourceError, ValueError) as exc:
        _empty_outputs(args, rec.classes)
        raise UserError(str(exc)) from None
    capture = None
    if args.capture_when:
        capture = CaptureTrigger(args.capture_when, args.capture_dir or "captures", hold=args.hold,
                                 all_faces=args.all_faces)
    total = getattr(source, "frame_count", None) or (len(source.files) if hasattr(source, "files") else None)
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames
    bar = tqdm(total=total, desc=_bar_name(source.kind, source.name), unit="frame", file=sys.stderr,
               disable=args.quiet or None, leave=False)
    try:
        report = run_video(source, rec, tracker, every=args.every, out=args.out, csv_path=args.csv,
                           timeline_png=args.timeline, capture=capture, show=args.show,
                           max_frames=args.max_frames, on_frame=lambda _r: bar.update(1), shots=shots)
    except VideoSourceError as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()
    _print_report(args, report, rec, capture)
    if report.frames == 0:
        raise UserError(f"{report.source}: no readable frame")
    return 0


def _empty_outputs(args: argparse.Namespace, classes: tuple[str, ...]) -> None:
    """A file with nothing to read (no video stream, say) still leaves a valid header-only CSV and an empty
    summary; a missing file, webcam or stream gets only the error."""
    from ..video import CsvLog, EmotionSummary

    if not Path(args.source).is_file():
        return
    if args.csv:
        CsvLog(args.csv, classes).close()
    if not args.json and not args.quiet:
        print(EmotionSummary(classes).format())


def _print_report(args: argparse.Namespace, report, rec, capture) -> None:
    if args.json:
        doc = {"source": report.source, "frames": report.frames, "analysed": report.analysed,
               "skipped": report.skipped, "problems": report.problems, "duration_s": round(report.seconds, 3),
               "processing_fps": round(report.fps, 2), "cuts_s": [round(c, 3) for c in report.cuts],
               "summary": report.summary, "captures": report.captures, "outputs": report.outputs}
        print(json.dumps(doc, indent=2))
    else:
        print(f"{report.source}: {report.frames} frame(s), {report.analysed} analysed, "
              f"{report.seconds:.1f} s of video, processed at {report.fps:.1f} frames/s "
              f"[model backend {rec.backend_name}, detector {getattr(rec.detector, 'name', 'none')}]")
        print(report.summary_text)
        for kind, path in report.outputs.items():
            print(f"{kind}: {path}")
        if capture:
            print(f"captured {len(report.captures)} frame(s) showing {args.capture_when}"
                  + (f" in {capture.out_dir}" if report.captures else ""))
    if report.skipped:
        print(f"warning: skipped {report.skipped} unreadable frame(s): " + "; ".join(report.problems[:5])
              + (" ..." if len(report.problems) > 5 else ""), file=sys.stderr)
    elif report.problems:
        print("warning: " + "; ".join(report.problems[:5]), file=sys.stderr)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="emotions over time in a video, webcam, stream or folder of frames",
                       description="Track faces through a video and recognise their emotions, smoothed per face. "
                                   "Tracks end at camera cuts and survive short gaps; faces are numbered from 1.")
    p.add_argument("source", help="video file, webcam index (0), stream URL (rtsp://, http://) or folder of frames")
    p.add_argument("--out", help="write the annotated video here with the source's sound: .mp4 (H.264) or .webm "
                                 "(VP9) play in web browsers; also .mkv, .mov, .m4v, .avi")
    p.add_argument("--csv", help="write one row per face per analysed frame (time, frame, shot, face number, box, "
                                 "label, confidence, raw and smoothed probabilities)")
    p.add_argument("--timeline", metavar="PNG", help="write a timeline of each face's emotion")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every N-th frame (default 1)")
    p.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 25), or replace a file's "
                                             "own timestamps by frame number / FPS")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    g = p.add_argument_group("smoothing (labels that hold still)")
    g.add_argument("--smoothing", default="hmm", choices=["hmm", "ema", "vote", "none"],
                   help="hmm (default): a label changes only once another emotion has clearly led for a while; "
                        "files get the best path over the whole track (Viterbi), webcams a causal filter with "
                        "hysteresis. ema/vote: moving average / majority over --time-constant seconds")
    g.add_argument("--switch-rate", type=float, default=0.02, metavar="PER_S",
                   help="hmm: expected emotion changes per second; lower holds labels longer (default 0.02)")
    g.add_argument("--evidence", type=float, default=0.3, metavar="S",
                   help="hmm: seconds of video that count as one independent look at the face (default 0.3)")
    g.add_argument("--hysteresis", type=float, default=0.3, metavar="P",
                   help="hmm on webcams/streams: lead in probability a new emotion needs over the shown one "
                        "(default 0.3)")
    g.add_argument("--time-constant", type=float, default=0.5, metavar="S",
                   help="ema/vote: time constant / vote window in seconds (default 0.5)")
    t = p.add_argument_group("tracking")
    t.add_argument("--max-gap", type=float, default=1.5, metavar="S",
                   help="a face missed for up to S seconds keeps its number when it comes back (default 1.5)")
    t.add_argument("--no-cuts", dest="cuts", action="store_false",
                   help="do not look for camera cuts (by default every track ends at a cut)")
    t.add_argument("--cut-threshold", type=float, default=27.0, metavar="T",
                   help="picture change that counts as a cut (PySceneDetect's content score; default 27, "
                        "lower finds more)")
    c = p.add_argument_group("capture")
    c.add_argument("--capture-when", metavar="EMOTION", help="save frames when faces show this emotion")
    c.add_argument("--all-faces", action="store_true", help="with --capture-when: every visible face must show it")
    c.add_argument("--hold", type=int, default=5, metavar="N", help="... for N analysed frames in a row (default 5)")
    c.add_argument("--capture-dir", help="folder for captured frames (default ./captures)")
    p.add_argument("--show", action="store_true", help="show the annotated video in a window (needs a display)")
    add_recognizer_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_video)
