"""DDP on this machine: the same recipe trained by 1 and by 2 processes (torchrun, gloo on the CPU).

Writes ``benchmarks/SCALE_DDP.md``: training samples/s (the training passes after the first, validation left
out), seconds per epoch with validation, and the validation accuracy after the same epochs. The data is a seeded
subset of FER-2013 (``--per-class`` Training faces and ``--val-per-class`` PublicTest faces per class), read once
here and handed to the workers as an ``.npz`` file; the model is the small ``emovgg_t`` with the fast recipe's
options (no teacher). A setting ``PxT`` is P processes of T threads each: 1x2 (one process on both cores), 1x1 (one
process, one thread) and 2x1 (two processes of one thread: the same cores as 1x2) by default.

    python benchmarks/ddp_scale.py                       # writes benchmarks/SCALE_DDP.md
    python benchmarks/ddp_scale.py --per-class 100 --epochs 1 --report /tmp/ddp.md   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FER = REPO.parent / "shared" / "datasets" / "fer2013"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fer", type=Path, default=FER, help="FER-2013 image folder")
    p.add_argument("--per-class", type=int, default=400, help="Training faces per class (seeded)")
    p.add_argument("--val-per-class", type=int, default=100, help="PublicTest faces per class (seeded)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=128, help="the global batch, whatever the process count")
    p.add_argument("--settings", nargs="+", default=["1x2", "1x1", "2x1"],
                   help="PxT: P processes of T threads each, in this order")
    p.add_argument("--threads-each", type=int, default=1, help=argparse.SUPPRESS)  # internal: a worker's threads
    p.add_argument("--report", type=Path, default=HERE / "SCALE_DDP.md")
    p.add_argument("--worker", type=Path, help=argparse.SUPPRESS)  # internal: run one rank on this .npz
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def subset(args: argparse.Namespace, path: Path) -> tuple[int, int]:
    """Write the seeded Training / PublicTest subset to ``path`` (.npz); (training faces, validation faces)."""
    from emoscope.classic import sample_per_class
    from emoscope.datasets import load_dataset

    fs = load_dataset(args.fer, progress=False)
    parts = {}
    for name, split, n in (("train", "training", args.per_class), ("val", "publictest", args.val_per_class)):
        s = fs.split(split)
        s = s.subset(np.sort(sample_per_class(s, n, 0)))
        parts[f"{name}_images"], parts[f"{name}_labels"] = s.images, s.labels
    np.savez(path, **parts)
    return len(parts["train_labels"]), len(parts["val_labels"])


def worker(args: argparse.Namespace) -> None:
    """One rank of one setting: train, timing each training pass; rank 0 writes ``result.json``."""
    import torch

    from emoscope import training
    from emoscope.datasets.faceset import FaceSet
    from emoscope.training import TrainConfig

    data = np.load(args.worker)
    sets = {k: FaceSet(data[f"{k}_images"], data[f"{k}_labels"], [k] * len(data[f"{k}_labels"]),
                       [f"{k}{i}" for i in range(len(data[f"{k}_labels"]))]) for k in ("train", "val")}
    world = int(os.environ.get("WORLD_SIZE", "1"))
    times: list[float] = []
    real_epoch = training.train_one_epoch

    def timed(run, epoch, progress=True):
        t0 = time.perf_counter()
        stats = real_epoch(run, epoch, progress)
        times.append(time.perf_counter() - t0)
        return stats

    training.train_one_epoch = timed
    recipe = json.loads((REPO / "configs" / "fast.json").read_text())
    recipe.update(epochs=args.epochs, batch_size=args.batch_size, teacher=None, threads=args.threads_each,
                  out_dir=str(args.out), device="cpu")
    result = training.train(TrainConfig.from_dict(recipe), sets["train"], sets["val"], progress=False)
    if int(os.environ.get("RANK", "0")) == 0:
        n, steady = len(sets["train"]), times[1:] or times
        (args.out / "result.json").write_text(json.dumps({
            "processes": world, "threads_each": recipe["threads"], "train_faces": n, "epoch_train_s": times,
            # steady state: the first pass also pays one-off costs (kernel selection, the first allocations)
            "samples_per_s": n * len(steady) / sum(steady), "elapsed_s": result.elapsed_s,
            "val_acc": [row["val_acc"] for row in result.history], "best_acc": result.best_acc,
            "torch": torch.__version__,
        }))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: argparse.Namespace, data: Path, out: Path, processes: int, threads: int) -> dict:
    """One setting under torchrun; its rank 0's result."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(processes),
           "--master-port", str(free_port()), __file__, "--worker", str(data), "--out", str(out),
           "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--threads-each", str(threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    subprocess.run(cmd, check=True, env=env)
    return json.loads((out / "result.json").read_text())


def report(args: argparse.Namespace, results: list[dict], sizes: tuple[int, int], load: tuple[float, ...]) -> str:
    base = next((r for r in results if r["processes"] == r["threads_each"] == 1), results[0])["samples_per_s"]
    lines = [
        "# Training on several processes (DDP) on this machine",
        "",
        f"Command: `{shlex.join(['python', 'benchmarks/ddp_scale.py', *sys.argv[1:]])}`",
        "",
        f"- data: FER-2013, a seeded subset: {sizes[0]} Training faces ({args.per_class} per class), {sizes[1]} "
        f"PublicTest faces for validation ({args.val_per_class} per class)",
        f"- recipe: configs/fast.json without its teacher (emovgg_t, SGD, one-cycle, augmentation, bf16), "
        f"{args.epochs} epochs, global batch {args.batch_size}, the same learning rate on every setting",
        f"- machine: {os.cpu_count()} CPU cores; load average when it started: {load[0]:.1f} (other work was "
        "running on the same cores, so every figure here is what was left of them)",
        f"- torch {results[0]['torch']}, gloo; torchrun --nproc-per-node N",
        "",
        "| processes | threads each | training samples/s | vs 1x1 | s per epoch (with validation) | "
        + " | ".join(f"val acc ep {i + 1}" for i in range(args.epochs)) + " |",
        "|---:|---:|---:|---:|---:|" + "---:|" * args.epochs,
    ]
    for r in results:
        lines.append(f"| {r['processes']} | {r['threads_each']} | {r['samples_per_s']:.0f} | "
                     f"{r['samples_per_s'] / base:.2f}x | {r['elapsed_s'] / len(r['val_acc']):.1f} | "
                     + " | ".join(f"{a:.4f}" for a in r["val_acc"]) + " |")
    lines += [
        "",
        "Samples/s counts the training passes alone after the first (the all-reduce of gradients included; "
        "validation on rank 0 and the first pass's one-off costs left out).",
        "",
        "How to read it: 1x2 against 1x1 is the thread effect alone (one process, same work). On cores shared "
        "with other work, a process's two threads wait for each other at every operator whenever one of them is "
        "descheduled, so two threads can be slower than one. 2x1 against 1x1 is what DDP adds: two processes "
        "that each run their half of every batch on one thread and meet once per step for the gradient sum. "
        "On an idle machine the 1x2 row would be the fair single-process baseline; here the cores were shared.",
        "",
        "Accuracy: the recipe (global batch, learning rate, schedule, data order) is the same in every row, but "
        "with two processes each normalises its BatchNorm over its half of the batch and augments its shard from "
        "a generator of its own, so the runs are not bit-identical. 1x1 and 1x2 are the same single-process run "
        "with a different thread count: the gap between their accuracies is how far floating-point summation "
        "order alone moves a run this short, the yardstick for the DDP row's difference.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        worker(args)
        return 0
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "subset.npz"
        sizes = subset(args, data)
        results = []
        for setting in args.settings:
            processes, threads = (int(v) for v in setting.split("x"))
            print(f"training on {processes} process(es) of {threads} thread(s) ...", flush=True)
            results.append(launch(args, data, Path(tmp) / f"run{setting}", processes, threads))
            print(json.dumps(results[-1]), flush=True)
    args.report.write_text(report(args, results, sizes, load))
    print(f"wrote {args.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
