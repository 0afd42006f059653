"""Shared plumbing of the benchmark scripts: knobs, datasets, train -> evaluate -> record, smoke mode.

Every script takes ``--epochs``, ``--limit`` (training faces per class), ``--eval-limit``, ``--out``,
``--results`` and ``--smoke``. ``--smoke`` copies a few FER-2013 files per class and split into the run
folder, stands that copy in for every dataset (FER-2013 and muxspace), trains two epochs and writes its
rows to a results store inside the run folder, so the whole script is exercised in seconds without
touching ``benchmarks/results.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emoscope.classic import sample_per_class
from emoscope.datasets import FaceSet, load_dataset
from emoscope.datasets.splits import stratified_split
from emoscope.durations import duration_arg
from emoscope.evaluation import classification_metrics, predict_proba
from emoscope.models import model_info
from emoscope.models.checkpoint import load_model
from emoscope.results import DEFAULT_MARKDOWN, DEFAULT_STORE, ResultRow, current_command, record
from emoscope.training import TrainConfig, best_epoch, resolve_device, train

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "datasets"
FER = SHARED / "fer2013"
MUXSPACE = SHARED / "muxspace_facial_expressions"
#: The muxspace setting of the reference report: neutral and happiness capped at 500, seeded 60/20/20.
MUX_CAPS = {"neutral": 500, "happy": 500}
#: Slim copies of the 224x224 nets for smoke runs (the real width is what full runs measure).
SMOKE_MODEL_KWARGS = {"vgg16_fer": {"width_mult": 0.125}, "alexnet_fer": {"width_mult": 0.125}}


def base_parser(description: str, epochs: int) -> argparse.ArgumentParser:
    """The knobs every benchmark script shares."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--fer", default=str(FER), help="FER-2013 (CSV or the Kaggle image folder)")
    p.add_argument("--muxspace", default=str(MUXSPACE), help="muxspace facial_expressions folder (legend.csv)")
    p.add_argument("--epochs", type=int, default=epochs, help="epochs per training run (0: each recipe's own)")
    p.add_argument("--limit", type=int, help="at most this many training faces per class (quick runs)")
    p.add_argument("--eval-limit", type=int, dest="eval_limit", help="at most this many eval faces per class")
    p.add_argument("--batch-size", type=int, dest="batch_size", help="override the recipe's batch size")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    p.add_argument("--time-limit", type=duration_arg("s"), default=0, dest="time_limit", metavar="DURATION",
                   help="training time per run (600s, 40m, 2h; a bare number counts seconds); a run stops before "
                        "an epoch that would pass it (0: none)")
    p.add_argument("--device", default="auto", help="training device: auto (a CUDA GPU if PyTorch sees one), cpu, cuda")
    p.add_argument("--train-only", action="store_true", dest="train_only",
                   help="train and keep the run folders, evaluate nothing (e.g. on a GPU machine without the test "
                        "split); evaluate later with --trained")
    p.add_argument("--trained", action="store_true",
                   help="where a run folder already holds best.pt and history.json, evaluate it instead of training")
    p.add_argument("--resume", action="store_true",
                   help="continue each run folder's last.pt (a run an earlier --time-limit stopped) up to its "
                        "recipe's epochs instead of starting over; the row's train time, and --time-limit, count "
                        "the whole run's training time, earlier sessions included")
    p.add_argument("--note", default="",
                   help="added to every row's notes: where and how it ran (e.g. the machine, other jobs beside it)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fp32", action="store_true",
                   help="train in float32 (default: bfloat16 autocast), e.g. to tell a bf16 effect from the recipe's")
    p.add_argument("--out", help="run folder (default runs/benchmarks/<script>)")
    p.add_argument("--results", default=str(REPO / DEFAULT_STORE),
                   help="results store; RESULTS.md is written beside it")
    p.add_argument("--figures", default=str(REPO / "benchmarks" / "figures"),
                   help="folder for the figures and tables a person reads")
    p.add_argument("--no-progress", action="store_true", dest="no_progress", help="no per-batch progress bars")
    p.add_argument("--smoke", action="store_true",
                   help="seconds-long end-to-end check on a tiny FER-2013 copy; results go to the run folder")
    return p


