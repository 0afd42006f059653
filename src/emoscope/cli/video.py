"""``emoscope video``: emotions over time in a video file, webcam, stream or folder of frames."""

from __future__ import annotations

import argparse
import json
import sys

from . import UserError


def cmd_video(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..recognizer import Recognizer
    from ..video import CaptureTrigger, FaceTracker, VideoSourceError, display_available, open_source, run_video

    if args.every < 1:
        raise UserError("--every must be 1 or more")
    if args.hold < 1:
        raise UserError("--hold must be 1 or more")
    if (args.all_faces or args.capture_dir) and not args.capture_when:
        raise UserError("--all-faces/--capture-dir go with --capture-when EMOTION")
    if args.show:
        ok, why = display_available()
        if not ok:
            raise UserError(f"--show: {why}")
    try:
        rec = Recognizer(weights=args.weights, detector=args.detector, backend=args.backend, tta=args.tta,
                         margin=args.margin)
    except (ValueError, ImportError) as exc:
        raise UserError(str(exc)) from None
    if args.capture_when and args.capture_when not in rec.classes:
        raise UserError(f"--capture-when must be one of {', '.join(rec.classes)}, got {args.capture_when!r}")
    try:
        tracker = FaceTracker(smoothing=args.smoothing, time_constant=args.time_constant, classes=rec.classes)
        source = open_source(args.source, fps=args.fps)
    except (VideoSourceError, ValueError) as exc:
        raise UserError(str(exc)) from None
    capture = None
    if args.capture_when:
        capture = CaptureTrigger(args.capture_when, args.capture_dir or "captures", hold=args.hold,
                                 all_faces=args.all_faces)
    total = getattr(source, "frame_count", None) or (len(source.files) if hasattr(source, "files") else None)
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames
    bar = tqdm(total=total, desc=f"{source.kind} {source.name}"[-40:], unit="frame", file=sys.stderr,
               disable=args.quiet or None, leave=False)
    try:
        report = run_video(source, rec, tracker, every=args.every, out=args.out, csv_path=args.csv,
                           timeline_png=args.timeline, capture=capture, show=args.show,
                           max_frames=args.max_frames, on_frame=lambda _r: bar.update(1))
    except VideoSourceError as exc:
        raise UserError(str(exc)) from None
    finally:
        bar.close()
    if args.json:
        doc = {"source": report.source, "frames": report.frames, "analysed": report.analysed,
               "skipped": report.skipped, "problems": report.problems, "duration_s": round(report.seconds, 3),
               "processing_fps": round(report.fps, 2), "summary": report.summary, "captures": report.captures,
               "outputs": report.outputs}
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
    if report.frames == 0:
        raise UserError(f"{report.source}: no readable frame")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="emotions over time in a video, webcam, stream or folder of frames",
                       description="Track faces through a video and recognise their emotions, smoothed per face.")
    p.add_argument("source", help="video file, webcam index (0), stream URL (rtsp://, http://) or folder of frames")
    p.add_argument("--out", help="write the annotated video here (.mp4, .avi, .mkv, .mov, or .webm to show it in a "
                                 "web browser)")
    p.add_argument("--csv", help="write one row per face per analysed frame (time, frame, track, box, raw and "
                                 "smoothed probabilities)")
    p.add_argument("--timeline", metavar="PNG", help="write a timeline of each face's emotion")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--every", type=int, default=1, metavar="N", help="analyse every N-th frame (default 1)")
    p.add_argument("--smoothing", default="ema", choices=["ema", "vote", "none"])
    p.add_argument("--time-constant", type=float, default=0.5, metavar="S",
                   help="smoothing time constant / vote window in seconds (default 0.5)")
    p.add_argument("--fps", type=float, help="frame rate of a folder of frames (default 25) or override")
    p.add_argument("--max-frames", type=int, help="stop after this many frames")
    p.add_argument("--capture-when", metavar="EMOTION", help="save frames when faces show this emotion")
    p.add_argument("--all-faces", action="store_true", help="with --capture-when: every visible face must show it")
    p.add_argument("--hold", type=int, default=5, metavar="N", help="... for N analysed frames in a row (default 5)")
    p.add_argument("--capture-dir", help="folder for captured frames (default ./captures)")
    p.add_argument("--show", action="store_true", help="show the annotated video in a window (needs a display)")
    p.add_argument("--detector", default="auto",
                   help="auto (default), blazeface, blazeface-fast (no tiles: quicker on frames over ~770 px, "
                        "misses small faces), blazeface-short or haar")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"])
    p.add_argument("--weights",
                   help="a .pt checkpoint, an exported .onnx, or a shipped model: default, fast (default: default)")
    p.add_argument("--tta", default="none", choices=["none", "flip", "crops"])
    p.add_argument("--margin", type=float, help="face crop margin (default per detector)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_video)
