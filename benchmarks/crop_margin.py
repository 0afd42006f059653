"""How the face crop margin and the detector change accuracy on real photos; writes ``benchmarks/CROP_MARGIN.md``.

    python benchmarks/crop_margin.py [--data ../shared/datasets/muxspace_facial_expressions] [--limit N]

Data: the muxspace facial_expressions images listed in ``data/legend.csv`` (one face each, 350 x 350 gray LFW
photos and smaller colour face crops). Labels are cleaned with ``emoscope.labels.clean_labels`` (fer7 scheme,
contempt -> disgust); images with conflicting labels are dropped. For each detector the script reports the
detection rate, then accuracy and macro-F1 of the shipped model on the detected faces for several margins,
plus the no-detection baseline (the whole picture's centre square, which is how the dataset readers see it).
Neutral and happy dominate this set, so read macro-F1 next to accuracy.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from emoscope.datasets.images import ImageReadError, center_square, to_gray
from emoscope.evaluation import classification_metrics
from emoscope.faces import crop_faces, get_detector
from emoscope.labels import EMOTIONS, LabelError, clean_labels
from emoscope.recognizer import Recognizer, read_image

HERE = Path(__file__).resolve().parent
MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3)
DETECTORS = ("blazeface", "blazeface-full", "blazeface-short", "haar")


def read_legend(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Image paths and fer7 label ids from legend.csv; notes on what was dropped."""
    legend = root / "data" / "legend.csv"
    if not legend.is_file():
        legend = root / "legend.csv"
    labels_by_image: dict[str, set[str]] = defaultdict(set)
    with open(legend, newline="") as f:
        for row in csv.DictReader(f):
            labels_by_image[row["image"].strip()].add(row["emotion"].strip().lower())
    notes = []
    conflicting = sorted(k for k, v in labels_by_image.items() if len(v) > 1)
    if conflicting:
        notes.append(f"dropped {len(conflicting)} image(s) with conflicting labels: {', '.join(conflicting[:5])}")
    images_dir = root / "images"
    names = sorted(k for k, v in labels_by_image.items() if len(v) == 1 and (images_dir / k).is_file())
    missing = sum(1 for k, v in labels_by_image.items() if len(v) == 1 and not (images_dir / k).is_file())
    if missing:
        notes.append(f"{missing} legend row(s) refer to images not stored in this copy (skipped)")
    raw = [next(iter(labels_by_image[k])) for k in names]
    try:
        ids = clean_labels(raw, "fer7", merges={"contempt": "disgust"}, where=str(legend))
    except LabelError as exc:
        sys.exit(str(exc))
    return [images_dir / k for k in names], ids, notes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path,
                    default=HERE.parent.parent / "shared" / "datasets" / "muxspace_facial_expressions")
    ap.add_argument("--weights", help="checkpoint to test (default: the shipped model)")
    ap.add_argument("--limit", type=int, help="use only the first N images (a quick look)")
    ap.add_argument("--out", type=Path, default=HERE / "CROP_MARGIN.md")
    args = ap.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data}: dataset not found (pass --data)")
    paths, labels, notes = read_legend(args.data)
    if args.limit:
        paths, labels = paths[: args.limit], labels[: args.limit]
    rec = Recognizer(weights=args.weights, detector=None)
    size = rec.input_size
    detectors = {name: get_detector(name) for name in DETECTORS}

    crops: dict[tuple[str, float], list[np.ndarray]] = defaultdict(list)
    kept: dict[str, list[int]] = defaultdict(list)
    baseline, base_labels = [], []
    det_time: dict[str, float] = defaultdict(float)
    unreadable = 0
    t_start = time.perf_counter()
    for i, (path, y) in enumerate(zip(paths, labels)):
        try:
            img = read_image(path)
        except ImageReadError as exc:
            unreadable += 1
            print(f"{path.name}: {exc}", file=sys.stderr)
            continue
        baseline.append(center_square(to_gray(img), size))
        base_labels.append(y)
        for name, det in detectors.items():
            t = time.perf_counter()
            found = det.detect(img)
            det_time[name] += time.perf_counter() - t
            if not found:
                continue
            best = max(found, key=lambda d: d.box[2] * d.box[3] * d.score)  # one face per image
            kept[name].append(y)
            for m in MARGINS:
                crops[(name, m)].append(crop_faces(img, [best], size, m)[0])
        if (i + 1) % 200 == 0:
            print(f"{i + 1}/{len(paths)} images, {time.perf_counter() - t_start:.0f} s", file=sys.stderr)

    n = len(base_labels)
    counts = np.bincount(base_labels, minlength=len(EMOTIONS))
    lines = ["# Crop margin and detector on real photos (muxspace facial_expressions)", "",
             f"Command: `python benchmarks/crop_margin.py {' '.join(sys.argv[1:])}`".rstrip(), "",
             f"Images: {n} with one clean label ({unreadable} unreadable); classes: "
             + ", ".join(f"{c} {k}" for c, k in zip(EMOTIONS, counts) if k) + ".",
             *[f"Note: {x}." for x in notes], f"Model: {rec!r}.", "",
             "## Detection rate", "", "| detector | faces found | rate | ms per image |", "|---|---:|---:|---:|"]
    for name in DETECTORS:
        k = len(kept[name])
        lines.append(f"| {name} | {k} / {n} | {100 * k / max(n, 1):.1f}% | {1000 * det_time[name] / max(n, 1):.1f} |")
    base = classification_metrics(base_labels, rec.classify(np.stack(baseline)).argmax(1), EMOTIONS)
    lines += ["", "## Accuracy on the detected faces", "",
              "Margin = fraction of the face box side added on every side before resizing to "
              f"{size} x {size}. Each detector is scored on the images where it found a face.", "",
              "| detector | margin | n | accuracy | macro-F1 |", "|---|---:|---:|---:|---:|",
              f"| none (centre square of the picture) | - | {n} | {100 * base['accuracy']:.1f}% | "
              f"{base['macro_f1']:.3f} |"]
    best_row = ("none", None, base["accuracy"])
    for name in DETECTORS:
        for m in MARGINS:
            faces = crops.get((name, m))
            if not faces:
                continue
            met = classification_metrics(kept[name], rec.classify(np.stack(faces)).argmax(1), EMOTIONS)
            lines.append(f"| {name} | {m:.2f} | {met['n']} | {100 * met['accuracy']:.1f}% | {met['macro_f1']:.3f} |")
            if met["accuracy"] > best_row[2]:
                best_row = (name, m, met["accuracy"])
    lines += ["", f"Best: {best_row[0]} at margin {best_row[1]} ({100 * best_row[2]:.1f}%). "
              "Set `emoscope.faces.DEFAULT_MARGIN` from this table once the real model ships.", ""]
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
