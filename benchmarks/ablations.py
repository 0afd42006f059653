"""Regularisation ablation: the same net on FER-2013 with none / dropout / L2 / augmentation / early stopping / all.

Every variant starts from the unregularised baseline (no dropout, no weight decay, no augmentation, no early
stopping; Adam 1e-3, constant rate) and switches one technique on; ``all`` switches on every one. The best
PublicTest epoch is scored on PrivateTest. Writes ``ablations.png`` (curves of all variants),
``ablations.md`` (one table) and a row per variant.

Examples::

    python benchmarks/ablations.py --smoke
    python benchmarks/ablations.py --model pytorch_4conv --epochs 30
    python benchmarks/ablations.py --redraw     # the figure and table again, from the rows of results.json

The variants' rows may come from different machines and sessions (a GPU run merged by ``gpu_reproduce.py``, a
CPU run resumed with ``--resume``); ``--redraw`` draws each variant's curve from the very run its row scored.
"""

from __future__ import annotations

import json
from pathlib import Path

import common

from emoscope.results import ResultRow, ResultsStore
from emoscope.training import best_epoch

#: Model options that switch every dropout layer off (the factories' defaults switch them on).
DROPOUT_OFF: dict[str, dict] = {
    "pytorch_4conv": {"dropout": 0.0, "conv_dropout": 0.0},
    "keras_4conv": {"dropout": 0.0},
    "conv_and_res": {"dropout": 0.0},
    "gudi_tflearn": {"dropout": 0.0},
    "emovgg_s": {"dropout": 0.0},
    "emovgg_m": {"dropout": 0.0},
}
BASE = {"optimizer": "adam", "lr": 1e-3, "schedule": "constant", "weight_decay": 0.0, "label_smoothing": 0.0,
        "mixup_alpha": 0.0, "batch_size": 64, "augment": False, "early_stopping": 0}
TECHNIQUES: dict[str, dict] = {
    "dropout": {},  # the model's own dropout (BASE removes it through DROPOUT_OFF)
    "l2": {"weight_decay": 5e-4},
    "augmentation": {"augment": True},  # emoscope's default: affine + flip + jitter + random erasing
    "early_stopping": {"early_stopping": 5},
}
VARIANTS = ["none", *TECHNIQUES, "all"]


def variant_recipe(model: str, variant: str) -> dict:
    """BASE plus the techniques of ``variant``; dropout stays off unless the variant is dropout or all."""
    recipe = {**BASE, "model": model}
    if variant not in ("dropout", "all"):
        recipe["model_kwargs"] = dict(DROPOUT_OFF[model])
    for name, change in TECHNIQUES.items():
        if variant in (name, "all"):
            recipe.update(change)
    return recipe


def main() -> None:
    p = common.base_parser(__doc__.split("\n\n")[0], epochs=30)
    p.add_argument("--model", default="pytorch_4conv", choices=sorted(DROPOUT_OFF))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--redraw", action="store_true",
                   help="train nothing: redraw ablations.png and ablations.md from each variant's row in --results "
                        "and the history of the run that row scored (found in --out or --histories)")
    p.add_argument("--histories", default=str(common.REPO / "runs" / "gpu_reproduce_back" / "runs"),
                   help="with --redraw, also search <this>/*/<model>_<variant>/history.json (GPU runs merged here)")
    args = common.finish_args(p.parse_args(), "ablations")
    if args.redraw:
        histories, rows = redraw_sources(args.results, args.model, args.epochs, args.variants.split(","),
                                         [Path(args.out), *Path(args.histories).glob("*")])
        report(histories, rows, args.figures, args.model, common.current_command())
        return
    train_set, val_set, test_set = common.fer_splits(args)
    histories, rows = {}, []
    for variant in args.variants.split(","):
        if variant not in VARIANTS:
            p.error(f"unknown variant {variant!r}; choose from {VARIANTS}")
        cfg = common.make_config(args, variant_recipe(args.model, variant), args.out / f"{args.model}_{variant}")
        result = common.train_and_test(args, cfg, train_set, val_set, test_set)
        histories[variant] = result["history"]
        params = {"variant": variant, **common.recipe_params(cfg), "early_stopping": cfg.early_stopping}
        rows.append(common.row(args, "regularisation ablation", "fer2013",
                               "7-class, Training / PublicTest / PrivateTest", args.model, result, params))
        common.save_rows(args, rows[-1:])
    report(histories, rows, args.figures, args.model, common.current_command())


def redraw_sources(store: str | Path, model: str, epochs: int, variants: list[str], folders: list[Path]
                   ) -> tuple[dict[str, list[dict]], list[ResultRow]]:
    """Each variant's row (full data, ``epochs`` planned) and the history of the run it scored.

    A history belongs to a row when it has the row's epoch count and best epoch; a variant without a row, or
    without such a history, is an error naming what is missing (no curve is drawn from some other run).
    """
    histories, rows = {}, []
    stored = ResultsStore(store).rows

    def preference(r: ResultRow) -> tuple[bool, str]:
        """A run that ended as planned (all its epochs, or early stopping) first, then the newest."""
        return ended_by(r, r.extra.get("epochs_run", 0)) in ("planned epochs", "early stopping"), r.date

    for variant in variants:
        # A variant may have a GPU row and a CPU row (device= tells them apart): draw the preferred one.
        row = max((r for r in stored if r.experiment == "regularisation ablation" and r.model == model
                   and r.params.get("variant") == variant and r.params.get("epochs") == epochs
                   and not r.extra.get("limit")), key=preference, default=None)
        if row is None:
            raise SystemExit(f"{store}: no {model} row for variant {variant!r} at {epochs} planned epochs")
        found = None
        for folder in folders:
            path = folder / f"{model}_{variant}" / "history.json"
            if path.is_file():
                hist = json.loads(path.read_text())
                if (len(hist), best_epoch(hist)["epoch"]) == (row.extra.get("epochs_run"), row.extra.get("best_epoch")):
                    found = hist
                    break
        if found is None:
            raise SystemExit(f"no history.json of {model}_{variant} with {row.extra.get('epochs_run')} epochs and best "
                             f"epoch {row.extra.get('best_epoch')} (its row) in: {', '.join(map(str, folders))}")
        histories[variant] = found
        rows.append(row)
    return histories, rows


def ended_by(row: ResultRow, epochs_run: int) -> str:
    """Why a run ended: its planned epochs, or the reason its row's notes give (early stopping, time limit)."""
    if epochs_run >= row.params.get("epochs", 0):
        return "planned epochs"
    return row.stopped_by or "-"


def report(histories: dict[str, list[dict]], rows: list, figures: Path, model: str, command: str) -> Path:
    """``ablations.png`` (curves of every variant) and ``ablations.md`` (one table of all variants) in ``figures``."""
    table = ["| variant | epochs run | planned | ended by | best epoch | best val acc | test acc | test macro-F1 |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for (name, hist), r in zip(histories.items(), rows, strict=True):
        best = best_epoch(hist)
        table.append(f"| {name} | {len(hist)} | {r.params.get('epochs', '-')} | {ended_by(r, len(hist))} | "
                     f"{best['epoch']} | {best.get('val_acc', float('nan')):.4f} | {r.accuracy:.4f} | "
                     f"{r.macro_f1:.4f} |")
    return common.write_report(figures, "ablations", histories, f"{model}: regularisation ablation", command, table)


if __name__ == "__main__":
    main()