def finish_args(args: argparse.Namespace, script: str) -> argparse.Namespace:
    """Resolve defaults; in smoke mode build the tiny dataset and redirect data and results."""
    if args.train_only and script != "reproduce":
        sys.exit("--train-only is supported by reproduce.py only")
    args.out = Path(args.out or REPO / "runs" / "benchmarks" / script)
    if args.smoke:
        args.out = Path(args.out) / "smoke"
        tiny = tiny_fer_copy(Path(args.fer), args.out / "tiny_fer2013")
        args.fer = args.muxspace = str(tiny)
        args.epochs = 2  # two points, so the curves of a smoke run are lines
        args.batch_size = args.batch_size or 16
        args.results = str(args.out / "results.json")
        Path(args.results).unlink(missing_ok=True)  # each smoke run starts a fresh table
        args.no_progress = True
    args.out.mkdir(parents=True, exist_ok=True)
    # Figures and tables a person reads are committed (benchmarks/figures); checkpoints stay in the run folder.
    args.figures = args.out if args.smoke else Path(args.figures)
    args.figures.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    return args


def markdown_path(store: str | Path) -> Path:
    """The table rendered beside the store: RESULTS.md for a ``results.json``, else ``<store stem>.md``.

    Runs side by side that each keep their own store in one folder (``gpu_reproduce.py``) then each get their
    own table instead of overwriting one RESULTS.md.
    """
    store = Path(store)
    name = DEFAULT_MARKDOWN.name if store.name == DEFAULT_STORE.name else store.stem + ".md"
    return store.with_name(name)


# ------------------------------------------------------------------------------------------------- data


def tiny_fer_copy(src: Path, dst: Path, per_class: tuple[int, int, int] = (6, 3, 3)) -> Path:
    """Copy the first few files of each class of a FER-2013 image folder (Training, PublicTest, PrivateTest)."""
    if (dst / ".complete").exists():
        return dst
    if not (src / "train").is_dir() or not (src / "test").is_dir():
        sys.exit(f"--smoke needs the FER-2013 image folder (train/, test/) at {src}")
    for label_dir in sorted((src / "train").iterdir()):
        if not label_dir.is_dir():
            continue
        picks = sorted(label_dir.glob("Training_*"))[: per_class[0]]
        test_dir = src / "test" / label_dir.name
        picks += sorted(test_dir.glob("PublicTest_*"))[: per_class[1]]
        picks += sorted(test_dir.glob("PrivateTest_*"))[: per_class[2]]
        for f in picks:
            target = dst / ("train" if f.name.startswith("Training_") else "test") / label_dir.name / f.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
    (dst / ".complete").write_text("ok\n")
    return dst


def cap(fs: FaceSet, limit: int | None, seed: int) -> FaceSet:
    """At most ``limit`` faces per class (seeded); the set itself when no limit."""
    return fs.subset(np.sort(sample_per_class(fs, limit, seed))) if limit else fs


def load_fer(args: argparse.Namespace, scheme: str = "fer7") -> FaceSet:
    fs = load_dataset(args.fer, scheme=scheme, progress=not args.no_progress)
    if fs.failures:
        print(fs.failure_summary(), file=sys.stderr)
    return fs


def fer_splits(args: argparse.Namespace, scheme: str = "fer7") -> tuple[FaceSet, FaceSet, FaceSet]:
    """FER-2013 Training (capped by --limit), PublicTest and PrivateTest (capped by --eval-limit)."""
    fs = load_fer(args, scheme)
    test = fs.subset(np.zeros(len(fs), bool)) if args.train_only else fs.split("PrivateTest")  # may be absent then
    return (cap(fs.split("Training"), args.limit, args.seed), cap(fs.split("PublicTest"), args.eval_limit, args.seed),
            cap(test, args.eval_limit, args.seed + 1))


def fer6_split(args: argparse.Namespace, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
               ) -> tuple[FaceSet, FaceSet, FaceSet]:
    """All FER-2013 faces in the 6-class scheme (no disgust class), re-split seeded and stratified 80/10/10."""
    fs = stratified_split(load_fer(args, "fer6"), fractions, ("train", "val", "test"), args.seed)
    return (cap(fs.split("train"), args.limit, args.seed), cap(fs.split("val"), args.eval_limit, args.seed),
            cap(fs.split("test"), args.eval_limit, args.seed + 1))


