"""``emoscope baselines`` (classic features + scikit-learn classifiers) and ``emoscope explain`` (figures)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import UserError

if TYPE_CHECKING:
    import numpy as np


def _csv_list(text: str) -> list[str]:
    return [t.strip().lower() for t in text.split(",") if t.strip()]


def _pick_split(fs, wanted: str | None, candidates: tuple[str, ...]) -> str | None:
    """The split to use: ``wanted`` when given, else the first of ``candidates`` the dataset has (None: all)."""
    names = {s.lower(): s for s in fs.split_names}
    if wanted:
        if wanted.lower() not in names:
            raise UserError(f"no split named {wanted!r}; this dataset has splits {fs.split_names}")
        return names[wanted.lower()]
    return next((names[c.lower()] for c in candidates if c.lower() in names), None)


def cmd_baselines(args: argparse.Namespace) -> int:
    from ..classic import CLASSIFIERS, FEATURES, baselines_markdown, run_baselines, sample_per_class, small_setting
    from ..datasets import load_dataset

    features, classifiers = _csv_list(args.features), _csv_list(args.classifiers)
    bad = [f for f in features if f not in FEATURES] + [c for c in classifiers if c not in CLASSIFIERS]
    if bad or not features or not classifiers:
        raise UserError(f"unknown or missing features/classifiers {bad}; features: {', '.join(FEATURES)}; "
                        f"classifiers: {', '.join(CLASSIFIERS)}")
    fs = load_dataset(args.data, scheme=args.scheme, progress=True)
    if fs.failures:
        print(fs.failure_summary(), file=sys.stderr)
    train_split = _pick_split(fs, args.train_split, ("Training", "train"))
    if args.setting == "small":
        train, test = small_setting(fs, args.n_train, args.n_val, args.seed, split=train_split)
        where = f"{args.n_train}/{args.n_val} per class from {train_split or 'all faces'}"
    else:
        test_split = _pick_split(fs, args.test_split, ("PrivateTest", "test", "PublicTest", "val"))
        if train_split is None or test_split is None or train_split == test_split:
            raise UserError(f"the full setting needs separate train and test splits; this dataset has {fs.split_names}"
                            " (pass --train-split/--test-split, or use --setting small)")
        train, test = fs.split(train_split), fs.split(test_split)
        if args.limit_per_class:
            train = train.subset(sample_per_class(train, args.limit_per_class, args.seed))
            test = test.subset(sample_per_class(test, args.limit_per_class, args.seed + 1))
        where = f"train {train_split}, test {test_split}"
    print(f"baselines ({args.setting}: {where}): {len(train)} training and {len(test)} test faces", file=sys.stderr)
    rows = run_baselines(train, test, features, classifiers, grid=args.grid, cv=args.cv, seed=args.seed,
                         n_jobs=args.jobs)
    table = baselines_markdown(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    header = f"# Classic baselines: {Path(args.data).name}, {args.setting} setting ({where})\n\n"
    (out / "baselines.md").write_text(header + table)
    meta = {"data": str(args.data), "setting": args.setting, "split": where, "grid": args.grid, "seed": args.seed}
    (out / "baselines.json").write_text(json.dumps({**meta, "rows": rows}, indent=1, default=str))
    print(table)
    if args.results:
        from ..results import ResultRow, current_command, record

        rows_out = []
        for r in rows:
            best = ", ".join(f"{k.split('__')[-1]}={v}" for k, v in r["best_params"].items())
            rows_out.append(ResultRow(
                "classic baselines", Path(args.data).name, f"{args.setting} ({where})",
                f"{r['features']} + {r['classifier']}", r["accuracy"], r["macro_f1"],
                params={"grid_search": args.grid}, train_time_s=r["fit_s"], per_class_f1=r["per_class_f1"],
                command=current_command(), notes=f"grid search chose {best}" if best else "",
                extra={"best_params": r["best_params"], "n_train": r["n_train"], "n_test": r["n_test"]}))
        record(rows_out, args.results, Path(args.results).with_name("RESULTS.md"))
    print(f"wrote {out / 'baselines.md'} and {out / 'baselines.json'}")
    return 0


#: An image no larger than this (pixels a side) is taken as a face crop already (FER-2013's are 48x48).
FACE_CROP_MAX_SIDE = 96


def explain_input(path: str, detector: str, size: int = 48) -> np.ndarray:
    """The ``size`` x ``size`` gray face that ``explain`` explains: the largest face the detector finds in a photo
    (cropped and aligned as ``predict`` crops it), else the centre square; says which on stderr."""
    from ..datasets.images import center_square, read_image, to_gray
    from ..faces import crop_faces, default_margin, get_detector

    image = read_image(path)
    if detector == "none" or max(image.shape[:2]) <= FACE_CROP_MAX_SIDE:
        why = "--detector none" if detector == "none" else f"{image.shape[1]}x{image.shape[0]}, taken as a face crop"
        print(f"{path}: explaining the centre square ({why})", file=sys.stderr)
        return center_square(to_gray(image), size)
    det = get_detector(detector)
    faces = det.detect(image)
    if not faces:
        print(f"{path}: no face found by the {det.name} detector; explaining the centre square of the picture "
              "(crop the face yourself, or try --detector haar)", file=sys.stderr)
        return center_square(to_gray(image), size)
    largest = max(faces, key=lambda d: d.box[2] * d.box[3])
    print(f"{path}: explaining the largest of {len(faces)} face(s), box x,y,w,h = "
          f"{','.join(map(str, largest.box))} ({det.name} detector)", file=sys.stderr)
    return crop_faces(image, [largest], size, default_margin(det.name))[0]


def cmd_explain(args: argparse.Namespace) -> int:
    import numpy as np

    from ..explain import explain_face
    from ..models.checkpoint import load_model
    from ..weights import resolve_weights

    args.weights = resolve_weights(args.weights)
    model, meta = load_model(args.weights)
    face = explain_input(args.image, args.detector)
    images = labels = None
    if args.data:
        from ..datasets import load_dataset

        fs = load_dataset(args.data, scheme=args.scheme, progress=True)
        split = _pick_split(fs, args.split, ("PrivateTest", "test", "PublicTest", "val"))
        pool = fs.split(split) if split else fs
        if tuple(pool.classes) != tuple(meta.get("classes", pool.classes)):
            raise UserError(f"dataset classes {pool.classes} differ from the model's {meta.get('classes')}")
        pick = np.sort(np.random.default_rng(args.seed).permutation(len(pool))[: args.limit])
        pool = pool.subset(pick)
        if pool.images.shape[1:] != (48, 48):
            from ..datasets.images import center_square

            pool.images = np.stack([center_square(im, 48) for im in pool.images])
        images, labels = pool.images, pool.labels
    for p in explain_face(model, meta, face, args.out, images, labels, progress=True):
        print(p)
    return 0


BASELINES_DESCRIPTION = """\
Classic (pre-deep-learning) baselines: each hand-made feature extractor with each scikit-learn classifier,
trained on one split and scored on another, as a markdown table (accuracy, macro-F1, fit time) in --out.

