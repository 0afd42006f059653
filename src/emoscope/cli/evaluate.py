"""``emoscope eval``: metrics of a model (the shipped one by default) on a dataset split."""

from __future__ import annotations

import argparse
import json
import sys

SPLIT_ALIASES = {"training": "Training", "publictest": "PublicTest", "privatetest": "PrivateTest"}


def cmd_eval(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset
    from ..evaluation import evaluate_model, write_report
    from ..models.checkpoint import load_model
    from ..weights import resolve_weights

    weights = resolve_weights(args.weights)
    model, meta = load_model(weights)
    fs = load_dataset(args.data, scheme=args.scheme, labels=args.labels, progress=not args.json)
    if fs.failures and not args.json:
        print(fs.failure_summary(), file=sys.stderr)
    split = SPLIT_ALIASES.get(args.split.lower(), args.split)
    faces = fs.split(split) if args.split != "all" else fs
    if list(faces.classes) != list(meta["classes"]):
        from . import UserError

        raise UserError(f"the model predicts {meta['classes']} but the data uses {list(faces.classes)}; "
                        "pass the matching --scheme")
    modes = ["none"] + ([args.tta] if args.tta != "none" else [])
    results = evaluate_model(model, faces, meta, tta=modes)
    extra = {"weights": str(weights), "data": str(args.data), "split": split, "model": meta["model_name"]}
    paths = write_report(results, faces, args.out, title=f"{meta['model_name']} on {split}", extra=extra)
    main = results["modes"]["none"]
    if args.json:
        out = {k: main[k] for k in ("accuracy", "macro_f1", "weighted_f1", "n", "per_class", "confusion_matrix",
                                    "classes")}
        out.update({"split": split, "weights": str(weights),
                    "tta": {m: {"accuracy": r["accuracy"], "macro_f1": r["macro_f1"]}
                            for m, r in results["modes"].items()}})
        print(json.dumps(out))
    else:
        for mode, m in results["modes"].items():
            print(f"{split} TTA={mode}: accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  (n={m['n']})")
        print(f"report: {paths['report_md']}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a model on a dataset split (accuracy, macro-F1, per class, plots)")
    p.add_argument("--weights", help="checkpoint (.pt) or a shipped model: default, fast (default: default)")
    p.add_argument("--data", required=True, help="dataset path (FER-2013 CSV or folder, image folder, legend.csv)")
    p.add_argument("--split", default="privatetest",
                   help="split name: training, publictest, privatetest (FER-2013), train/val/test, or all")
    p.add_argument("--labels", default="default", choices=["default", "ferplus"],
                   help="ferplus: FER-2013 folder with FER+ majority-vote labels (use --scheme ferplus8 or fer7)")
    p.add_argument("--scheme", default="fer7")
    p.add_argument("--tta", default="crops", choices=["none", "flip", "crops"],
                   help="also report this test-time augmentation (always reported without TTA too)")
    p.add_argument("--out", default="reports/eval", help="folder for report.md/json and PNGs")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout")
    p.set_defaults(func=cmd_eval)
