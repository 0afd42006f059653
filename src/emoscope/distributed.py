"""Training on several processes: ``torchrun --nproc-per-node N -m emoscope train ...``.

torchrun starts N copies of the command and tells each its place in the environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). :func:`process_group` joins them into one PyTorch process group
(gloo on CPUs, nccl on GPUs); :class:`Dist` says which copy this is and carries the few collective steps the
training loop needs: a rank's shard of a global batch, a sum over ranks, rank 0's decisions handed to all.
A lone process (no torchrun) gets ``Dist()``: rank 0 of 1, and every method is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as tdist

T = TypeVar("T")


@dataclass(frozen=True)
class Dist:
    """This process's place among the processes of one run (rank 0 of 1 when there is no process group)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that validates, prints and writes files."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's part of a global batch of indices: every ``world``-th from ``rank`` (DistributedSampler's
        rule, applied to one batch). Over the ranks the parts are disjoint and together the whole batch."""
        return batch[self.rank :: self.world] if self.active else batch

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        """The sum of ``t`` over all ranks (in place; returned)."""
        if self.active:
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def from_main(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank (a picklable value: a history row, a plan)."""
        if not self.active:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world
        tdist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()


def current() -> Dist:
    """The place of this process in the process group it has joined (``Dist()`` when it has joined none)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return Dist()
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


@contextmanager
def process_group(device_type: str) -> Iterator[Dist]:
    """Join the process group torchrun describes in the environment, for the length of the block.

    Nothing happens for a lone process (``WORLD_SIZE`` unset or 1) or when a group is already joined (the caller
    that joined it leaves it). The backend is nccl for ``device_type`` cuda (each process on GPU ``LOCAL_RANK``),
    gloo otherwise.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or tdist.is_initialized():
        yield current()
        return
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local)
    tdist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    try:
        yield current()
    finally:
        tdist.destroy_process_group()
