"""Training on two processes (gloo on the CPU), as ``torchrun --nproc-per-node 2 -m emoscope train`` runs it: every
rank ends with the same weights, each trains on its own shard of every batch, one set of checkpoints is written,
and a run stopped and resumed on two processes equals one trained at once."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
import torch.multiprocessing as mp

from emoscope.distributed import Dist
from emoscope.models.checkpoint import read_checkpoint

RUN_FILES = {"config.json", "best.pt", "last.pt", "history.csv", "history.json", "curves.png"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_shards_of_a_batch_are_disjoint_and_cover_it():
    batch = torch.randperm(21)
    parts = [Dist(rank, 2).shard(batch) for rank in range(2)]
    assert sorted(torch.cat(parts).tolist()) == sorted(batch.tolist())
    assert not set(parts[0].tolist()) & set(parts[1].tolist())
    assert torch.equal(Dist().shard(batch), batch)


def steps_of(n: int, batch: int, world: int) -> int:
    from emoscope.training import steps_per_epoch

    return steps_per_epoch(n, batch, world)


def test_a_last_batch_too_small_to_share_is_dropped():
    assert steps_of(42, 16, 1) == 3 and steps_of(33, 16, 1) == 2  # one process: a last batch of one face goes
    assert steps_of(42, 16, 2) == 3 and steps_of(35, 16, 2) == 2  # two: fewer than two faces per rank goes


def worker(rank: int, world: int, port: int, out: str) -> None:
    """One rank: a whole run, then the same run stopped after an epoch and resumed; writes what it saw."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from emoscope import training
    from emoscope.distributed import process_group
    from test_training import tiny_cfg, toy_faces

    seen = []
    real_epoch = training.train_one_epoch

    def spy(run, epoch, progress=True):
        stats = real_epoch(run, epoch, progress)
        seen.append((run, stats))
        return stats

    training.train_one_epoch = spy
    faces = toy_faces(6)  # 42 faces: batches of 16, 16 and 10, split 8/8, 8/8 and 5/5
    opts = dict(epochs=2, batch_size=16, augment=True, mixup_alpha=0.2, ema_decay=0.9)
    root = Path(out)
    with process_group("cpu"):
        result = training.train(tiny_cfg(root / "whole", **opts), faces, faces, progress=False)
        run = seen[-1][0]
        params = {k: v.detach().clone() for k, v in run.model.named_parameters()}
        torch.save({"params": params, "samples": [s.samples for _, s in seen], "result": result.to_dict(),
                    "net": type(run.net).__name__}, root / f"rank{rank}.pt")
        parts = tiny_cfg(root / "parts", **opts)
        training.train(parts, faces, faces, progress=False, stop_after=1)
        training.train(parts, faces, faces, progress=False, resume=True)


def test_two_processes_train_one_run_with_one_set_of_checkpoints_and_resume_exactly(tmp_path):
    mp.spawn(worker, args=(2, free_port(), str(tmp_path)), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert ranks[0]["net"] == "DistributedDataParallel"
    for name, value in ranks[0]["params"].items():  # gradients are summed: every rank holds the same weights
        assert torch.equal(value, ranks[1]["params"][name]), name
    assert ranks[0]["samples"] == ranks[1]["samples"] == [42] * 2  # each epoch covers the split once, over ranks
    assert ranks[0]["result"] == ranks[1]["result"] and ranks[0]["result"]["processes"] == 2
    run = tmp_path / "whole" / "run"
    assert {p.name for p in run.iterdir()} == RUN_FILES  # rank 0 alone wrote: no second set, no *.tmp
    last = read_checkpoint(run / "last.pt")
    assert last["world_size"] == 2 and len(last["rng_ranks"]) == 2 and len(last["history"]) == 2
    assert torch.equal(last["model"]["body.0.0.weight"], ranks[0]["params"]["body.0.0.weight"])
    resumed = read_checkpoint(tmp_path / "parts" / "run" / "last.pt")
    for key in ("model", "ema"):
        for name, value in last[key].items():
            assert torch.equal(value, resumed[key][name]), (key, name)
    assert [r["train_loss"] for r in last["history"]] == [r["train_loss"] for r in resumed["history"]]


def test_torchrun_runs_emoscope_train_on_two_processes(fer_folder, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(free_port()),
         "-m", "emoscope", "train", "--data", str(fer_folder), "--model", "emovgg_t", "--epochs", "1",
         "--batch-size", "8", "--set", "bf16=false", "--no-progress", "--json", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])  # rank 0's JSON, once
    assert result["processes"] == 2 and result["epochs_run"] == 1 and result["weights"] == str(out / "best.pt")
    assert proc.stdout.count("training emovgg_t") == 1
    assert {p.name for p in out.iterdir()} == RUN_FILES | {"command.txt"}
    assert read_checkpoint(out / "last.pt")["world_size"] == 2
