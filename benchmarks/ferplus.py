"""The flagship on FER+ labels: train on FER+ Training, pick the epoch on FER+ PublicTest, report FER+ PrivateTest.

FER+ relabels the FER-2013 images by ten annotators each; emoscope keeps the majority vote and drops
``unknown`` / not-a-face images (:mod:`emoscope.datasets.ferplus`), with 8 classes (contempt kept).

By default the run starts from the shipped FER-2013 weights (``configs/ferplus.json``: ``init_weights``) and
fine-tunes for a few epochs with a new 8-class head: those weights saw only FER-2013 *Training* images and
FER+ keeps FER-2013's splits, so no test image leaks in. ``--config`` with a config without ``init_weights``
(for example ``configs/experiments/flagship_v2.json``) trains from scratch instead (about 2 hours on the 2-core CPU).

Writes ``benchmarks/FERPLUS.md`` (accuracy, macro-F1 and per-class F1 without and with TTA, confusion matrix
PNG beside it) and a ``ferplus`` row to ``benchmarks/results.json``.

Examples::

    python benchmarks/ferplus.py --smoke
    python benchmarks/ferplus.py                      # configs/ferplus.json, about 25 minutes on 2 cores
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import common
import numpy as np
from common import REPO, base_parser, cap, evaluate, finish_args, recipe_params

from emoscope.datasets import load_dataset
from emoscope.models.checkpoint import load_model
from emoscope.plots import plot_confusion
from emoscope.results import current_command
from emoscope.training import TrainConfig, train


def main(argv: list[str] | None = None) -> int:
    p = base_parser(__doc__.splitlines()[0], epochs=0)
    p.add_argument("--config", default=str(REPO / "configs" / "ferplus.json"), help="TrainConfig JSON")
    p.add_argument("--report", default=str(REPO / "benchmarks" / "FERPLUS.md"), help="markdown report to write")
    args = finish_args(p.parse_args(argv), "ferplus")
    cfg_dict = json.loads(Path(args.config).read_text())
    if cfg_dict.get("init_weights") and not Path(cfg_dict["init_weights"]).is_absolute():
        cfg_dict["init_weights"] = str(REPO / cfg_dict["init_weights"])
    cfg = TrainConfig.from_dict(cfg_dict)
    cfg.out_dir = str(args.out / "run")
    cfg.seed = args.seed
    if args.epochs:
        cfg.epochs = args.epochs
    if args.batch_size:
        cfg.batch_size = args.batch_size
    if args.smoke:
        args.report = str(args.out / "FERPLUS.md")

    labels = "default" if args.smoke else "ferplus"  # the smoke copy has no FER+ label files
    scheme = "fer7" if args.smoke else "ferplus8"
    faces = load_dataset(args.fer, scheme=scheme, labels=labels)
    train_set, val_set, test_set = faces.split("training"), faces.split("publictest"), faces.split("privatetest")
    train_set, val_set = cap(train_set, args.limit, args.seed), cap(val_set, args.eval_limit, args.seed)
    test_set = cap(test_set, args.eval_limit, args.seed + 1)
    print(f"FER+ ({scheme}): {len(train_set)} train / {len(val_set)} val / {len(test_set)} test faces; "
          f"{cfg.model}, {cfg.epochs} epochs, init {cfg.init_weights or 'random'} -> {cfg.out_dir}", flush=True)
    t0 = time.time()
    summary = train(cfg, train_set, val_set, progress=not args.no_progress)
    train_s = time.time() - t0
    model, meta = load_model(Path(cfg.out_dir) / "best.pt")
    results = {tta: evaluate(model, meta, test_set, tta) for tta in ("none", "flip", "crops")}
    for tta, m in results.items():
        print(f"PrivateTest, TTA {tta}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}", flush=True)

    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    png = report.with_name(report.stem.lower() + "_confusion.png")
    plot_confusion(np.asarray(results["none"]["confusion_matrix"]), list(meta["classes"]), png,
                   title="FER+ PrivateTest (no TTA)")
    classes = list(meta["classes"])
    lines = [
        "# The flagship on FER+ labels",
        "",
        f"Command: `{current_command()}`",
        "",
        f"- data: FER+ majority-vote labels ({scheme}, unknown / not-a-face dropped): {len(train_set)} Training, "
        f"{len(val_set)} PublicTest (epoch selection), {len(test_set)} PrivateTest (reported once)",
        f"- model: `{cfg.model}`, {cfg.epochs} epochs, started from "
        f"`{Path(cfg.init_weights).name if cfg.init_weights else 'random weights'}`; best epoch "
        f"{summary.best_epoch} (PublicTest accuracy {summary.best_acc:.4f}); training {train_s / 60:.1f} min "
        "on this machine's 2 CPU cores",
        "",
        "| TTA | accuracy | macro-F1 | " + " | ".join(f"F1 {c}" for c in classes) + " |",
        "|---|---:|---:|" + "---:|" * len(classes),
    ]
    for tta, m in results.items():
        f1 = [m["per_class"][c]["f1"] for c in classes]
        lines.append(f"| {tta} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
                     + " | ".join(f"{v:.3f}" for v in f1) + " |")
    support = [results["none"]["per_class"][c]["support"] for c in classes]
    lines.append("| test faces | | | " + " | ".join(str(n) for n in support) + " |")
    weak = [c for c in classes if results["none"]["per_class"][c]["f1"] < 0.5]
    if weak:
        lines += ["", f"Weak classes (F1 < 0.5 without TTA): {', '.join(weak)}; FER+ has few of them "
                  f"({', '.join(f'{c}: {train_set.class_counts()[c]} training faces' for c in weak)})."]
    lines += ["", f"Confusion matrix (rows: true, normalised): [{png.name}]({png.name})", ""]
    report.write_text("\n".join(lines))
    print(f"wrote {report} and {png}")

    params = recipe_params(cfg)
    params["init"] = "shipped FER-2013 model" if cfg.init_weights else "random"
    result = {"metrics": results["none"], "flip": results["flip"], "summary": summary.to_dict(), "train_s": train_s}
    row = common.row(args, "ferplus", "fer2013 (FER+ labels)",
                     f"{scheme} majority vote, Training / best on PublicTest / PrivateTest", cfg.model, result, params)
    row.extra["crops_tta_accuracy"] = results["crops"]["accuracy"]
    common.save_rows(args, [row])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
