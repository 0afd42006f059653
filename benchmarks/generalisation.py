"""Cross-dataset generalisation through the real pipeline: detect, crop, classify the largest face.

Scores any weights, each with any pipeline variant, on:
- the Taiwanese studio photos (1,232 photos of 29 people; all of them, and the "agreed" subset where observers
  chose the posed emotion, plus every posed-neutral photo), 95 % intervals resampling *people*;
- all muxspace faces (legend.csv labels cleaned, contempt merged into disgust, conflicting duplicates left out),
  intervals resampling photos (the set names no people); and, for a model trained with ``emoscope train
  --extra-data`` on muxspace, its held-out people alone (the same seeded split by the person in the file name,
  with the share its run folder's ``extra_data.json`` records, or ``--heldout-share``; so those people are new to
  it);
- FER-2013 PrivateTest (48 x 48 crops: classifier only, no detector), intervals resampling faces;
and the ``fer`` package on the same photos in the same run, through the environment ``fer_pipeline.py`` uses
(``benchmarks/.fer-venv``; see ``speed.py`` for how to make it). A photo where no face is found counts as wrong.

Pipeline variants are comma-separated ``key=value`` lists (or ``default``):
``margin=0.2`` (crop margin, fraction of the box side), ``rotate=0`` (no eye alignment),
``contrast=equalize|clahe`` (contrast normalisation of each crop), ``balance=T`` (the product's
``Recognizer(balance=T)``: each face's probabilities divided by the model's training class frequencies to the power
T and renormalised, logit adjustment towards equal classes, Menon et al. 2021; ``prior=T`` is the same, its older
name), ``tta=flip|crops`` (the product's test-time augmentation). They change only how crops are cut and read, so
detections are computed once per photo (cached under ``runs/generalisation_cache``).

    python benchmarks/generalisation.py --weights default fast --variants default margin=0.2 contrast=clahe
    python benchmarks/generalisation.py --weights runs/v4_camera_ft/best.pt --no-fer --out /tmp/x.md

Nothing is fitted to these sets: they only score.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from machine import cpu_name
from tqdm import tqdm

from emoscope.cli.train import EXTRA_DATA_RECORD
from emoscope.datasets import load_dataset
from emoscope.datasets.legend import labelled_images, read_legend_rows
from emoscope.datasets.splits import hashed_split, person_of
from emoscope.faces import align_crop, get_detector, largest_face
from emoscope.labels import EMOTIONS, clean_labels, get_scheme
from emoscope.recognizer import Recognizer
from emoscope.weights import resolve_weights

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT.parent / "shared" / "datasets"
CACHE = ROOT / "runs" / "generalisation_cache"
FER_PYTHON = Path(os.environ.get("EMOSCOPE_FER_PYTHON", HERE / ".fer-venv" / "bin" / "python"))


@dataclass
class PhotoSet:
    """Labelled photos of one dataset, with the group each photo belongs to (its person, when known)."""

    name: str
    paths: list[Path]
    labels: np.ndarray
    groups: np.ndarray
    subsets: dict[str, np.ndarray] = field(default_factory=dict)  # name -> boolean mask over paths


def taiwanese(root: Path) -> PhotoSet:
    """The Taiwanese photos with their posed labels; the agreed subset is rated == posed, plus posed neutral."""
    with open(root / "labels.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = np.array(clean_labels([r["posed"] for r in rows], where=str(root / "labels.csv")))
    agreed = np.array([r["posed"] == "neutral" or r["rated"] == r["posed"] for r in rows])
    return PhotoSet("Taiwanese", [root / r["file"] for r in rows], labels, np.array([r["subject"] for r in rows]),
                    {"all": np.ones(len(rows), bool), "agreed": agreed})


def muxspace(root: Path, heldout_share: float | None = 0.5) -> PhotoSet:
    """Every muxspace photo whose labels agree (cleaned, contempt -> disgust) and whose file exists; subset
    ``heldout`` (unless ``heldout_share`` is None): the people ``emoscope train --extra-data --extra-test-share
    heldout_share`` leaves out."""
    legend = root / "data" / "legend.csv"
    scheme = get_scheme("fer7")
    items, _conflicts = labelled_images(read_legend_rows(legend), scheme, scheme.merges, legend)
    items = [(image, y) for image, y in items if (root / "images" / image).is_file()]
    subsets = {"all": np.ones(len(items), bool)}
    if heldout_share is not None:
        subsets["heldout"] = hashed_split([person_of(k) for k, _ in items], (1 - heldout_share, heldout_share),
                                          ("train", "test")) == "test"
    return PhotoSet("muxspace", [root / "images" / k for k, _ in items], np.array([y for _, y in items]),
                    np.array([k for k, _ in items]), subsets)


@dataclass
class Found:
    """The largest face the detector found in each photo (box x, y, w, h and landmarks), or none."""

    boxes: np.ndarray  # N x 4, -1 where no face
    landmarks: list[np.ndarray | None]


def detect_largest(photos: PhotoSet, detector: str) -> Found:
    """Run the pipeline's detector once per photo (cached on disk by dataset and detector)."""
    cache = CACHE / f"{photos.name}_{detector}_{len(photos.paths)}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=True)
        return Found(z["boxes"], list(z["landmarks"]))
    det = get_detector(detector)
    boxes = np.full((len(photos.paths), 4), -1, np.int64)
    marks: list[np.ndarray | None] = []
    for i, path in enumerate(tqdm(photos.paths, desc=f"detecting faces in {photos.name}", unit="photo")):
        img = cv2.imread(str(path))
        big = largest_face(det.detect(img)) if img is not None else None  # the Recognizer's min_face
        if big is None:
            marks.append(None)
            continue
        boxes[i] = big.box
        marks.append(None if big.landmarks is None else np.asarray(big.landmarks, np.float32))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, boxes=boxes, landmarks=np.array(marks, dtype=object))
    return Found(boxes, marks)


