"""Run the issue-5 training experiments side by side on one CUDA GPU, then merge their rows here.

A device session is one command of at most 10 minutes, so every run of the reference experiments starts at once,
one process each, under a per-run training time limit (``--time-limit``: a run stops before an epoch that would
pass it, and its row says so). Each process trains *and* tests on the device, because the trained weights
(about 200 MB even in fp16) are more than a session hands back; what comes back is every run's row store,
history and log in one ``runs.tar.gz``.

1. here: ``python benchmarks/gpu_flagship.py pack --splits training,publictest,privatetest
   --out .gpu_data/fer2013_all.npz.xz`` (fer6 re-splits all 35,887 faces, so PrivateTest travels too);
2. on the device: ``python benchmarks/gpu_reproduce.py run --data .gpu_data/fer2013_all.npz.xz --out $OUT``
   (the ``xfer_`` runs, muxspace -> FER-2013 transfer, also need a muxspace-trained model at ``--mux-weights``, e.g.
   ``cp runs/benchmarks/transfer/emovgg_m_scratch/best.pt .gpu_data/muxspace_emovgg_m.pt``);
3. here: ``python benchmarks/gpu_reproduce.py merge --tar OUT/runs.tar.gz --note "..."``: the rows go into
   ``benchmarks/results.json`` (and RESULTS.md), the optimizer and ablation figures are redrawn from the histories.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from emoscope.durations import duration_arg

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


#: Where ``run`` finds the muxspace-trained model of the muxspace -> FER-2013 transfer runs (it travels in .gpu_data).
MUX_WEIGHTS = ".gpu_data/muxspace_emovgg_m.pt"


def jobs(epochs_override: int | None = None, mux_weights: str = MUX_WEIGHTS) -> dict[str, list[str]]:
    """One command line (script + its own arguments) per run, keyed by a short name."""
    from reproduce import EXPERIMENTS

    out: dict[str, list[str]] = {}
    for exp in ("fer7", "fer6"):
        for m in EXPERIMENTS[exp]:
            out[f"{exp}_{m}"] = ["reproduce.py", "--experiment", exp, "--models", m]
    for opt in ("sgd_momentum", "adam", "rmsprop"):
        out[f"opt_{opt}"] = ["optimizers.py", "--optimizers", opt, "--epochs", "30"]
    for v in ("none", "dropout", "l2", "augmentation", "early_stopping", "all"):
        out[f"abl_{v}"] = ["ablations.py", "--variants", v, "--epochs", "30"]
    # the other way round of transfer.py's default: a muxspace model fine-tuned on FER-2013, against scratch
    xfer = ["transfer.py", "--direction", "muxspace-to-fer", "--weights", mux_weights, "--epochs", "20"]
    out["xfer_m2f_finetune"] = [*xfer, "--starts", "none,finetune", "--finetune-lr", "0.01"]
    out["xfer_m2f_finetune_hi"] = [*xfer, "--starts", "finetune", "--finetune-lr", "0.05"]
    out["xfer_m2f_scratch"] = [*xfer, "--starts", "scratch", "--scratch-lr", "0.05"]
    if epochs_override:
        for argv in out.values():
            if "--epochs" in argv:
                argv[argv.index("--epochs") + 1] = str(epochs_override)
            else:
                argv += ["--epochs", str(epochs_override)]
    return out


def cmd_run(args: argparse.Namespace) -> int:
    from gpu_flagship import unpack_and_check, wait_then_stop

    from emoscope.datasets import load_dataset

    t0 = time.time()
    runs, out = Path(args.runs), Path(args.out)
    (runs / "results").mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    folder = unpack_and_check(Path(args.data))
    load_dataset(folder, scheme="fer6")  # the fer6 runs' cache too
    print(f"data ready in {time.time() - t0:.0f} s", flush=True)

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = {}
    chosen = {n: argv for n, argv in jobs(args.epochs, args.mux_weights).items()
              if not args.only or n.startswith(tuple(args.only))}
    for name, (script, *rest) in chosen.items():
        cmd = [sys.executable, str(HERE / script), *rest, "--fer", str(folder), "--device", args.device,
               "--threads", str(args.threads), "--no-progress", "--time-limit", str(args.time_limit),
               "--out", str(runs / name), "--results", str(runs / "results" / f"{name}.json"),
               "--figures", str(runs / name / "figures"), *args.extra.split()]
        with open(runs / f"{name}.log", "w") as log:
            procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                                           start_new_session=True)
    deadline = time.time() + args.time_limit + args.grace_s
    if args.budget_s:  # the whole command's limit: stop the runs in time to pack what they wrote
        deadline = min(deadline, t0 + args.budget_s - 15)
    wait_then_stop(procs, deadline, term_wait_s=5)
    summary = {"wall_s": round(time.time() - t0, 1), "time_limit_s": args.time_limit,
               "returncodes": {n: p.returncode for n, p in procs.items()}}
    (runs / "summary.json").write_text(json.dumps(summary, indent=1))
    with tarfile.open(out / "runs.tar.gz", "w:gz") as tar:  # everything but checkpoints
        tar.add(runs, arcname="runs", filter=lambda ti: None if ti.name.endswith((".pt", ".tmp")) else ti)
    for name, rc in summary["returncodes"].items():
        print(f"{name}: rc {rc}; " + " | ".join((runs / f"{name}.log").read_text().splitlines()[-2:]), flush=True)
    print(f"wall {summary['wall_s']} s -> {out / 'runs.tar.gz'}", flush=True)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    import ablations
    import optimizers
    from common import markdown_path

    from emoscope.results import ResultsStore, record

    dest = Path(args.dest)
    with tarfile.open(args.tar) as tar:
        tar.extractall(dest, filter="data")
        # only this archive's runs: ``dest`` may still hold an earlier session's, whose rows were merged (or left
        # out) then and must not come back over rows recorded since
        in_tar = sorted(Path(n).stem for n in tar.getnames()
                        if Path(n).parent == Path("runs/results") and n.endswith(".json"))
    runs = dest / "runs"
    by_run: dict[str, list] = {}  # run name -> the rows its process recorded
    skip = tuple(t for t in args.exclude.split(",") if t)
    for f in (runs / "results" / f"{name}.json" for name in in_tar):
        if skip and f.stem.startswith(skip):
            print(f"{f.stem}: left out (--exclude)")
            continue
        by_run[f.stem] = ResultsStore(f).rows
        for r in by_run[f.stem]:
            r.notes = "; ".join(t for t in (r.notes, args.note) if t)
    rows = [r for rs in by_run.values() for r in rs]
    if rows:
        record(rows, args.results, markdown_path(args.results), drop_cut_short=args.drop_cut_short)
    print(f"{len(rows)} row(s) merged into {args.results}")
    figures = Path(args.figures)
    for prefix, module in (("opt_", optimizers), ("abl_", ablations)):
        histories, chosen = {}, []
        for name in sorted(n for n in by_run if n.startswith(prefix) and by_run[n]):
            hist = next((runs / name).glob("*/history.json"), None)
            if hist is not None:
                histories[name[len(prefix):]] = json.loads(hist.read_text())
                chosen.append(by_run[name][0])
        if not histories:
            continue
        command = f"{chosen[0].command} (one run per {'optimiser' if prefix == 'opt_' else 'variant'}; {args.note})"
        module.report(histories, chosen, figures, chosen[0].model, command)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="on the GPU machine: every run side by side, then runs.tar.gz into --out")
    r.add_argument("--data", required=True, help="a pack from gpu_flagship.py pack (all three splits)")
    r.add_argument("--out", required=True)
    r.add_argument("--runs", default="runs/gpu_reproduce")
    r.add_argument("--device", default="cuda")
    r.add_argument("--time-limit", type=duration_arg("s"), default=330, dest="time_limit", metavar="DURATION",
                   help="training time per run (330s, 5.5m; a bare number counts seconds)")
    r.add_argument("--grace-s", type=float, default=150, dest="grace_s", help="for loading and testing")
    r.add_argument("--budget-s", type=float, default=0, dest="budget_s",
                   help="wall seconds for this whole command (unpacking included; give the device call's timeout): "
                        "runs still going 15 s before it are stopped so that runs.tar.gz is still written")
    r.add_argument("--epochs", type=int, help="override every run's epochs (smoke checks)")
    r.add_argument("--only", type=lambda t: t.split(","), default=[], help="comma list of run-name prefixes to run")
    r.add_argument("--threads", type=int, default=1, help="CPU threads per run (testing runs on the CPU)")
    r.add_argument("--mux-weights", default=MUX_WEIGHTS, dest="mux_weights",
                   help="the muxspace-trained model the xfer_ runs fine-tune on FER-2013")
    r.add_argument("--extra", default="", help="more arguments for every script (e.g. '--limit 5')")
    r.set_defaults(func=cmd_run)
    m = sub.add_parser("merge", help="here: rows into the results store, figures redrawn")
    m.add_argument("--tar", required=True)
    m.add_argument("--dest", default="runs/gpu_reproduce_back")
    m.add_argument("--exclude", default="", help="comma list of run-name prefixes whose rows are not merged")
    m.add_argument("--note", default="", help="added to every row (where and how the runs were trained)")
    m.add_argument("--results", default=str(HERE / "results.json"))
    m.add_argument("--drop-cut-short", action="store_true", dest="drop_cut_short",
                   help="remove the time-limited rows of the recipes whose merged run finished (on any device)")
    m.add_argument("--figures", default=str(HERE / "figures"))
    m.set_defaults(func=cmd_merge)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
