"""Classic baselines (PCA / LBP / HOG / raw pixels + RF / HistGradientBoosting / SVC RBF / linear SVM).

Settings:

- ``small``: 100 training and 50 validation faces per class (seeded, shuffled), drawn from FER-2013 Training
  (muxspace: from all its faces; classes with fewer faces are divided 2:1), tuned by stratified 3-fold grid search;
- ``full``: FER-2013 Training -> PrivateTest (muxspace: train -> test), default parameters (``--grid-full`` tunes
  them too, which multiplies the time by the grid size x folds).

Examples::

    python benchmarks/baselines.py --smoke
    python benchmarks/baselines.py --datasets fer2013 --settings small --features pca,lbp,hog
"""

from __future__ import annotations

import common
from threadpoolctl import threadpool_limits

from emoscope.classic import CLASSIFIERS, FEATURES, default_grid, full_setting, run_baselines, small_setting
from emoscope.datasets import FaceSet
from emoscope.results import ResultRow, current_command

#: Full-setting pairs skipped unless --include-slow: libsvm's RBF SVC is O(n^2) in the 28,709 training faces.
#: Measured fits on this 2-core CPU (RESULTS.md): raw + svc 63 min on one core, hog + svc 13.5 min,
#: raw + gb 15.5 min and raw + rf 3.9 min on one core.
SLOW = {("raw", "svc"), ("hog", "svc"), ("raw", "rf"), ("raw", "gb")}


def smoke_grid(features: str, classifier: str) -> dict[str, list]:
    """The default grid cut to two candidates and small ensembles, so a smoke run takes seconds."""
    grid = {k: v[:1] for k, v in default_grid(features, classifier).items()}
    first = next(k for k in grid if k.startswith("clf__"))
    grid[first] = default_grid(features, classifier)[first][:2]
    if classifier == "rf":
        grid["clf__n_estimators"] = [20]
    if classifier == "gb":
        grid["clf__max_iter"] = [20]
    return grid


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0], epochs=0)
    p.add_argument("--datasets", default="fer2013,muxspace")
    p.add_argument("--settings", default="small,full")
    p.add_argument("--features", default="raw,pca,lbp,hog")
    p.add_argument("--classifiers", default=",".join(CLASSIFIERS))
    p.add_argument("--n-train", type=int, default=100, dest="n_train")
    p.add_argument("--n-val", type=int, default=50, dest="n_val")
    p.add_argument("--no-grid", action="store_true", dest="no_grid", help="small setting without grid search")
    p.add_argument("--grid-full", action="store_true", dest="grid_full", help="grid search in the full setting too")
    p.add_argument("--cv", type=int, default=3)
    p.add_argument("--jobs", type=int, default=1, help="parallel grid-search jobs / forest trees")
    p.add_argument("--include-slow", action="store_true", dest="include_slow",
                   help=f"also run {sorted(SLOW)} in the full setting (hog + svc: 13.5 min on 2 cores; raw: longer)")
    args = common.finish_args(p.parse_args(), "baselines")
    if args.smoke:
        args.n_train, args.n_val, args.cv, args.limit = 4, 2, 2, args.limit or 4
    features, classifiers = args.features.split(","), args.classifiers.split(",")
    for name in features + classifiers:
        if name not in FEATURES and name not in CLASSIFIERS:
            p.error(f"unknown feature/classifier {name!r}")
    for dataset in args.datasets.split(","):
        if dataset == "fer2013":
            fs = common.load_fer(args)
        else:
            tr, va, te = common.muxspace_splits(args)
            fs = FaceSet.concat([tr, va, te])
        for setting in args.settings.split(","):
            if setting == "small":
                pool = "Training" if dataset == "fer2013" else None
                train, test = small_setting(fs, args.n_train, args.n_val, args.seed, split=pool)
                grid, where = not args.no_grid, f"{args.n_train}/{args.n_val} per class"
            else:
                splits = ("Training", "PrivateTest") if dataset == "fer2013" else ("train", "test")
                train, test = full_setting(fs, *splits, limit_per_class=args.limit, seed=args.seed)
                grid, where = args.grid_full, f"{splits[0]} -> {splits[1]}"
            print(f"{dataset} {setting} ({where}): {len(train)} train / {len(test)} test faces", flush=True)
            rows = []
            for f in features:
                for c in classifiers:
                    if setting == "full" and (f, c) in SLOW and not args.include_slow and not args.smoke:
                        print(f"  skipping {f} + {c} in the full setting (slow; --include-slow runs it)")
                        continue
                    pgrids = {(f, c): smoke_grid(f, c)} if args.smoke else None
                    with threadpool_limits(args.threads or None):
                        res = run_baselines(train, test, [f], [c], grid=grid, cv=args.cv, seed=args.seed,
                                            n_jobs=args.jobs, param_grids=pgrids)[0]
                    best = ", ".join(f"{k.split('__')[-1]}={v}" for k, v in res["best_params"].items())
                    notes = "; ".join(t for t in ("smoke run" if args.smoke else "",
                                                  f"grid search chose {best}" if best else "", args.note) if t)
                    rows.append(ResultRow(
                        "classic baselines", dataset, f"{setting} ({where})", f"{f} + {c}", res["accuracy"],
                        res["macro_f1"], params={"grid_search": grid}, train_time_s=res["fit_s"],
                        per_class_f1=res["per_class_f1"], command=current_command(), notes=notes,
                        extra={"best_params": res["best_params"], "cv_accuracy": res["cv_accuracy"],
                               "n_train": res["n_train"], "n_test": res["n_test"], "predict_s": res["predict_s"]}))
                    common.save_rows(args, rows[-1:])


if __name__ == "__main__":
    main()
