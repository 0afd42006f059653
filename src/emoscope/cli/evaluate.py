"""``emoscope eval``: metrics of a model (the shipped one by default) on a dataset split."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

SPLIT_ALIASES = {"training": "Training", "publictest": "PublicTest", "privatetest": "PrivateTest"}

#: Model inputs per face for each test-time augmentation mode (see ``evaluation.tta_views``).
TTA_VIEWS = {"none": 1, "flip": 2, "crops": 12}

DESCRIPTION = """\
Score a model on one split of a labelled dataset: accuracy, macro-F1 (the mean of the per-class F1 scores, so rare
classes count as much as common ones), per-class precision/recall/F1, a confusion matrix and a grid of
misclassified faces, written to --out as report.md, report.json, confusion.png and misclassified.png.

Test-time augmentation (TTA) averages the model's probabilities over several views of each face. Crop TTA is ON
by default (--tta crops: the face, its mirror image and five 44x44 crops with their mirrors, 12 views), so the
run takes about 13 times as long as --tta none (1 + 12 views); every report also gives the plain score.
A progress bar per TTA mode shows how far it is (on stderr; none with --json).
"""


def _scored(model, faces, meta: dict, mode: str, bar) -> dict:
    """``evaluate_model`` for one TTA mode, advancing ``bar`` by each batch of faces as it is scored."""
    import torch

    from ..evaluation import evaluate_model

    class Counted(torch.nn.Module):
        """The model, counting its calls: predict_proba calls it once per view of each batch."""

        def __init__(self) -> None:
            super().__init__()
            self.inner, self.calls = model, 0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            if self.calls % TTA_VIEWS[mode] == 0:
                bar.update(len(x))
            return self.inner(x)

    return evaluate_model(Counted(), faces, meta, tta=[mode])


def evaluate_with_progress(model, faces, meta: dict, modes: list[str], desc: str, show: bool) -> dict[str, Any]:
    """``evaluation.evaluate_model`` over ``modes``, one progress bar per mode on stderr (``show=False``: none)."""
    from tqdm.auto import tqdm

    results: dict[str, Any] = {"n": len(faces), "modes": {}, "probs": {}}
    for mode in modes:
        with tqdm(total=len(faces), desc=f"{desc} TTA={mode}", unit="face", file=sys.stderr, disable=not show,
                  leave=True) as bar:
            r = _scored(model, faces, meta, mode, bar)
        results["modes"][mode] = r["modes"][mode]
        results["probs"][mode] = r["probs"][mode]
    return results


def cmd_eval(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset
    from ..evaluation import write_report
    from ..models.checkpoint import load_model
    from ..weights import resolve_weights
    from . import UserError

    weights = resolve_weights(args.weights)
    model, meta = load_model(weights)
    fs = load_dataset(args.data, scheme=args.scheme, labels=args.labels, progress=not args.json)
    if fs.failures and not args.json:
        print(fs.failure_summary(), file=sys.stderr)
    split = SPLIT_ALIASES.get(args.split.lower(), args.split)
    if split != "all" and split not in fs.split_names:
        raise UserError(f"no split named {args.split!r} in {args.data}; it has {', '.join(fs.split_names)} "
                        "(or pass --split all)")
    faces = fs.split(split) if split != "all" else fs
    if list(faces.classes) != list(meta["classes"]):
        raise UserError(f"the model predicts {meta['classes']} but the data uses {list(faces.classes)}; "
                        "pass the matching --scheme")
    modes = ["none"] + ([args.tta] if args.tta != "none" else [])
    results = evaluate_with_progress(model, faces, meta, modes, split, show=not args.json)
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
    p = sub.add_parser("eval", help="evaluate a model on a dataset split (accuracy, macro-F1, per class, plots)",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="checkpoint (.pt) or a shipped model: default, fast (default: default)")
    p.add_argument("--data", required=True,
                   help="dataset path: FER-2013 CSV or image folder, an image folder of <split>/<label>/*, "
                        "or a folder with legend.csv")
    p.add_argument("--split", default="privatetest",
                   help="split to score: training, publictest, privatetest (FER-2013), train/val/test (other "
                        "datasets), or all (default: privatetest)")
    p.add_argument("--labels", default="default", choices=["default", "ferplus"],
                   help="ferplus: FER-2013 folder with FER+ majority-vote labels (use --scheme ferplus8 or fer7)")
    p.add_argument("--scheme", default="fer7", choices=["fer7", "fer6", "ferplus8"],
                   help="label scheme, which must match the model's classes: fer7 (7 emotions), fer6 (no "
                        "disgust), ferplus8 (adds contempt) (default: fer7)")
    p.add_argument("--tta", default="crops", choices=["none", "flip", "crops"],
                   help="test-time augmentation reported beside the plain score (default: crops, 12 views a face, "
                        "about 13 times the work of none)")
    p.add_argument("--out", default="reports/eval", help="folder for report.md/json and PNGs (default: reports/eval)")
    p.add_argument("--json", action="store_true", help="print one JSON object to stdout, no progress bars")
    p.set_defaults(func=cmd_eval)