def muxspace_splits(args: argparse.Namespace, size: int = 48) -> tuple[FaceSet, FaceSet, FaceSet]:
    """The muxspace setting: labels cleaned (contempt -> disgust), neutral/happy capped at 500, seeded 60/20/20.

    ``size`` is the side the faces are stored at (224 for the 224x224 nets, so they are not upsampled from 48).
    In smoke mode the tiny FER-2013 copy stands in and is re-split the same way.
    """
    if args.smoke:
        fs = stratified_split(load_fer(args), (0.6, 0.2, 0.2), ("train", "val", "test"), args.seed)
    else:
        fs = load_dataset(args.muxspace, cap_per_class=MUX_CAPS, split=(0.6, 0.2, 0.2), seed=args.seed, size=size,
                          progress=not args.no_progress)
        if fs.failures:
            print(fs.failure_summary(), file=sys.stderr)
    return (cap(fs.split("train"), args.limit, args.seed), cap(fs.split("val"), args.eval_limit, args.seed),
            cap(fs.split("test"), args.eval_limit, args.seed + 1))


# -------------------------------------------------------------------------------------- train / evaluate


def make_config(args: argparse.Namespace, recipe: dict[str, Any], run_dir: Path) -> TrainConfig:
    """A TrainConfig from a recipe dict plus the command-line overrides (epochs, batch size, seed, smoke)."""
    d = json.loads(json.dumps(recipe))  # deep copy
    d["epochs"] = args.epochs or d.get("epochs", 30)  # --epochs 0: the recipe's own count
    if args.batch_size:
        d["batch_size"] = args.batch_size
    d["seed"] = args.seed
    d["threads"] = args.threads
    d["device"] = args.device
    d["time_limit_s"] = args.time_limit
    d["out_dir"] = str(run_dir)
    if args.fp32:
        d["bf16"] = False
    if args.smoke:
        d["model_kwargs"] = {**d.get("model_kwargs", {}), **SMOKE_MODEL_KWARGS.get(d["model"], {})}
    return TrainConfig.from_dict(d)


def evaluate(model: torch.nn.Module, meta: dict[str, Any], faces: FaceSet, tta: str = "none") -> dict[str, Any]:
    """Metrics of a model on a face set (classes must match the model's)."""
    if list(faces.classes) != list(meta["classes"]):
        raise ValueError(f"model classes {meta['classes']} differ from the data's {list(faces.classes)}")
    probs = predict_proba(model, faces.images, tta=tta, input_size=meta["input_size"], in_chans=meta["in_chans"])
    return classification_metrics(faces.labels, probs.argmax(1), faces.classes)


def train_and_test(args: argparse.Namespace, cfg: TrainConfig, train_set: FaceSet, val_set: FaceSet,
                   test_set: FaceSet, init_weights: str | Path | None = None) -> dict[str, Any] | None:
    """Train (best epoch chosen on ``val_set``), then score ``best.pt`` on ``test_set`` without and with flip TTA.

    ``--train-only`` stops after training (returns None); ``--trained`` scores a run folder trained earlier.
    """
    out = Path(cfg.out_dir)
    if args.trained and (out / "best.pt").exists() and (out / "history.json").exists():
        history = json.loads((out / "history.json").read_text())
        best = best_epoch(history)
        summary = {"best_acc": best.get("val_acc"), "best_epoch": best["epoch"], "epochs_run": len(history),
                   "elapsed_s": history[-1]["elapsed_s"], "out_dir": str(out)}
        train_s = history[-1]["elapsed_s"]
        print(f"[{cfg.model}] scoring the run trained earlier in {out} ({len(history)} epochs)", flush=True)
    else:
        print(f"[{cfg.model}] {len(train_set)} train / {len(val_set)} val / {len(test_set)} test faces, "
              f"{cfg.epochs} epochs -> {cfg.out_dir}", flush=True)
        if init_weights is not None:
            cfg.init_weights = str(init_weights)
        t0 = time.time()
        summary = train(cfg, train_set, val_set, resume=args.resume, progress=not args.no_progress).to_dict()
        # With --resume the time is the whole run's, as its history logs it; a fresh run's is this call's.
        train_s = summary["elapsed_s"] if args.resume else time.time() - t0
        if args.train_only:
            print(f"[{cfg.model}] trained in {train_s / 60:.1f} min: {summary}", flush=True)
            return None
        history = json.loads((out / "history.json").read_text())
    model, meta = load_model(out / "best.pt")
    m = evaluate(model, meta, test_set)
    flip = evaluate(model, meta, test_set, "flip")
    print(f"[{cfg.model}] test accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, "
          f"flip TTA {flip['accuracy']:.4f}; {train_s / 60:.1f} min", flush=True)
    return {"metrics": m, "flip": flip, "summary": summary, "train_s": train_s, "history": history}


