"""``emoscope train``: train a registered model on a dataset."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..durations import duration_arg
from .options import json_or_word

if TYPE_CHECKING:
    import numpy as np

    from ..budget import Replanner
    from ..datasets import FaceSet
    from ..training import TrainConfig, TrainResult


DESCRIPTION = """\
Train a registered model on a labelled dataset and keep the epoch that scores best on the validation split.
The run folder (--out) receives config.json, command.txt, best.pt (the weights to use), last.pt (every epoch, for
--resume), history.csv / history.json and curves.png; the command ends with a table of the best epoch (--json
prints it as JSON instead).

Recipes are TrainConfig fields: a JSON file (--config, e.g. configs/*.json), the flags below, and --set KEY=VALUE
for any other field. Flags left out keep the config's value, or TrainConfig's default.

On several processes: torchrun --nproc-per-node N -m emoscope train ... trains one run spread over N processes
(gloo on CPUs, nccl on GPUs, one GPU per process): --batch-size stays the global batch and --lr the same, each
process trains on its shard of every batch, and rank 0 alone validates, prints and writes the run folder.
"""

#: CLI flags that set the TrainConfig field of the same name.
CONFIG_FLAGS = ("model", "epochs", "batch_size", "optimizer", "lr", "schedule", "weight_decay", "label_smoothing",
                "mixup_alpha", "seed", "early_stopping", "train_crop", "ema_decay", "threads", "device")


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The run's TrainConfig: --config, then the flags, then each --set."""
    from ..training import TrainConfig, TrainConfigError

    cfg_dict: dict = json.loads(Path(args.config).read_text()) if args.config else {}
    for key in CONFIG_FLAGS:
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
        cfg_dict[k] = json_or_word(v)
    cfg_dict["out_dir"] = args.out
    return TrainConfig.from_dict(cfg_dict)


def cmd_train(args: argparse.Namespace) -> int:
    from ..distributed import process_group
    from ..training import resolve_device

    cfg = train_config(args)
    with process_group(resolve_device(cfg.device).type) as dist:
        # Every process runs this command; rank 0 alone speaks and writes (the others stay quiet on stdout).
        with contextlib.nullcontext() if dist.main else contextlib.redirect_stdout(io.StringIO()):
            result = run_training(args, cfg)
        if dist.main:
            print(json.dumps(result.to_dict(), indent=2) if args.json else result_table(result))
    return 0


def run_training(args: argparse.Namespace, cfg: TrainConfig) -> TrainResult:
    """Read the data, plan a budgeted run, train; the TrainResult."""
    from ..datasets import load_dataset
    from ..datasets.splits import check_classes_present
    from ..distributed import current
    from ..training import train

    dist = current()
    fs = load_dataset(args.data, scheme=args.scheme, labels=args.labels, progress=dist.main and not args.no_progress)
    if fs.failures and dist.main:
        print(fs.failure_summary(), file=sys.stderr)
    train_set = fs.split(args.train_split)
    check_classes_present(train_set, f"{args.data} split {args.train_split!r}")
    val_set = fs.split(args.val_split) if args.val_split else None
    on = f" on {dist.world} processes" if dist.active else ""
    print(f"training {cfg.model} on {len(train_set)} faces{on}, validating on {len(val_set) if val_set else 0}; "
          f"run folder {cfg.out_dir}")
    command_file = Path(cfg.out_dir) / "command.txt"
    if dist.main and not (args.resume and command_file.exists()):  # a resumed run keeps its first command
        command_file.parent.mkdir(parents=True, exist_ok=True)
        command_file.write_text(shlex.join(["emoscope", *getattr(args, "argv", [])]) + "\n")
    targets = ferplus_targets(args.data, train_set) if cfg.soft_targets == "ferplus" else None
    train_set, targets = add_extra_faces(args, train_set, targets, progress=dist.main and not args.no_progress,
                                         record_to=Path(cfg.out_dir) / EXTRA_DATA_RECORD if dist.main else None)
    replan = None
    if args.budget is not None:
        cfg, replan = fit_budget(cfg, args, train_set, val_set)
    return train(cfg, train_set, val_set, resume=args.resume, replan=replan, targets=targets,
                 progress=not args.no_progress)


def result_table(result: TrainResult) -> str:
    """The end of ``emoscope train``: a plain two-column table of the best epoch and where its weights are."""
    if result.best_epoch < 1:
        return f"no epoch was trained; run folder {result.out_dir}"
    validated = result.best_macro_f1 is not None
    why = f" ({result.stopped})" if result.stopped else ""
    rows = [
        ("epochs", f"{result.epochs_run} of {result.planned_epochs}{why}"),
        ("best epoch", str(result.best_epoch)),
        ("val accuracy" if validated else "train accuracy", f"{result.best_acc:.4f}"),
        ("val macro-F1", f"{result.best_macro_f1:.4f}" if validated else "- (no validation split)"),
        ("training time", format_seconds(result.elapsed_s)),
        ("weights", result.weights),
        ("run folder", f"{result.out_dir} (history.csv, curves.png, last.pt for --resume)"),
    ]
    if result.processes > 1:
        rows.insert(5, ("processes", str(result.processes)))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def format_seconds(s: float) -> str:
    """90 -> '1 min 30 s', 4000 -> '1 h 6 min'."""
    s = round(s)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


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


#: The file, in the run folder, that records which people ``--extra-data`` held out (read by generalisation.py).
EXTRA_DATA_RECORD = "extra_data.json"


def add_extra_faces(args: argparse.Namespace, train_set: FaceSet, targets: np.ndarray | None, progress: bool,
                    record_to: Path | None = None) -> tuple[FaceSet, np.ndarray | None]:
    """``--extra-data``: each legend.csv dataset's training people added to the training faces.

    Photos are cut by the face detector as ``predict`` cuts them; each dataset's people are split by a seeded hash
    of the person in the file name (``--extra-test-share`` of them held out), the split whose held-out
    people ``benchmarks/generalisation.py`` scores (its ``--heldout-share``). Added faces have no FER+ votes, so with
    ``soft_targets=ferplus`` they learn their own label alone. ``record_to``: a JSON file that records the share,
    the seed and the held-out people, so that the scoring side can check it holds out the same ones.
    """
    paths = getattr(args, "extra_data", None) or []
    if not paths:
        return train_set, targets
    from ..datasets import DatasetError, FaceSet
    from ..datasets.legend import read_legend
    from ..datasets.splits import check_classes_present, person_of
    from ..faces import largest_face_cropper

    share = args.extra_test_share
    if not 0 <= share < 1:
        raise DatasetError(f"--extra-test-share must be at least 0 and below 1, got {share}")
    crop = largest_face_cropper(size=int(train_set.images.shape[1]))
    parts = [train_set]
    record: dict = {"test_share": share, "seed": 0, "datasets": []}
    for path in paths:
        try:
            fs = read_legend(path, scheme=train_set.scheme, crop=crop, split=(1 - share, 0.0, share),
                             split_by="person", seed=0, progress=progress)
        except DatasetError as exc:
            raise DatasetError(f"--extra-data {path}: {exc} (it takes a legend.csv dataset)") from None
        if fs.failures:
            print(fs.failure_summary(), file=sys.stderr)
        if "train" not in fs.split_names:
            raise DatasetError(f"--extra-data {path}: no person fell in the training part; lower --extra-test-share")
        part = fs.split("train")
        held = len(fs) - len(part)
        # names of each half's people, read from the sources (fs.split would copy the images just for their names)
        people = {name: sorted({person_of(str(s)) for s in fs.sources[fs.splits == name]})
                  for name in ("train", "test")}
        if len(fs) >= 10 and sum(map(len, people.values())) == len(fs):
            print(f"warning: --extra-data {path}: no person appears in two photos, so the held-out part is other "
                  "photos, not other people; people are read from LFW-style file names (Name_0001.jpg)",
                  file=sys.stderr)
        print(f"extra data {path}: {len(part)} faces of {len(people['train'])} people added to training, {held} "
              f"faces of {len(people['test'])} other people held out "
              f"({len(fs.failures)} photos left out)")
        record["datasets"].append({"path": str(path), "faces_added": len(part), "faces_held_out": held,
                                   "photos_left_out": len(fs.failures), "people_added": people["train"],
                                   "people_held_out": people["test"]})
        parts.append(part)
    joined = FaceSet.concat(parts)
    check_classes_present(joined, "the training faces with --extra-data")
    if record_to is not None:
        record_to.parent.mkdir(parents=True, exist_ok=True)
        record_to.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    if targets is not None:
        import numpy as np

        targets = np.concatenate([targets, np.zeros((len(joined) - len(train_set), targets.shape[1]), targets.dtype)])
    return joined, targets


def fit_budget(cfg: TrainConfig, args: argparse.Namespace, train_set: FaceSet,
               val_set: FaceSet | None) -> tuple[TrainConfig, Replanner]:
    """``--budget``: the epochs that fit it on this machine (``--epochs``, when given, caps them), the budget left
    after calibration as the time limit, and the hook that shortens the run if its epochs slow down. A resumed
    run keeps the plan it started with."""
    from dataclasses import fields, replace

    from ..budget import EpochPlan, Replanner, plan_epochs
    from ..distributed import current

    out = Path(cfg.out_dir)
    if args.resume and (out / "last.pt").exists() and (out / "plan.json").exists():
        saved = json.loads((out / "plan.json").read_text())
        print(f"resuming a budgeted run: {saved['epochs']} epochs, as planned when it started ({out / 'plan.json'})")
        plan = EpochPlan(**{f.name: saved[f.name] for f in fields(EpochPlan)})
        return replace(cfg, epochs=plan.epochs, time_limit_s=saved["time_limit_s"]), \
            Replanner(plan, saved["time_limit_s"])
    print(f"timing a few epochs to fit the {args.budget / 60:g}-minute budget ...", flush=True)
    # Each process times the same calibration runs; rank 0's plan is the one all follow.
    plan = current().from_main(plan_epochs(cfg, train_set, val_set, args.budget, max_epochs=args.epochs))
    crop = f", {plan.crop_epoch_s:.1f} s on crops" if plan.crop_epoch_s is not None else ""
    print(f"one epoch takes about {plan.epoch_s:.1f} s on whole faces{crop}; planned {plan.epochs} epochs, "
          f"about {plan.estimated_s / 60:.1f} of {args.budget / 60:g} minutes")
    cfg = replace(cfg, epochs=plan.epochs, time_limit_s=args.budget - plan.calibration_s)
    if current().main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "plan.json").write_text(json.dumps({**plan.to_dict(), "time_limit_s": cfg.time_limit_s}, indent=2))
    return cfg, Replanner(plan, cfg.time_limit_s)


def add_parser(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("train", help="train a registered model on a dataset", description=DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--data", required=True, help="dataset: FER-2013 CSV, image folder or legend.csv folder")
    t.add_argument("--config", metavar="JSON",
                   help="JSON file of TrainConfig fields (a recipe, e.g. configs/fast.json); flags below override it")
    t.add_argument("--model", help="architecture to train, e.g. emovgg_m (the default), emovgg_s, emovgg_t; "
                                   "emoscope.models.list_models() names them all")
    t.add_argument("--epochs", type=int, help="passes over the training split (default 30; with --budget: the most)")
    t.add_argument("--batch-size", type=int, dest="batch_size",
                   help="faces per optimiser step (default 128); under torchrun the global batch over all processes")
    t.add_argument("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop"],
                   help="optimiser (default sgd, with Nesterov momentum 0.9)")
    t.add_argument("--lr", type=float, help="peak learning rate (default 0.1); the same under torchrun")
    t.add_argument("--schedule", choices=["onecycle", "cosine", "plateau", "constant"],
                   help="learning-rate schedule (default onecycle: warm up for a quarter, then anneal to ~0; "
                        "plateau halves it when validation accuracy stalls)")
    t.add_argument("--weight-decay", type=float, dest="weight_decay", help="L2 weight decay (default 5e-4)")
    t.add_argument("--label-smoothing", type=float, dest="label_smoothing",
                   help="share of each target spread over the other classes (default 0.1)")
    t.add_argument("--mixup-alpha", type=float, dest="mixup_alpha",
                   help="mixup: train on blends of two faces and their labels, the blend drawn from Beta(alpha, "
                        "alpha), e.g. 0.2 (default 0: off)")
    t.add_argument("--early-stopping", type=int, dest="early_stopping", metavar="EPOCHS",
                   help="stop after this many epochs without a better validation accuracy (default 0: never)")
    t.add_argument("--train-crop", type=int, dest="train_crop", metavar="PIXELS",
                   help="train on random square crops of this side (e.g. 44 of 48); full_size_epochs (--set) ends "
                        "the run on whole faces (default: whole faces throughout)")
    t.add_argument("--ema-decay", type=float, dest="ema_decay",
                   help="validate and save a moving average of the weights with this decay per step, e.g. 0.999")
    t.add_argument("--time-limit", type=duration_arg("m"), dest="time_limit", metavar="DURATION",
                   help="stop before an epoch that would end after this much training: 90m, 2h, 1h30m, 600s; "
                        "a bare number counts minutes")
    t.add_argument("--budget", type=duration_arg("m"), metavar="DURATION",
                   help="train as many epochs as fit this wall time on this machine (2h, 90m; a bare number counts "
                        "minutes): a few timed epochs plan the count, so the schedule ends inside it; --epochs caps it")
    t.add_argument("--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's choice, one per core)")
    t.add_argument("--device", help="auto (default: a CUDA GPU when PyTorch sees one), cpu, cuda or cuda:N")
    t.add_argument("--seed", type=int, help="seed of the initial weights, batch order and augmentation (default 0)")
    t.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any other TrainConfig field: a JSON value (0.3, true, [1, 2]) or a bare word; repeatable")
    t.add_argument("--labels", default="default", choices=["default", "ferplus"],
                   help="ferplus: FER-2013 folder with FER+ majority-vote labels (use --scheme ferplus8 or fer7)")
    t.add_argument("--scheme", default="fer7", help="label scheme: fer7, fer6, ferplus8 (default fer7)")
    t.add_argument("--train-split", default="training", help="split to train on (default training)")
    t.add_argument("--extra-data", action="append", dest="extra_data", metavar="LEGEND",
                   help="a legend.csv dataset (e.g. muxspace) whose training people are added to the training faces, "
                        "cut by the face detector as predict cuts them; repeatable")
    t.add_argument("--extra-test-share", type=float, default=0.5, dest="extra_test_share", metavar="F",
                   help="share of each --extra-data dataset's people held out, split by the person in the file name "
                        "(seeded hash; default 0.5)")
    t.add_argument("--val-split", default="publictest",
                   help="split that picks the best epoch (default publictest; an empty string: none, the training "
                        "accuracy picks it)")
    t.add_argument("--out", default="runs/run", help="run folder (checkpoints, logs, curves; default runs/run)")
    t.add_argument("--resume", action="store_true",
                   help="continue from <out>/last.pt exactly where it stopped (same options; a stopped --budget run "
                        "keeps its plan)")
    t.add_argument("--json", action="store_true", help="end with the result as JSON instead of a table")
    t.add_argument("--no-progress", action="store_true", dest="no_progress",
                   help="no progress bar and no line per epoch (the table still ends the run)")
    t.set_defaults(func=cmd_train)
