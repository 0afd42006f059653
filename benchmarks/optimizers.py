"""Optimizer study: SGD with momentum vs Adam vs RMSprop training the same net on FER-2013.

Same model, data, batch size, epochs, augmentation and constant learning rate for all three; each optimiser
gets its customary rate. Writes one figure with loss and accuracy against epoch for all runs
(``optimizers.png``), a table row per optimiser (PrivateTest accuracy of the best PublicTest epoch) and
``optimizers.md`` in the run folder.

Examples::

    python benchmarks/optimizers.py --smoke
    python benchmarks/optimizers.py --model pytorch_4conv --epochs 20
"""

from __future__ import annotations

from pathlib import Path

import common

from emoscope.training import best_epoch

OPTIMIZERS: dict[str, dict] = {
    "sgd_momentum": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": False},
    "adam": {"optimizer": "adam", "lr": 1e-3},
    "rmsprop": {"optimizer": "rmsprop", "lr": 1e-4, "momentum": 0.0},
}
#: Everything but the optimiser: constant rate, flip + small shifts/rotations, no smoothing, no mixup.
BASE = {"schedule": "constant", "weight_decay": 0.0, "label_smoothing": 0.0, "mixup_alpha": 0.0, "batch_size": 64,
        "augment": True, "aug": {"rotation": 10.0, "scale": 0.1, "shift": 0.1, "shear": 0.0, "hflip": 0.5,
                                 "brightness": 0.0, "contrast": 0.0, "erasing": 0.0}}


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0], epochs=20)
    p.add_argument("--model", default="pytorch_4conv")
    p.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    args = common.finish_args(p.parse_args(), "optimizers")
    train_set, val_set, test_set = common.fer_splits(args)
    histories, rows = {}, []
    for name in args.optimizers.split(","):
        recipe = {**BASE, **OPTIMIZERS[name], "model": args.model}
        cfg = common.make_config(args, recipe, args.out / f"{args.model}_{name}")
        result = common.train_and_test(args, cfg, train_set, val_set, test_set)
        histories[name] = result["history"]
        rows.append(common.row(args, "optimizer study", "fer2013", "7-class, Training / PublicTest / PrivateTest",
                               args.model, result, {"optimizer": name, **common.recipe_params(cfg)}))
        common.save_rows(args, rows[-1:])
    note = f" (reduced run: {args.limit} training faces per class)" if args.limit else ""
    report(histories, rows, args.figures, args.model, common.current_command() + note)


def report(histories: dict[str, list[dict]], rows: list, figures: Path, model: str, command: str) -> Path:
    """``optimizers.png`` (curves of every run) and ``optimizers.md`` (final table) in ``figures``."""
    table = ["| optimizer | lr | best epoch | epochs run | final train loss | final val loss | best val acc "
             "| test acc |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (name, hist), r in zip(histories.items(), rows, strict=True):
        best = best_epoch(hist)
        table.append(f"| {name} | {OPTIMIZERS[name]['lr']:g} | {best['epoch']} | {len(hist)} | "
                     f"{hist[-1]['train_loss']:.4f} | {hist[-1].get('val_loss', float('nan')):.4f} | "
                     f"{best.get('val_acc', float('nan')):.4f} | {r.accuracy:.4f} |")
    return common.write_report(figures, "optimizers", histories, f"{model}: optimizers (FER-2013)", command, table)


if __name__ == "__main__":
    main()