def row(args: argparse.Namespace, experiment: str, dataset: str, setting: str, model: str, result: dict[str, Any],
        params: dict[str, Any], notes: str = "") -> ResultRow:
    """A results row from :func:`train_and_test` output (flip-TTA accuracy and best epoch kept in ``extra``).

    A run trained here on a GPU names it in ``params``, so its row and a CPU run of the same recipe are two rows
    (their outcomes can differ: other kernels, other dropout masks), not one replacing the other."""
    extra: dict[str, Any] = {}
    if not args.trained and "summary" in result:
        device = resolve_device(args.device)
        if device.type == "cuda":
            params = {**params, "device": torch.cuda.get_device_name(device)}
    stopped = ""
    if "flip" in result:
        extra["flip_tta_accuracy"] = result["flip"]["accuracy"]
    if "summary" in result:
        summary = result["summary"]
        extra.update(best_epoch=summary["best_epoch"], epochs_run=summary["epochs_run"])
        planned = params.get("epochs")
        if planned and summary["epochs_run"] < planned:
            why = f" ({summary['stopped']})" if summary.get("stopped") else ""
            stopped = f"stopped after {summary['epochs_run']} of {planned} epochs{why}"
        if summary.get("resumed_at"):
            stopped = "; ".join(t for t in (stopped, f"resumed at epoch {summary['resumed_at']}") if t)
    reduced = ""
    if args.limit or args.eval_limit:
        extra.update(limit=args.limit, eval_limit=args.eval_limit)
        reduced = "reduced run: " + ", ".join(
            t for t in (f"at most {args.limit} training faces per class" if args.limit else "",
                        f"at most {args.eval_limit} evaluation faces per class" if args.eval_limit else "") if t)
    return ResultRow.from_metrics(experiment, dataset, setting, model, result["metrics"], params=params,
                                  train_time_s=result.get("train_s"), command=current_command(),
                                  notes="; ".join(t for t in ("smoke run" if args.smoke else "", reduced, stopped,
                                                              notes, args.note) if t),
                                  extra=extra)


def write_report(figures: Path, stem: str, histories: dict[str, list[dict]], title: str, command: str,
                 table: list[str]) -> Path:
    """``<stem>.png`` (the curves of every run) and ``<stem>.md`` (the command, then ``table``'s markdown lines)
    in ``figures``; prints the table. The study scripts' reports (optimizers, ablations) share this."""
    from emoscope.plots import plot_curves

    fig = plot_curves(histories, figures / f"{stem}.png", title=title)
    lines = [f"Command: `{command}`", "", *table]
    (figures / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"figure: {fig}")
    return fig


def save_rows(args: argparse.Namespace, rows: list[ResultRow]) -> None:
    path = record(rows, args.results, markdown_path(args.results))
    print(f"{len(rows)} row(s) -> {path} and {markdown_path(args.results)}")


def recipe_params(cfg: TrainConfig, keys: tuple[str, ...] = ("optimizer", "lr", "batch_size", "epochs", "schedule",
                                                                "weight_decay", "augment")) -> dict[str, Any]:
    """The recipe knobs shown in the results table."""
    d = asdict(cfg)
    out = {k: d[k] for k in keys}
    if not cfg.bf16:  # a float32 run is another row than the bf16 run of the same recipe
        out["bf16"] = False
    if cfg.model_kwargs:
        out.update(cfg.model_kwargs)
    return out


def weights_label(path: str | Path) -> str:
    """``name.pt (sha256 0123456789ab)``: which weights a row used, by content, since a shipped file keeps its name
    when a new model replaces it."""
    path = Path(path)
    return f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()[:12]})"


def input_size(name: str) -> int:
    return model_info(name).input_size
