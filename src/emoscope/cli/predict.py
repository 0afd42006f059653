"""``emoscope predict``: emotions of the faces in pictures (files, folders, globs).

Every input is tried; unreadable ones are reported on their own line and summarised at the end, and the run
carries on. Exit status: 0 all inputs read, 1 some failed, 2 none could be read (or bad arguments).
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from . import UserError
from .options import add_recognizer_options, positive_int, recognizer_from_args

EXAMPLE = "astronaut (skimage.data)"


def expand_inputs(items: list[str], recursive: bool = True) -> tuple[list[str], list[tuple[str, str]], bool]:
    """Paths to try, inputs that failed already (missing, empty folder/glob), and whether any was a folder/glob."""
    from ..imaging import IMAGE_EXTENSIONS

    files: list[str] = []
    failures: list[tuple[str, str]] = []
    many = False
    for item in items:
        p = Path(item)
        if not item.strip():
            failures.append((item, "empty path: give an image file, folder or glob"))
        elif p.is_dir():
            many = True
            it = p.rglob("*") if recursive else p.iterdir()
            found = sorted(str(q) for q in it if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                failures.append((item, "folder holds no image files"))
            files += found
        elif p.exists():
            files.append(item)
        elif any(ch in item for ch in "*?["):
            many = True
            found = sorted(q for q in glob.glob(item, recursive=True) if Path(q).is_file())
            if not found:
                failures.append((item, "pattern matches no file"))
            files += found
        else:
            failures.append((item, "no such file or folder"))
    seen: set[str] = set()
    unique = [f for f in files if not (f in seen or seen.add(f))]
    return unique, failures, many


def _annotated_name(path: str, used: set[str]) -> str:
    p = Path(path)
    ext = p.suffix.lower() if p.suffix.lower() in (".jpg", ".jpeg", ".png") else ".png"
    name = p.stem + ext
    k = 1
    while name in used:
        k += 1
        name = f"{p.stem}_{k}{ext}"
    used.add(name)
    return name


def _annotate_dir(path: str | None) -> Path | None:
    """The ``--annotate`` folder, made if missing; a clear error when it is a file or cannot be made."""
    if path is None:
        return None
    if not path.strip():
        raise UserError("--annotate needs a folder name")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UserError(f"--annotate {path}: is a file, not a folder; give a folder for the annotated pictures")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--annotate {path}: cannot make the folder ({exc.strerror})") from None
    return out


def cmd_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ..annotate import draw_faces, draw_message
    from ..imaging import ImageReadError, load_image

    if not args.paths and not args.example:
        raise UserError("give one or more image files, folders or globs, or --example")
    files, failures, many = expand_inputs(args.paths, recursive=not args.no_recursive)
    inputs: list[tuple[str, Any]] = [(f, f) for f in files]
    if args.example:
        from ..samples import astronaut_bgr

        inputs.insert(0, (EXAMPLE, astronaut_bgr()))
    out_dir = _annotate_dir(args.annotate)
    rec = recognizer_from_args(args)
    used_names: set[str] = set()

    results: list[dict[str, Any]] = [{"path": p, "faces": [], "error": e} for p, e in failures]
    for p, e in failures:
        print(f"{p}: error: {e}", file=sys.stderr)
    bar = tqdm(total=len(inputs), desc="pictures", unit="img", disable=None if many and len(inputs) > 1 else True,
               file=sys.stderr, leave=False)
    for start in range(0, len(inputs), args.batch):
        chunk = inputs[start : start + args.batch]
        loaded: list[tuple[str, Any]] = []
        for name, src in chunk:
            try:
                loaded.append((name, load_image(src)))
            except ImageReadError as exc:
                results.append({"path": name, "faces": [], "error": str(exc)})
                bar.write(f"{name}: error: {exc}", file=sys.stderr)
        faces_per = rec.predict_arrays([img for _, img in loaded]) if loaded else []
        for (name, img), faces in zip(loaded, faces_per):
            entry = {"path": name, "size": [int(img.shape[1]), int(img.shape[0])], "faces": faces, "error": None}
            if out_dir:
                ann = draw_faces(img, faces)
                if not faces:
                    draw_message(ann, "no face found")
                target = out_dir / _annotated_name("astronaut.png" if name == EXAMPLE else name, used_names)
                import cv2

                if not cv2.imwrite(str(target), ann):
                    raise UserError(f"--annotate: could not write {target}")
                entry["annotated"] = str(target)
            results.append(entry)
        bar.update(len(chunk))
    bar.close()
    order = {name: i for i, (name, _) in enumerate(inputs)}
    results.sort(key=lambda r: order.get(r["path"], -1))

    counts = Counter(f.label for r in results for f in r["faces"])
    n_fail = sum(1 for r in results if r["error"])
    n_ok = len(results) - n_fail
    n_noface = sum(1 for r in results if not r["error"] and not r["faces"])
    summary = {
        "pictures": n_ok, "failed": n_fail, "no_face": n_noface, "faces": sum(counts.values()),
        "emotions": {c: counts.get(c, 0) for c in rec.classes},
        "backend": rec.backend_name, "detector": "none" if rec.detector is None else rec.detector.name,
        "tta": rec.tta, "balance": rec.balance,
    }
    if args.json:
        doc = {"results": [_json_entry(r) for r in results], "summary": summary}
        print(json.dumps(doc, indent=2))
    elif args.csv:
        _write_csv(results, rec.classes)
    else:
        _print_table(results, summary, rec.classes)
    if n_ok == 0:
        raise UserError(f"none of the {n_fail} input(s) could be read")
    return 1 if n_fail else 0


def _json_entry(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in r.items() if k != "faces"}
    out["faces"] = [{"face": i, **f.to_json()} for i, f in enumerate(r["faces"], start=1)]  # numbered from 1
    return out


def _write_csv(results: list[dict[str, Any]], classes: tuple[str, ...]) -> None:
    w = csv.writer(sys.stdout)
    w.writerow(["path", "face", "x", "y", "w", "h", "score", "label", *classes, "error"])
    for r in results:
        if r["error"] or not r["faces"]:
            w.writerow([r["path"], "", "", "", "", "", "", "", *[""] * len(classes), r["error"] or "no face"])
        for i, f in enumerate(r["faces"], start=1):  # faces shown to people are numbered from 1
            w.writerow([r["path"], i, *f.box, f"{f.score:.3f}", f.label, *[f"{f.probs[c]:.4f}" for c in classes], ""])


def _print_table(results: list[dict[str, Any]], summary: dict[str, Any], classes: tuple[str, ...]) -> None:
    width = min(48, max([len(r["path"]) for r in results] + [4]))
    print(f"{'picture':<{width}}  {'face':>4}  {'box (x,y,w,h)':<21} {'emotion':<9} {'conf':>5}  second")
    for r in results:
        name = r["path"] if len(r["path"]) <= width else "..." + r["path"][-(width - 3):]
        if r["error"]:
            print(f"{name:<{width}}  {'-':>4}  error: {r['error']}")
            continue
        if not r["faces"]:
            print(f"{name:<{width}}  {'-':>4}  no face found")
            continue
        for i, f in enumerate(r["faces"]):
            ranked = sorted(f.probs.items(), key=lambda kv: -kv[1])
            second = f"{ranked[1][0]} {100 * ranked[1][1]:.0f}%" if len(ranked) > 1 else ""
            box = ",".join(str(v) for v in f.box)
            print(f"{name:<{width}}  {i + 1:>4}  {box:<21} {f.label:<9} {100 * f.confidence:4.0f}%  {second}")
            name = ""
    faces = summary["faces"]
    print()
    print(f"{summary['pictures']} picture(s) read, {faces} face(s) found"
          + (f", {summary['no_face']} picture(s) without a face" if summary["no_face"] else "")
          + (f", {summary['failed']} failed" if summary["failed"] else "")
          + f"  [model backend {summary['backend']}, detector {summary['detector']}]")
    if faces:
        print("faces per emotion: " + ", ".join(f"{c} {summary['emotions'][c]}" for c in classes
                                                if summary["emotions"][c]))
    if summary["failed"]:
        print(f"failed ({summary['failed']}):")
        for r in results:
            if r["error"]:
                print(f"  {r['path']}: {r['error']}")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="emotions of the faces in pictures",
                       description="Find the faces in pictures and recognise their emotions. Exit status 0: all "
                                   "inputs read; 1: some failed (listed at the end); 2: none could be read.")
    p.add_argument("paths", nargs="*", metavar="PATH", help="image files, folders (searched recursively) or globs")
    p.add_argument("--example", action="store_true", help="also run on a sample photo (skimage's astronaut)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    fmt.add_argument("--csv", action="store_true", help="print CSV rows (one per face) instead of a table")
    p.add_argument("--annotate", metavar="OUTDIR", help="write each picture with boxes, labels and bars here")
    # still pictures are read with 12-view TTA: more accurate on every set measured (benchmarks/V4.md, run 9) at
    # about 40 ms more per two-face photo; video, webcam, batch and the web app stay without (time-bound)
    add_recognizer_options(p, tta="crops", no_detect=True)
    p.add_argument("--batch", type=positive_int, default=16, metavar="N",
                   help="pictures decoded and recognised together (default 16)")
    p.add_argument("--no-recursive", action="store_true", help="do not search sub-folders")
    p.set_defaults(func=cmd_predict)
