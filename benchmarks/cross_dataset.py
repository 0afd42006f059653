"""Cross-dataset generalisation between FER-2013 and muxspace.

- FER-2013 -> muxspace: the shipped FER-2013 model (or ``--weights``) on the muxspace test split and on all
  muxspace faces of the setting (neutral/happy <= 500), never seen in training;
- muxspace -> FER-2013: a model trained on the muxspace train split (best epoch on its validation split), or
  ``--mux-weights`` from an earlier run (e.g. transfer.py's from-scratch run), scored on the muxspace test split
  (in-domain) and on FER-2013 PrivateTest (cross-domain).

Examples::

    python benchmarks/cross_dataset.py --smoke
    python benchmarks/cross_dataset.py --model emovgg_s --epochs 30
"""

from __future__ import annotations

from pathlib import Path

import common

from emoscope.datasets import FaceSet
from emoscope.models.checkpoint import load_model
from emoscope.weights import default_weights_path

#: Recipe for the muxspace-trained model (the flagship's kind of recipe, a small dataset).
MUX_RECIPE = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True, "schedule": "cosine",
              "warmup_epochs": 1.0, "weight_decay": 5e-4, "label_smoothing": 0.1, "batch_size": 64, "augment": True}
MUX_SETTING = "legend.csv cleaned, neutral/happy <= 500, seeded 60/20/20"


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0], epochs=30)
    p.add_argument("--weights", help="FER-2013 model (default: the shipped one)")
    p.add_argument("--mux-weights", dest="mux_weights", help="a muxspace-trained checkpoint (skips training)")
    p.add_argument("--model", default="emovgg_s", help="architecture trained on muxspace when no --mux-weights")
    p.add_argument("--lr", type=float, default=MUX_RECIPE["lr"], help="peak learning rate of the muxspace run")
    args = common.finish_args(p.parse_args(), "cross_dataset")
    rows = []

    # FER-2013 -> muxspace
    weights = Path(args.weights) if args.weights else default_weights_path()
    fer_model, fer_meta = load_model(weights)
    mux = common.muxspace_splits(args, size=fer_meta["input_size"])
    for faces, where in ((mux[2], "test split"), (FaceSet.concat(list(mux)), "all faces")):
        m = common.evaluate(fer_model, fer_meta, faces)
        rows.append(common.row(args, "cross-dataset", "FER-2013 -> muxspace", f"{MUX_SETTING}; {where}",
                               fer_meta["model_name"], {"metrics": m}, {"trained_on": "FER-2013"},
                               notes=f"weights {common.weights_label(weights)}"))
        print(f"FER-2013 model on muxspace {where} ({len(faces)} faces): accuracy {m['accuracy']:.4f}, "
              f"macro-F1 {m['macro_f1']:.4f}")

    # muxspace -> FER-2013
    if args.mux_weights:
        mux_model, mux_meta = load_model(args.mux_weights)
        result: dict = {}
        name = mux_meta["model_name"]
    else:
        name = args.model
        size = common.input_size(name)
        train_set, val_set, test_set = mux if size == fer_meta["input_size"] else common.muxspace_splits(args, size)
        cfg = common.make_config(args, {**MUX_RECIPE, "lr": args.lr, "model": name}, args.out / f"{name}_muxspace")
        result = common.train_and_test(args, cfg, train_set, val_set, test_set)
        mux_model, mux_meta = load_model(Path(cfg.out_dir) / "best.pt")
    params = {"trained_on": "muxspace", **({"weights": str(args.mux_weights)} if args.mux_weights else {})}
    in_domain = common.evaluate(mux_model, mux_meta, mux[2])
    rows.append(common.row(args, "cross-dataset", "muxspace -> muxspace", f"{MUX_SETTING}; test split", name,
                           {**result, "metrics": in_domain}, params))
    _, _, private = common.fer_splits(args)
    cross = common.evaluate(mux_model, mux_meta, private)
    no_flip = {k: v for k, v in result.items() if k != "flip"}  # result's flip TTA was on the muxspace test split
    rows.append(common.row(args, "cross-dataset", "muxspace -> FER-2013", "7-class PrivateTest", name,
                           {**no_flip, "metrics": cross}, params))
    print(f"muxspace model: muxspace test accuracy {in_domain['accuracy']:.4f}; "
          f"FER-2013 PrivateTest accuracy {cross['accuracy']:.4f}, macro-F1 {cross['macro_f1']:.4f}")
    common.save_rows(args, rows)


if __name__ == "__main__":
    main()
