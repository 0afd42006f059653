"""Transfer: fine-tune the shipped FER-2013 model on muxspace, against the same net trained from scratch.

Three rows on the muxspace test split (legend.csv setting: neutral/happy <= 500, seeded 60/20/20):

- ``no fine-tuning``: the shipped model as it is;
- ``fine-tuned``: started from the shipped weights, ``--finetune-lr`` (lower than from scratch);
- ``from scratch``: fresh weights, ``--scratch-lr``.

Both trained runs share everything else (epochs, batch, cosine schedule with warm-up, augmentation) and pick
their best epoch on the validation split.

Examples::

    python benchmarks/transfer.py --smoke
    python benchmarks/transfer.py --epochs 30
"""

from __future__ import annotations

from pathlib import Path

import common

from emoscope.models.checkpoint import load_model, read_checkpoint
from emoscope.weights import default_weights_path

BASE = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "schedule": "cosine", "warmup_epochs": 1.0,
        "weight_decay": 5e-4, "label_smoothing": 0.1, "mixup_alpha": 0.0, "batch_size": 64, "augment": True}


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0], epochs=30)
    p.add_argument("--weights", help="the FER-2013 model to start from (default: the shipped one)")
    p.add_argument("--finetune-lr", type=float, default=0.01, dest="finetune_lr")
    p.add_argument("--scratch-lr", type=float, default=0.1, dest="scratch_lr")
    args = common.finish_args(p.parse_args(), "transfer")
    weights = Path(args.weights) if args.weights else default_weights_path()
    ck = read_checkpoint(weights)
    name, kwargs = ck["model_name"], dict(ck.get("model_kwargs") or {})
    train_set, val_set, test_set = common.muxspace_splits(args, size=common.input_size(name))
    setting = "legend.csv cleaned, neutral/happy <= 500, seeded 60/20/20; test split"
    shipped, meta = load_model(weights)
    label = f"weights {common.weights_label(weights)}"
    m = common.evaluate(shipped, meta, test_set)
    rows = [common.row(args, "transfer", "muxspace", setting, name, {"metrics": m},
                       {"start": "FER-2013 weights", "training": "none"}, notes=label)]
    common.save_rows(args, rows[-1:])
    print(f"[{name}] shipped, no fine-tuning: test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}")

    for start, lr in (("FER-2013 weights", args.finetune_lr), ("scratch", args.scratch_lr)):
        recipe = {**BASE, "model": name, "model_kwargs": kwargs, "lr": lr}
        tag = "finetune" if start != "scratch" else "scratch"
        cfg = common.make_config(args, recipe, args.out / f"{name}_{tag}")
        result = common.train_and_test(args, cfg, train_set, val_set, test_set,
                                       init_weights=weights if start != "scratch" else None)
        rows.append(common.row(args, "transfer", "muxspace", setting, name, result,
                               {"start": start, **common.recipe_params(cfg)},
                               notes="" if start == "scratch" else label))
        common.save_rows(args, rows[-1:])


if __name__ == "__main__":
    main()
