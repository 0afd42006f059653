"""``emoscope train``: train a registered model on a dataset."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..durations import duration_arg

if TYPE_CHECKING:
    import numpy as np

    from ..budget import Replanner
    from ..datasets import FaceSet
    from ..training import TrainConfig


def cmd_train(args: argparse.Namespace) -> int:
    from ..datasets import load_dataset
    from ..datasets.splits import check_classes_present
    from ..training import TrainConfig, TrainConfigError, train

    cfg_dict: dict = json.loads(Path(args.config).read_text()) if args.config else {}
    for key in ("model", "epochs", "batch_size", "optimizer", "lr", "schedule", "weight_decay",
                "label_smoothing", "mixup_alpha", "seed", "early_stopping", "train_crop", "ema_decay", "threads",
                "device"):
        val = getattr(args, key, None)
        if val is not None:
            cfg_dict[key] = val
    if args.time_limit is not None:
        if args.budget is not None:
            raise TrainConfigError("give --budget or --time-limit, not both: --budget sets its own time limit")
        cfg_dict["time_limit_s"] = args.time_limit
    for kv in args.set or []:
        k, eq, v = kv.partition("=")
        if not eq:
            raise TrainConfigError(f"--set {kv}: give KEY=VALUE, e.g. --set soft_targets=ferplus")
        try:  # a JSON value (number, true, null, list, object, "quoted string"), else the bare word as a string
            cfg_dict[k] = json.loads(v)
        except ValueError:
            cfg_dict[k] = v
    cfg_dict["out_dir"] = args.out
    cfg = TrainConfig.from_dict(cfg_dict)
    fs = load_dataset(args.data, scheme=args.scheme, labels=args.labels)
    if fs.failures:
        print(fs.failure_summary(), file=sys.stderr)
    train_set = fs.split(args.train_split)
    check_classes_present(train_set, f"{args.data} split {args.train_split!r}")
    val_set = fs.split(args.val_split) if args.val_split else None
    print(f"training {cfg.model} on {len(train_set)} faces, validating on {len(val_set) if val_set else 0}; "
          f"run folder {cfg.out_dir}")
    command_file = Path(cfg.out_dir) / "command.txt"
    if not (args.resume and command_file.exists()):  # a resumed run keeps the command that started it
        command_file.parent.mkdir(parents=True, exist_ok=True)
        command_file.write_text(shlex.join(["emoscope", *getattr(args, "argv", [])]) + "\n")
    replan = None
    if args.budget is not None:
        cfg, replan = fit_budget(cfg, args, train_set, val_set)
    targets = ferplus_targets(args.data, train_set) if cfg.soft_targets == "ferplus" else None
    summary = train(cfg, train_set, val_set, resume=args.resume, replan=replan, targets=targets)
    print(json.dumps(summary, indent=2))
    return 0


def ferplus_targets(data: str, train_set: FaceSet) -> np.ndarray:
    """The FER+ vote shares of the training faces, read from the FER-2013 folder ``data``; says how many have some."""
    from ..datasets import DatasetError
    from ..datasets.ferplus import vote_distributions

    q = vote_distributions(data, train_set.sources, train_set.scheme)
    found = int((q.sum(1) > 0).sum())
    if not found:
        raise DatasetError(f"{data}: none of the {len(train_set)} training faces has FER+ votes; soft_targets=ferplus "
                           "needs the FER-2013 image folder with fer2013_row_index.csv and ferplus/fer2013new.csv")
    print(f"soft targets: FER+ vote shares for {found} of {len(train_set)} training faces "
          f"(the other {len(train_set) - found} learn their label alone)")
    return q


def fit_budget(cfg: TrainConfig, args: argparse.Namespace, train_set: FaceSet,
               val_set: FaceSet | None) -> tuple[TrainConfig, Replanner]:
    """``--budget``: the epochs that fit it on this machine (``--epochs``, when given, caps them), the budget left
    after calibration as the time limit, and the hook that shortens the run if its epochs slow down. A resumed
    run keeps the plan it started with."""
    from dataclasses import fields, replace

    from ..budget import EpochPlan, Replanner, plan_epochs

    out = Path(cfg.out_dir)
    if args.resume and (out / "last.pt").exists() and (out / "plan.json").exists():
        saved = json.loads((out / "plan.json").read_text())
        print(f"resuming a budgeted run: {saved['epochs']} epochs, as planned when it started ({out / 'plan.json'})")
        plan = EpochPlan(**{f.name: saved[f.name] for f in fields(EpochPlan)})
        return replace(cfg, epochs=plan.epochs, time_limit_s=saved["time_limit_s"]), \
            Replanner(plan, saved["time_limit_s"])
    print(f"timing a few epochs to fit the {args.budget / 60:g}-minute budget ...", flush=True)
    plan = plan_epochs(cfg, train_set, val_set, args.budget, max_epochs=args.epochs)
    crop = f", {plan.crop_epoch_s:.1f} s on crops" if plan.crop_epoch_s is not None else ""
    print(f"one epoch takes about {plan.epoch_s:.1f} s on whole faces{crop}; planned {plan.epochs} epochs, "
          f"about {plan.estimated_s / 60:.1f} of {args.budget / 60:g} minutes")
    cfg = replace(cfg, epochs=plan.epochs, time_limit_s=args.budget - plan.calibration_s)
    out.mkdir(parents=True, exist_ok=True)
    (out / "plan.json").write_text(json.dumps({**plan.to_dict(), "time_limit_s": cfg.time_limit_s}, indent=2))
    return cfg, Replanner(plan, cfg.time_limit_s)


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a registered model on a dataset")
    t.add_argument("--data", required=True, help="dataset: FER-2013 CSV, image folder or legend.csv folder")
    t.add_argument("--config", help="JSON file of TrainConfig fields; flags below override it")
    t.add_argument("--model")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int, dest="batch_size")
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop"])
    t.add_argument("--lr", type=float)
    t.add_argument("--schedule", choices=["onecycle", "cosine", "plateau", "constant"])
    t.add_argument("--weight-decay", type=float, dest="weight_decay")
    t.add_argument("--label-smoothing", type=float, dest="label_smoothing")
    t.add_argument("--mixup-alpha", type=float, dest="mixup_alpha")
    t.add_argument("--early-stopping", type=int, dest="early_stopping")
    t.add_argument("--train-crop", type=int, dest="train_crop")
    t.add_argument("--ema-decay", type=float, dest="ema_decay",
                   help="validate and save a moving average of the weights with this decay per step, e.g. 0.999")
    t.add_argument("--time-limit", type=duration_arg("m"), dest="time_limit", metavar="DURATION",
                   help="stop before an epoch that would end after this much training: 90m, 2h, 1h30m, 600s; "
                        "a bare number counts minutes")
    t.add_argument("--budget", type=duration_arg("m"), metavar="DURATION",
                   help="train as many epochs as fit this wall time on this machine (2h, 90m; a bare number counts "
                        "minutes): a few timed epochs plan the count, so the schedule ends inside it; --epochs caps it")
    t.add_argument("--threads", type=int)
    t.add_argument("--device", help="auto (default: a CUDA GPU when PyTorch sees one), cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int)
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other TrainConfig field: a JSON value (0.3, true, [1, 2]) or a bare word")
    t.add_argument("--labels", default="default", choices=["default", "ferplus"],
                   help="ferplus: FER-2013 folder with FER+ majority-vote labels (use --scheme ferplus8 or fer7)")
    t.add_argument("--scheme", default="fer7", help="label scheme: fer7, fer6, ferplus8")
    t.add_argument("--train-split", default="training")
    t.add_argument("--val-split", default="publictest")
    t.add_argument("--out", default="runs/run", help="run folder (checkpoints, logs, curves)")
    t.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    t.set_defaults(func=cmd_train)