Features: raw (the pixels), pca (eigenfaces: the principal components of the training faces), lbp (histograms of
local binary patterns, a texture code, over a grid of cells), hog (histograms of oriented gradients).
Classifiers: rf (random forest), gb (histogram gradient boosting), svc (support-vector machine with an RBF
kernel), linsvc (linear SVM). A bar on stderr counts the pairs and names the one being fitted: a pair can take
long (raw pixels + svc on all 28,709 FER-2013 training faces fitted in 63 minutes on one core; RESULTS.md).
"""

EXPLAIN_DESCRIPTION = """\
Figures that show why a model predicts what it does for one face, as PNG files in --out: the probabilities,
Grad-CAM (which regions drove the predicted class, from the last convolution's gradients) and gradient
saliency (which pixels change the score most), the feature maps of each convolution layer, and the face's
LBP texture image. With --data it also draws eigenfaces, the mean face of each class, and a grid of
misclassified faces from a sample of that dataset (the most confident errors of each true class).
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("baselines", help="classic baselines: PCA/LBP/HOG features + RF/GB/SVC, a results table",
                       description=BASELINES_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("--data", required=True, help="dataset: FER-2013 CSV, image folder or legend.csv folder")
    b.add_argument("--features", default="pca,lbp,hog", help="comma list of raw, pca, lbp, hog (default: pca,lbp,hog)")
    b.add_argument("--classifiers", default="rf,gb,svc",
                   help="comma list of rf, gb, svc (RBF), linsvc (linear) (default: rf,gb,svc)")
    b.add_argument("--setting", choices=["small", "full"], default="small",
                   help="small: N train / M validation faces per class; full: whole train split vs test split "
                        "(default: small)")
    b.add_argument("--grid", action="store_true", help="tune each pipeline by stratified k-fold grid search")
    b.add_argument("--cv", type=int, default=3, help="folds for --grid (default: 3)")
    b.add_argument("--n-train", type=int, default=100, dest="n_train",
                   help="small setting: training faces per class (default: 100)")
    b.add_argument("--n-val", type=int, default=50, dest="n_val",
                   help="small setting: validation faces per class (default: 50)")
    b.add_argument("--limit-per-class", type=int, dest="limit_per_class",
                   help="full setting: cap faces per class (quick runs)")
    b.add_argument("--train-split", dest="train_split", help="split to train on (default: Training or train)")
    b.add_argument("--test-split", dest="test_split", help="full setting: split to score on "
                                                           "(default: PrivateTest or test)")
    b.add_argument("--scheme", default="fer7", choices=["fer7", "fer6", "ferplus8"],
                   help="label scheme: fer7 (7 emotions), fer6 (no disgust), ferplus8 (adds contempt) "
                        "(default: fer7)")
    b.add_argument("--seed", type=int, default=0, help="seed for sampling faces and for the classifiers (default: 0)")
    b.add_argument("--jobs", type=int, default=1, help="parallel jobs for grid search and random forests (default: 1)")
    b.add_argument("--results", help="also upsert the rows into this results store (JSON) and its RESULTS.md")
    b.add_argument("--out", required=True, help="folder for baselines.md and baselines.json")
    b.set_defaults(func=cmd_baselines)

    e = sub.add_parser("explain", help="figures that explain a model's prediction for one image",
                       description=EXPLAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    e.add_argument("image", help="a face crop, or a photo: its largest face is explained (see --detector)")
    e.add_argument("--detector", default="auto", help="face detector for photos: auto, blazeface, haar, or none "
                                                     "(explain the centre square) (default: auto)")
    e.add_argument("--weights", help="checkpoint or a shipped model: default, fast (default: default)")
    e.add_argument("--out", required=True, help="folder for the PNG figures")
    e.add_argument("--data", help="optional labelled dataset: adds eigenfaces, mean faces and misclassified grid")
    e.add_argument("--split", help="split of --data to sample (default: PrivateTest or test)")
    e.add_argument("--limit", type=int, default=300, help="faces sampled from --data (default: 300)")
    e.add_argument("--scheme", default="fer7", choices=["fer7", "fer6", "ferplus8"],
                   help="label scheme of --data, which must match the model's classes (default: fer7)")
    e.add_argument("--seed", type=int, default=0, help="seed for the sample drawn from --data (default: 0)")
    e.set_defaults(func=cmd_explain)
