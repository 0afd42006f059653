"""Train flagship candidates side by side on one CUDA GPU within a fixed time budget.

A GPU session here is short (minutes of device time, one command of at most 10 minutes), so this
script makes the most of one command:

1. ``pack`` (on the CPU machine): the FER-2013 Training and PublicTest JPEG files, byte for byte
   as the dataset ships them, in one ``.npz`` that travels with the command. PrivateTest is
   left out on purpose: the candidates' GPU never sees the test split. (``--splits`` adds it for
   benchmark scripts that test on the device, see ``gpu_reproduce.py``; ``.npz.xz`` packs smaller.)
2. ``run`` (on the GPU machine): unpack to a temporary folder, read it with emoscope's own folder
   reader and check the decoded pixels against the checksum taken at packing time; then start one
   process per candidate config. Each process times a few real training steps, picks the number of
   epochs that fits before the deadline (one-cycle needs it up front), writes the resolved config,
   and trains with PublicTest as the selection split. At the deadline the parent stops what is
   still running and copies each candidate's ``best.pt`` and ``history.csv`` plus ``summary.json``
   to ``--out``.

Which candidate ships is decided on PublicTest alone, by the rule written here before any run:
the highest best-epoch PublicTest accuracy wins, except that a wider model (``emovgg_l``) must beat
the best ``emovgg_m`` run by at least 0.5 points, because it costs ~1.8x the CPU time per face (a narrower one,
``emovgg_s``, needs no margin).
PrivateTest is evaluated afterwards on the CPU machine, once, for the chosen model.

    python benchmarks/gpu_flagship.py pack --data ../shared/datasets/fer2013 --out .gpu_data/fer2013_trainval.npz
    python benchmarks/gpu_flagship.py run --data .gpu_data/fer2013_trainval.npz --budget-s 480 --out OUT --configs \\
        configs/experiments/flagship_v3.json,configs/experiments/flagship_v3_l.json,configs/flagship_v3_reg.json
    python benchmarks/gpu_flagship.py score --runs runs/gpu        # back here: PublicTest and PrivateTest

``run --fixed-epochs --seeds 0,1`` trains recipes sized for another machine (the 2-hour CPU configs) at their own
epoch counts, once per seed (``benchmarks/FLAGSHIP_CPU.md``).

``unpack`` writes a packed file back as an image folder (for other scripts on the GPU machine, e.g.
``reproduce.py --train-only``). The device session that shipped v3 is described in ``benchmarks/FLAGSHIP_V3.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import lzma
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from emoscope.datasets import FaceSet
    from emoscope.training import TrainConfig

REPO = Path(__file__).resolve().parent.parent
SPLITS = ("training", "publictest")
WIDE_MARGIN = 0.005  # a wider candidate must beat the best emovgg_m run on PublicTest by this much
WIDER = ("emovgg_l",)  # the candidates that cost more CPU time per face than emovgg_m


def images_digest(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def cmd_pack(args: argparse.Namespace) -> int:
    from emoscope.datasets import load_dataset

    root = Path(args.data)
    fs = load_dataset(root)
    names, blobs, digests = [], [], {}
    for split in args.splits.split(","):
        part = fs.split(split)
        digests[split] = images_digest(part.images)
        for src in part.sources:
            names.append(str(src))
            blobs.append(np.frombuffer((root / src).read_bytes(), np.uint8))
    offsets = np.cumsum([0] + [len(b) for b in blobs])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"names": np.array(names), "offsets": offsets, "blob": np.concatenate(blobs),
              "digests": np.array(json.dumps(digests))}
    if out.suffix == ".xz":  # lzma shares the JPEG headers across files: 6 % smaller than zip on FER-2013
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        out.write_bytes(lzma.compress(buf.getvalue(), preset=9 | lzma.PRESET_EXTREME))
    else:
        np.savez_compressed(out, **arrays)
    print(f"packed {len(names)} files ({offsets[-1] / 1e6:.1f} MB of JPEG) into {out} "
          f"({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def unpack(path: Path, dest: Path) -> dict[str, str]:
    """Write the packed files back as a folder dataset; returns the expected pixel digests per split."""
    source = io.BytesIO(lzma.decompress(path.read_bytes())) if path.suffix == ".xz" else path
    with np.load(source) as z:
        names, offsets, blob = z["names"], z["offsets"], z["blob"]
        digests = json.loads(str(z["digests"]))
    for i, name in enumerate(names):
        f = dest / str(name)
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(blob[offsets[i] : offsets[i + 1]].tobytes())
    return digests


def unpack_and_check(path: Path) -> Path:
    """Unpack into a temporary folder, read it with emoscope's reader (which fills the cache the runs read) and
    print, per split, whether the decoded pixels match the packing machine's. Returns the folder."""
    from emoscope.datasets import load_dataset

    folder = Path(tempfile.mkdtemp(prefix="fer2013_"))
    expected = unpack(path, folder)
    fs = load_dataset(folder)
    for split, digest in expected.items():
        part = fs.split(split)
        same = images_digest(part.images) == digest
        print(f"{split}: {len(part)} faces, pixels {'identical to' if same else 'DIFFER from'} "
              "the packing machine's decode", flush=True)
    return folder