def parse_variant(spec: str) -> dict[str, str]:
    if spec == "default":
        return {}
    out = {}
    for part in spec.split(","):
        key, sep, value = part.partition("=")
        key = "balance" if key == "prior" else key
        if not sep or key not in ("margin", "rotate", "contrast", "balance", "tta"):
            sys.exit(f"bad variant part {part!r}: use margin=F, rotate=0|1, contrast=none|equalize|clahe, "
                     "balance=T or tta=none|flip|crops")
        out[key] = value
    return out


def normalise_contrast(crops: np.ndarray, how: str) -> np.ndarray:
    """Per-crop contrast normalisation: histogram equalisation or CLAHE (clip 2.0, 4 x 4 tiles)."""
    if how in ("", "none"):
        return crops
    if how == "equalize":
        return np.stack([cv2.equalizeHist(c) for c in crops])
    if how == "clahe":
        clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4))
        return np.stack([clahe.apply(c) for c in crops])
    sys.exit(f"unknown contrast {how!r}: use none, equalize or clahe")


def photo_crops(photos: PhotoSet, found: Found, variant: dict[str, str], margin: float, size: int) -> np.ndarray:
    m = float(variant.get("margin", margin))
    rotate = variant.get("rotate", "1") not in ("0", "false", "no")
    crops = np.zeros((len(photos.paths), size, size), np.uint8)
    for i, path in enumerate(photos.paths):
        if found.boxes[i, 0] < 0:
            continue
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        crops[i] = align_crop(gray, tuple(int(v) for v in found.boxes[i]), found.landmarks[i], size, m, rotate)
    return normalise_contrast(crops, variant.get("contrast", "none"))


# -- metrics -------------------------------------------------------------------------------------------------
def macro_f1(y: np.ndarray, p: np.ndarray, k: int = 7) -> float:
    f1 = []
    for c in range(k):
        tp = np.sum((p == c) & (y == c))
        denom = np.sum(p == c) + np.sum(y == c)
        f1.append(0.0 if denom == 0 else 2 * tp / denom)
    return float(np.mean(f1))


def score(y: np.ndarray, pred: np.ndarray, groups: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """Accuracy with a 95 % bootstrap interval over groups, macro-F1 and per-class recall (pred -1: no face)."""
    correct = pred == y
    uniq, inv = np.unique(groups, return_inverse=True)
    per_group_n = np.bincount(inv)
    per_group_ok = np.bincount(inv, weights=correct)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(uniq), (n_boot, len(uniq)))
    boot = per_group_ok[draws].sum(1) / per_group_n[draws].sum(1)
    recall = {EMOTIONS[c]: float(correct[y == c].mean()) if np.any(y == c) else float("nan") for c in range(7)}
    confusion = np.zeros((7, 8), int)  # true class x predicted class, the last column counting "no face"
    np.add.at(confusion, (y, np.where(pred < 0, 7, pred)), 1)
    return {"accuracy": float(correct.mean()), "ci": [float(np.percentile(boot, 2.5)),
                                                       float(np.percentile(boot, 97.5))],
            "macro_f1": macro_f1(y, pred), "recall": recall, "no_face": int(np.sum(pred < 0)), "n": int(len(y)),
            "confusion": confusion.tolist()}


