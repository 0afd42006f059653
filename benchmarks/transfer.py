"""Transfer between datasets: a model trained on one, fine-tuned on the other, against training from scratch.

``--direction fer-to-muxspace`` (default): the shipped FER-2013 model on muxspace (legend.csv setting:
neutral/happy <= 500, seeded 60/20/20), three rows on the muxspace test split:

- ``no fine-tuning``: the FER-2013 model as it is;
- ``fine-tuned``: started from its weights, ``--finetune-lr`` (lower than from scratch);
- ``from scratch``: fresh weights, ``--scratch-lr``.

``--direction muxspace-to-fer`` ("the other way round"): ``--weights`` names a model trained on muxspace
(e.g. this script's own ``from scratch`` run); the same three rows on FER-2013 PrivateTest, training on Training
and choosing the best epoch on PublicTest.

The trained runs share everything else (epochs, batch, cosine schedule with warm-up, augmentation) and pick
their best epoch on the validation split. ``--starts`` runs a subset (e.g. one process per start on a GPU).

Examples::

    python benchmarks/transfer.py --smoke
    python benchmarks/transfer.py --epochs 30
    python benchmarks/transfer.py --direction muxspace-to-fer --weights MUX.pt --epochs 20 --scratch-lr 0.05
"""

from __future__ import annotations

import sys
from pathlib import Path

import common

from emoscope.models.checkpoint import load_model, read_checkpoint
from emoscope.weights import default_weights_path

BASE = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "schedule": "cosine", "warmup_epochs": 1.0,
        "weight_decay": 5e-4, "label_smoothing": 0.1, "mixup_alpha": 0.0, "batch_size": 64, "augment": True}
#: direction -> (the weights' dataset, the target dataset's name in the results table, its setting)
DIRECTIONS = {
    "fer-to-muxspace": ("FER-2013", "muxspace",
                        "legend.csv cleaned, neutral/happy <= 500, seeded 60/20/20; test split"),
    "muxspace-to-fer": ("muxspace", "fer2013", "Training, best epoch on PublicTest; PrivateTest"),
}
STARTS = ("none", "finetune", "scratch")


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0], epochs=30)
    p.add_argument("--direction", choices=sorted(DIRECTIONS), default="fer-to-muxspace")
    p.add_argument("--weights", help="the model to start from (fer-to-muxspace default: the shipped one; "
                                     "muxspace-to-fer: required, a model trained on muxspace)")
    p.add_argument("--starts", type=lambda t: t.split(","), default=list(STARTS),
                   help="comma list of the rows to make: none (no fine-tuning), finetune, scratch")
    p.add_argument("--finetune-lr", type=float, default=0.01, dest="finetune_lr")
    p.add_argument("--scratch-lr", type=float, default=0.1, dest="scratch_lr")
    args = common.finish_args(p.parse_args(), "transfer")
    if unknown := sorted(set(args.starts) - set(STARTS)):
        sys.exit(f"--starts: unknown {', '.join(unknown)}; choose from {', '.join(STARTS)}")
    if args.direction == "muxspace-to-fer" and not args.weights:
        sys.exit("--direction muxspace-to-fer needs --weights: a model trained on muxspace, e.g. "
                 "runs/benchmarks/transfer/emovgg_m_scratch/best.pt from `python benchmarks/transfer.py`")
    weights = Path(args.weights) if args.weights else default_weights_path()
    if not weights.exists():
        sys.exit(f"--weights {weights}: no such file")
    ck = read_checkpoint(weights)
    name, kwargs = ck["model_name"], dict(ck.get("model_kwargs") or {})
    source, dataset, setting = DIRECTIONS[args.direction]
    if args.direction == "fer-to-muxspace":
        train_set, val_set, test_set = common.muxspace_splits(args, size=common.input_size(name))
    else:
        train_set, val_set, test_set = common.fer_splits(args)
    label = f"weights {common.weights_label(weights)}"
    start_name = f"{source} weights"
    if "none" in args.starts:
        model, meta = load_model(weights)
        m = common.evaluate(model, meta, test_set)
        common.save_rows(args, [common.row(args, "transfer", dataset, setting, name, {"metrics": m},
                                           {"start": start_name, "training": "none"}, notes=label)])
        print(f"[{name}] {source} model, no fine-tuning: test accuracy {m['accuracy']:.4f}, "
              f"macro-F1 {m['macro_f1']:.4f}")

    for tag, start, lr in (("finetune", start_name, args.finetune_lr), ("scratch", "scratch", args.scratch_lr)):
        if tag not in args.starts:
            continue
        recipe = {**BASE, "model": name, "model_kwargs": kwargs, "lr": lr}
        cfg = common.make_config(args, recipe, args.out / f"{name}_{tag}")
        result = common.train_and_test(args, cfg, train_set, val_set, test_set,
                                       init_weights=weights if tag == "finetune" else None)
        common.save_rows(args, [common.row(args, "transfer", dataset, setting, name, result,
                                           {"start": start, **common.recipe_params(cfg)},
                                           notes=label if tag == "finetune" else "")])


if __name__ == "__main__":
    main()