def wait_then_stop(procs: dict[str, subprocess.Popen], deadline: float, term_wait_s: float = 10.0) -> list[str]:
    """Wait until every process has ended or ``deadline`` (epoch seconds) passes, then stop the rest.

    The ones still running get SIGTERM to their process group, all at once, then SIGKILL after ``term_wait_s``
    in all. Returns the names of the stopped ones.
    """
    while any(p.poll() is None for p in procs.values()) and time.time() < deadline:
        time.sleep(2)
    stopped = [name for name, p in procs.items() if p.poll() is None]
    for name in stopped:
        print(f"{name}: still running at the deadline; stopped", flush=True)
        os.killpg(procs[name].pid, signal.SIGTERM)
    until = time.time() + term_wait_s
    for name in stopped:
        try:
            procs[name].wait(max(0.0, until - time.time()))
        except subprocess.TimeoutExpired:
            os.killpg(procs[name].pid, signal.SIGKILL)
            procs[name].wait()
    return stopped


def read_plan(run: Path) -> dict:
    """``plan.json`` that :func:`cmd_child` wrote into a run folder (device, PyTorch version, epochs), else {}."""
    return json.loads((run / "plan.json").read_text()) if (run / "plan.json").exists() else {}


def cmd_run(args: argparse.Namespace) -> int:
    from emoscope.datasets import load_dataset
    from emoscope.training import best_epoch

    t0 = time.time()
    deadline = t0 + args.budget_s
    data = Path(args.data)
    if data.suffix in (".npz", ".xz"):
        data = unpack_and_check(data)
    else:
        load_dataset(data)
    print(f"data ready in {time.time() - t0:.0f} s", flush=True)

    runs = Path(args.runs)
    children = {}
    for cfg_path, seed in ((c, s) for c in args.configs.split(",") for s in args.seeds):
        name = Path(cfg_path).stem + (f"_seed{seed}" if seed is not None else "")
        run_dir = runs / name
        run_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, __file__, "child", "--data", str(data), "--config", cfg_path,
               "--run-dir", str(run_dir), "--deadline", str(deadline), "--max-epochs", str(args.max_epochs),
               "--device", args.device] + (["--smoke"] if args.smoke else []) + \
            (["--fixed-epochs"] if args.fixed_epochs else []) + (["--seed", str(seed)] if seed is not None else [])
        with open(run_dir / "train.log", "w") as log:  # the child keeps its own copy of the file handle
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        children[name] = (proc, run_dir)
    wait_then_stop({name: p for name, (p, _) in children.items()}, deadline + args.grace_s)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"budget_s": args.budget_s, "wall_s": round(time.time() - t0, 1), "candidates": {}}
    for name, (p, run_dir) in children.items():
        info = read_plan(run_dir)
        hist = json.loads((run_dir / "history.json").read_text()) if (run_dir / "history.json").exists() else []
        best = best_epoch(hist) if hist else {}
        info.update(returncode=p.returncode, epochs_done=len(hist), best_epoch=best.get("epoch"),
                    best_publictest_acc=best.get("val_acc"), best_publictest_macro_f1=best.get("val_macro_f1"),
                    elapsed_s=hist[-1]["elapsed_s"] if hist else None,
                    log_tail=(run_dir / "train.log").read_text().splitlines()[-15:])
        summary["candidates"][name] = info
        (out / name).mkdir(exist_ok=True)
        if (run_dir / "history.csv").exists():
            shutil.copy2(run_dir / "history.csv", out / name / "history.csv")
        if (run_dir / "best.pt").exists():
            copy_weights(run_dir / "best.pt", out / name / "best.pt")
    summary["chosen"] = choose(summary["candidates"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for name, c in summary["candidates"].items():
        print(f"{name}: {c.get('model')} {c['epochs_done']}/{c.get('epochs')} epochs, best PublicTest "
              f"{c['best_publictest_acc']} at epoch {c['best_epoch']}, rc {c['returncode']}")
    print(f"chosen by the PublicTest rule: {summary['chosen']}; wall {summary['wall_s']} s")
    return 0


def copy_weights(src: Path, dest: Path, limit: int = 15_000_000) -> None:
    """Copy a checkpoint; one over ``limit`` bytes (what a device session hands back per file) goes as fp16."""
    if src.stat().st_size <= limit:
        shutil.copy2(src, dest)
        return
    import torch

    from emoscope.models.checkpoint import half_precision

    ck = torch.load(src, map_location="cpu", weights_only=True)
    ck["model"] = half_precision(ck["model"])
    torch.save(ck, dest)
    print(f"{src}: {src.stat().st_size / 1e6:.1f} MB, copied as fp16 ({dest.stat().st_size / 1e6:.1f} MB)")


def choose(candidates: dict[str, dict]) -> str | None:
    """The shipping rule (see the module docstring), applied to finished runs only."""
    done = {n: c for n, c in candidates.items() if c.get("best_publictest_acc") is not None
            and c.get("epochs_done") == c.get("epochs")}
    if not done:
        return None
    best = max(done, key=lambda n: done[n]["best_publictest_acc"])
    m_runs = [n for n, c in done.items() if c.get("model") == "emovgg_m"]
    if done[best].get("model") in WIDER and m_runs:
        best_m = max(m_runs, key=lambda n: done[n]["best_publictest_acc"])
        if done[best]["best_publictest_acc"] - done[best_m]["best_publictest_acc"] < WIDE_MARGIN:
            return best_m
    return best


def cmd_child(args: argparse.Namespace) -> int:
    import torch

    from emoscope.budget import plan_epochs
    from emoscope.datasets import load_dataset
    from emoscope.training import TrainConfig

    fs = load_dataset(args.data, progress=False)
    train_set, val_set = fs.split("training"), fs.split("publictest")
    if args.smoke:  # a seconds-long check of the whole flow (any device): a few hundred faces
        rng = np.random.default_rng(0)
        train_set = train_set.subset(rng.choice(len(train_set), 512, replace=False))
        val_set = val_set.subset(rng.choice(len(val_set), 256, replace=False))
    cfg_dict = json.loads(Path(args.config).read_text())
    cfg_dict.update(device=args.device, out_dir=str(args.run_dir))
    if args.seed is not None:
        cfg_dict["seed"] = args.seed
    cfg = TrainConfig.from_dict(cfg_dict)
    torch.backends.cudnn.benchmark = True
    if args.fixed_epochs:  # the config's own epochs (a recipe sized for another machine), no calibration
        return train_planned(args, cfg, train_set, val_set, min(cfg.epochs, args.max_epochs), {"calibration_s": 0.0})

    # Plan the epochs that fit before the deadline from a few timed epochs on a slice (emoscope.budget). Margin
    # 1.15: runs sharing a GPU can run slower than their calibration said (one was stopped 2 epochs short in the
    # v3 session).
    plan = plan_epochs(cfg, train_set, val_set, budget_s=args.deadline - time.time() - 10,
                       max_epochs=args.max_epochs, faces=(2 if args.smoke else 40) * cfg.batch_size, margin=1.15)
    return train_planned(args, cfg, train_set, val_set, plan.epochs,
                         {"calibration_s": round(plan.calibration_s, 1), "estimated_epoch_s": round(plan.epoch_s, 2)})


def train_planned(args: argparse.Namespace, cfg: TrainConfig, train_set: FaceSet, val_set: FaceSet, epochs: int,
                  timing: dict) -> int:
    """Write ``plan.json`` and ``command.txt`` (the command that reproduces the run), then train ``epochs``."""
    import torch

    from emoscope.training import train

    seed = f" --seed {args.seed}" if args.seed is not None else ""
    command = (f"emoscope train --config {args.config} --epochs {epochs} --device {args.device}{seed} "
               f"--data ../shared/datasets/fer2013 --train-split training --val-split publictest --out {args.run_dir}")
    plan = {"model": cfg.model, "config": args.config, "seed": cfg.seed, "epochs": epochs, **timing,
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
            "torch": torch.__version__, "command": command}
    (Path(args.run_dir) / "plan.json").write_text(json.dumps(plan, indent=2))
    print(json.dumps(plan), flush=True)
    cfg = dataclasses.replace(cfg, epochs=epochs)
    (Path(args.run_dir) / "command.txt").write_text(command + "\n")
    summary = train(cfg, train_set, val_set, progress=False)
    print(json.dumps(summary.to_dict()), flush=True)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    """PublicTest and PrivateTest (fp32, no TTA) of every candidate's best.pt, after the choice was made."""
    from emoscope.datasets import load_dataset
    from emoscope.evaluation import evaluate_model
    from emoscope.models.checkpoint import load_model

    fs = load_dataset(args.data, progress=False)
    scores = {}
    for best in sorted(Path(args.runs).glob("*/best.pt")):
        model, meta = load_model(best)
        scores[best.parent.name] = {
            split: {k: evaluate_model(model, fs.split(split), meta, tta=("none",))["modes"]["none"][k]
                    for k in ("accuracy", "macro_f1")} for split in ("PublicTest", "PrivateTest")}
        print(best.parent.name, json.dumps(scores[best.parent.name]), flush=True)
    (Path(args.runs) / "scores.json").write_text(json.dumps(scores, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="pack FER-2013 JPEGs (Training + PublicTest unless --splits) into one file")
    a.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "fer2013"))
    a.add_argument("--out", default=".gpu_data/fer2013_trainval.npz", help="a .npz, or .npz.xz (lzma, smaller)")
    a.add_argument("--splits", default=",".join(SPLITS),
                   help="FER-2013 splits to pack (add privatetest only for scripts that test there, e.g. fer6)")
    a.set_defaults(func=cmd_pack)
    u = sub.add_parser("unpack", help="write a packed .npz back as a FER-2013 image folder")
    u.add_argument("--data", required=True)
    u.add_argument("--dest", required=True)
    u.set_defaults(func=lambda a: print(f"unpacked into {a.dest}: {unpack(Path(a.data), Path(a.dest))}") or 0)
    r = sub.add_parser("run", help="train every candidate config side by side until the budget is spent")
    r.add_argument("--data", required=True, help="packed .npz or a FER-2013 folder")
    r.add_argument("--configs", required=True, help="comma-separated TrainConfig JSON files")
    r.add_argument("--budget-s", type=float, default=440, dest="budget_s")
    r.add_argument("--grace-s", type=float, default=25, dest="grace_s")
    r.add_argument("--max-epochs", type=int, default=300, dest="max_epochs")
    r.add_argument("--device", default="cuda")
    r.add_argument("--runs", default="runs/gpu")
    r.add_argument("--out", required=True)
    r.add_argument("--smoke", action="store_true", help="train on a few hundred faces (checks the flow)")
    r.add_argument("--fixed-epochs", action="store_true", dest="fixed_epochs",
                   help="train each config's own epochs instead of fitting them to the budget (e.g. recipes sized for "
                        "the 2-hour CPU run); a run the deadline stops does not count")
    r.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",")], default=[None],
                   help="comma list of seeds: one run per config and seed, named <config>_seed<N> "
                        "(default: one run per config, its own seed)")
    r.set_defaults(func=cmd_run)
    s = sub.add_parser("score", help="score every candidate on PublicTest and PrivateTest (after choosing)")
    s.add_argument("--runs", default="runs/gpu")
    s.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "fer2013"))
    s.set_defaults(func=cmd_score)
    c = sub.add_parser("child", help=argparse.SUPPRESS)
    c.add_argument("--data", required=True)
    c.add_argument("--config", required=True)
    c.add_argument("--run-dir", required=True, dest="run_dir")
    c.add_argument("--deadline", type=float, required=True)
    c.add_argument("--max-epochs", type=int, default=300, dest="max_epochs")
    c.add_argument("--device", default="cuda")
    c.add_argument("--smoke", action="store_true")
    c.add_argument("--fixed-epochs", action="store_true", dest="fixed_epochs")
    c.add_argument("--seed", type=int)
    c.set_defaults(func=cmd_child)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