def confusion_table(r: dict) -> list[str]:
    """Where each posed emotion's photos went (row-normalised %), for one row's Taiwanese photos."""
    cm = np.asarray(r["taiwanese_all"]["confusion"])
    share = 100 * cm / np.maximum(cm.sum(1, keepdims=True), 1)
    lines = [f"{r['system']} ({r['variant']}), {cm.sum()} photos:", "",
             "| posed \\ read as | " + " | ".join(EMOTIONS) + " | no face |", "|---|" + "---:|" * 8]
    lines += [f"| {EMOTIONS[i]} | " + " | ".join(f"**{v:.0f}**" if i == j else f"{v:.0f}" for j, v in enumerate(row))
              + " |" for i, row in enumerate(share)]
    return [*lines, ""]


# -- systems -------------------------------------------------------------------------------------------------
def emoscope_predictions(rec: Recognizer, crops: np.ndarray, has_face: np.ndarray) -> np.ndarray:
    """Canonical class index per crop (-1 without a face)."""
    idx = np.array([EMOTIONS.index(c) for c in rec.classes])  # model class order -> canonical order
    return np.where(has_face, idx[rec.classify(crops).argmax(1)], -1)


def fer_predictions(paths: list[Path]) -> np.ndarray | None:
    """The fer package's largest-face label per photo (-1: none found), or None without its environment."""
    if not FER_PYTHON.is_file():
        print(f"fer: skipped, no fer environment at {FER_PYTHON} (see benchmarks/speed.py)", file=sys.stderr)
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(str(p) for p in paths))
    try:
        out = subprocess.run([str(FER_PYTHON), str(HERE / "fer_pipeline.py"), "photos", f.name], check=True,
                             capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    labels = json.loads(out.strip().splitlines()[-1])["labels"]
    return np.array([-1 if lab is None else EMOTIONS.index(lab) for lab in labels])


def fer_private(images: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """fer's classifier on FER-2013 crops (``fer_pipeline.py faces``); predictions in canonical order."""
    if not FER_PYTHON.is_file():
        return None
    with tempfile.NamedTemporaryFile(suffix=".npz", delete=False) as f:
        np.savez(f, images=images, labels=labels)
    try:
        out = subprocess.run([str(FER_PYTHON), str(HERE / "fer_pipeline.py"), "faces", f.name], check=True,
                             capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    return np.array(json.loads(out.strip().splitlines()[-1])["predictions"])


# -- report --------------------------------------------------------------------------------------------------
def pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def write_markdown(path: Path, rows: list[dict], command: str, cpu: str, elapsed: float) -> None:
    lines = [
        "# Cross-dataset generalisation (whole pipeline)",
        "",
        "Made by `benchmarks/generalisation.py`; see its docstring for what each set and column means. "
        "Accuracy counts a photo where no face was found as wrong; intervals are 95 % bootstraps "
        "(Taiwanese: resampling people; muxspace: photos; PrivateTest: faces).",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {cpu}; {elapsed / 60:.1f} min.",
        "",
        "| system | variant | Taiwanese all | agreed | macro-F1 | no face | muxspace all | macro-F1 | no face "
        "| PrivateTest | macro-F1 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        t, a, m, f = r["taiwanese_all"], r["taiwanese_agreed"], r.get("muxspace_all"), r.get("private")
        lines.append(
            f"| {r['system']} | {r['variant']} | {pct(t['accuracy'])} [{pct(t['ci'][0])}-{pct(t['ci'][1])}] | "
            f"{pct(a['accuracy'])} | {t['macro_f1']:.3f} | {t['no_face']} | "
            + (f"{pct(m['accuracy'])} [{pct(m['ci'][0])}-{pct(m['ci'][1])}] | {m['macro_f1']:.3f} | {m['no_face']} | "
               if m else "- | - | - | ")
            + (f"{pct(f['accuracy'])} | {f['macro_f1']:.3f} |" if f else "- | - |"))
    held = [r for r in rows if "muxspace_heldout" in r]
    if held:
        n = held[0]["muxspace_heldout"]["n"]
        lines += ["", f"## muxspace, held-out people only ({n} photos)", "",
                  "The people `emoscope train --extra-data` leaves out of training at the same share (a seeded hash "
                  "of the person in the file name): the fair muxspace score of a model trained on the other half.",
                  "", "| system | variant | accuracy | macro-F1 | no face |", "|---|---|---:|---:|---:|"]
        for r in held:
            h = r["muxspace_heldout"]
            lines.append(f"| {r['system']} | {r['variant']} | {pct(h['accuracy'])} [{pct(h['ci'][0])}-"
                         f"{pct(h['ci'][1])}] | {h['macro_f1']:.3f} | {h['no_face']} |")
    lines += ["", "## Recall per class on all Taiwanese photos", "",
              "| system | variant | " + " | ".join(EMOTIONS) + " |", "|---|---|" + "---:|" * len(EMOTIONS)]
    for r in rows:
        rec = r["taiwanese_all"]["recall"]
        lines.append(f"| {r['system']} | {r['variant']} | " + " | ".join(f"{100 * rec[c]:.0f}" for c in EMOTIONS)
                     + " |")
    lines += ["", "## Where the Taiwanese photos go", "",
              "Each row: the photos posed with that emotion, as % read as each class (the diagonal is the recall "
              "above). One table per system, in the first variant and fer's own.", ""]
    for r in rows:
        if r["variant"] in (rows[0]["variant"], "its own") and "confusion" in r["taiwanese_all"]:
            lines += confusion_table(r)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def variant_recognizer(rec: Recognizer, variant: dict[str, str]) -> Recognizer:
    """``rec`` itself, or the same model read with the variant's ``tta`` and ``balance`` (product options)."""
    tta, balance = variant.get("tta", "none"), float(variant.get("balance", 0))
    if (tta, balance) == (rec.tta, rec.balance):
        return rec
    backend = "torch" if rec.backend_name == "torch" else "auto"  # an .onnx path loads that very file
    return Recognizer(weights=rec.backend.path, detector="none", backend=backend, tta=tta, balance=balance)


def score_models(readers: dict[str, dict[str, Recognizer]], sets: dict[str, PhotoSet], found: dict[str, Found],
                 private: tuple[np.ndarray, np.ndarray] | None) -> list[dict]:
    """One row per model and pipeline variant: every photo set (and PrivateTest) scored through that variant.

    ``readers``: variant spec -> model label -> that model read with the variant (:func:`variant_recognizer`).
    """
    sizes = {rec.input_size for by_label in readers.values() for rec in by_label.values()}
    labels = list(next(iter(readers.values())))
    rows = {(label, spec): {"system": label, "variant": spec} for label in labels for spec in readers}
    for spec, by_label in readers.items():  # crops depend on the variant only: cut them once, score every model
        variant = parse_variant(spec)
        for key, photos in sets.items():
            crops = {s: photo_crops(photos, found[key], variant, margin=0.10, size=s) for s in sizes}
            for label, rec in by_label.items():
                pred = emoscope_predictions(rec, crops[rec.input_size], found[key].boxes[:, 0] >= 0)
                for sub, mask in photos.subsets.items():
                    rows[label, spec][f"{key}_{sub}"] = score(photos.labels[mask], pred[mask], photos.groups[mask])
        if private is not None:
            imgs = normalise_contrast(private[0], variant.get("contrast", "none"))
            for label, rec in by_label.items():
                pred = emoscope_predictions(rec, imgs, np.ones(len(imgs), bool))
                rows[label, spec]["private"] = score(private[1], pred, np.arange(len(pred)))
    return list(rows.values())  # weights first, then variants: the report's order


def heldout_share(weights: list[str], given: float | None) -> float | None:
    """The share of muxspace's people to score as held out: ``given``, else the one the weights' training run
    recorded (its ``extra_data.json``, beside a checkpoint ``emoscope train --extra-data`` wrote), else None (no
    held-out section: for models that never saw muxspace it would only be a smaller muxspace score). A given share
    that differs from a recorded one, or two runs that recorded different shares, stop the run: the held-out rows
    would score people a model trained on."""
    recorded: dict[str, float] = {}
    for w in weights:
        path = Path(w).parent / EXTRA_DATA_RECORD
        if w not in ("default", "fast") and path.is_file():
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("seed", 0) != 0:
                sys.exit(f"{path}: seed {record['seed']}; this benchmark holds out people with seed 0")
            recorded[w] = float(record["test_share"])
    differ = {w: v for w, v in recorded.items() if given is not None and v != given}
    if differ or len(set(recorded.values())) > 1:
        shown = ", ".join(f"{w}: {v:g}" for w, v in recorded.items())
        sys.exit(f"--heldout-share {given if given is not None else '(not given)'} does not match the share of "
                 f"people the training runs held out ({shown}, from their {EXTRA_DATA_RECORD}); score runs with "
                 "different shares separately, with --heldout-share set to theirs")
    if given is not None:
        return given
    return next(iter(recorded.values()), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", nargs="+", default=["default"], help="shipped names or checkpoint/ONNX paths")
    p.add_argument("--variants", nargs="+", default=["default"], help="pipeline variants (see the docstring)")
    p.add_argument("--backend", default="auto", help="classifier backend: auto (int8 ONNX when kept), torch, onnx")
    p.add_argument("--detector", default="auto", help="face detector of the pipeline (default: auto, BlazeFace)")
    p.add_argument("--data", type=Path, default=DATA, help="folder holding taiwanese/, muxspace_facial_expressions/, "
                   "fer2013/")
    p.add_argument("--no-fer", dest="fer", action="store_false", help="do not score the fer package")
    p.add_argument("--no-private", dest="private", action="store_false", help="skip FER-2013 PrivateTest")
    p.add_argument("--out", type=Path, default=HERE / "CROSS_DATASET.md", help="markdown report to write")
    p.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    p.add_argument("--heldout-share", type=float, default=None, help="share of muxspace's people that `emoscope "
                   "train --extra-data` held out (its --extra-test-share); scored as their own row set (default: "
                   f"the share recorded in the weights' {EXTRA_DATA_RECORD}; without either, no held-out section)")
    args = p.parse_args()
    args.heldout_share = heldout_share(args.weights, args.heldout_share)
    for sub in ("taiwanese", "muxspace_facial_expressions"):
        if not (args.data / sub).is_dir():
            sys.exit(f"{args.data / sub} not found: this benchmark needs the shared datasets (--data)")
    start = time.perf_counter()
    sets = {"taiwanese": taiwanese(args.data / "taiwanese"),
            "muxspace": muxspace(args.data / "muxspace_facial_expressions", args.heldout_share)}
    found = {k: detect_largest(s, args.detector) for k, s in sets.items()}
    private = None
    if args.private:
        test = load_dataset(args.data / "fer2013").split("PrivateTest")
        private = (test.images, test.labels)
    recognizers = {}
    for weights in args.weights:
        rec = Recognizer(weights=weights, detector="none", backend=args.backend)
        label = f"emoscope {weights}" if weights in ("default", "fast") else f"{resolve_weights(weights)}"
        recognizers[f"{label} ({rec.backend_name})"] = rec
    readers: dict[str, dict[str, Recognizer]] = {}
    for spec in args.variants:  # a bad variant or a model that cannot be balanced stops before any scoring
        try:
            readers[spec] = {label: variant_recognizer(rec, parse_variant(spec)) for label, rec in recognizers.items()}
        except ValueError as exc:
            sys.exit(f"variant {spec!r}: {exc}")
    rows = score_models(readers, sets, found, private)
    for row in rows:
        t = row["taiwanese_all"]
        print(f"{row['system']} [{row['variant']}]: Taiwanese {pct(t['accuracy'])}, "
              f"agreed {pct(row['taiwanese_agreed']['accuracy'])}, muxspace {pct(row['muxspace_all']['accuracy'])}"
              + (f", PrivateTest {pct(row['private']['accuracy'])}" if "private" in row else ""), flush=True)
    if args.fer:
        row = {"system": "fer 25.10.3 (Haar + mini-Xception)", "variant": "its own"}
        for key, photos in sets.items():
            pred = fer_predictions(photos.paths)
            if pred is None:
                break
            for sub, mask in photos.subsets.items():
                row[f"{key}_{sub}"] = score(photos.labels[mask], pred[mask], photos.groups[mask])
        else:
            if private is not None:
                pred = fer_private(*private)
                row["private"] = score(private[1], pred, np.arange(len(pred)))
            rows.append(row)
            print(f"fer: Taiwanese {pct(row['taiwanese_all']['accuracy'])}, "
                  f"muxspace {pct(row['muxspace_all']['accuracy'])}", flush=True)
    cpu = cpu_name()
    command = "python benchmarks/generalisation.py " + " ".join(sys.argv[1:])
    write_markdown(args.out, rows, command, f"{cpu}, {os.cpu_count()} cores", time.perf_counter() - start)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
