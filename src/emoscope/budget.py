"""Fit a training recipe to a wall-clock budget on the machine at hand.

A recipe's epoch count is tuned to one machine: the 2-hour CPU flagship recipes take 140-180 epochs on the
Sapphire Rapids CPU they were written on, and about 1.6 times as long on a 2-core AMD EPYC without AMX. Cutting a
run off at a time limit would stop one-cycle or cosine mid-schedule, before the learning rate has annealed and
before the whole-face epochs that close a crop recipe. So ``plan_epochs`` times a few epochs of the real training
loop on a slice of the data, then plans how many epochs of the recipe fit the budget; the schedule is then laid
out over exactly those epochs.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from .datasets.faceset import FaceSet
from .training import TrainConfig, TrainConfigError, train


@dataclass(frozen=True)
class EpochPlan:
    """How many epochs fit the budget, and the timings that say so (all in seconds)."""

    epochs: int
    budget_s: float
    calibration_s: float  # spent timing the loop; part of the budget
    epoch_s: float  # one epoch on whole faces, validation included
    crop_epoch_s: float | None  # one epoch on crops / shrunk faces, when the recipe has them
    full_size_epochs: int  # of ``epochs``, how many are whole-face epochs
    margin: float  # the estimates were multiplied by this before planning

    def epoch_cost(self, epoch: int, epochs: int) -> float:
        """The calibrated seconds of epoch ``epoch`` (0-based) of a run ``epochs`` long: whole-face epochs are the
        last ``full_size_epochs``, as ``train`` runs them, and the rest are crop epochs when the recipe has any."""
        tail = min(self.full_size_epochs, epochs)
        return self.epoch_s if epoch >= epochs - tail or self.crop_epoch_s is None else self.crop_epoch_s

    @property
    def estimated_s(self) -> float:
        """Calibration plus the planned epochs at the measured (unmargined) speed."""
        return self.calibration_s + sum(self.epoch_cost(i, self.epochs) for i in range(self.epochs))

    def to_dict(self) -> dict[str, Any]:
        """The plan as ``plan.json`` keeps it: times rounded to 0.01 s."""
        d = {**asdict(self), "estimated_s": self.estimated_s}
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in d.items()}


def time_epoch(cfg: TrainConfig, train_set: FaceSet, val_set: FaceSet | None, crop: int | None,
               resize: int | None, faces: int) -> float:
    """Seconds of one steady-state epoch over all of ``train_set`` (and ``val_set``): the third of three epochs
    of the real loop on the first ``faces`` faces and the same share of the validation faces, scaled up."""
    n = min(len(train_set), faces)
    share = n / len(train_set)
    n_val = round(len(val_set) * share) if val_set is not None else 0
    with tempfile.TemporaryDirectory() as tmp:
        trial = replace(cfg, epochs=3, train_crop=crop, train_resize=resize, full_size_epochs=0, time_limit_s=0.0,
                        early_stopping=0, out_dir=tmp, soft_targets=None)
        # Soft targets are left out: the slice has no per-face targets here. They add one gather a step; any
        # difference in speed is the replanner's to catch.
        hist = train(trial, train_set.subset(np.arange(n)), val_set.subset(np.arange(n_val)) if n_val else None,
                     progress=False).history
    return (hist[2]["elapsed_s"] - hist[1]["elapsed_s"]) / share


def plan_epochs(cfg: TrainConfig, train_set: FaceSet, val_set: FaceSet | None, budget_s: float,
                max_epochs: int | None = None, faces: int | None = None, margin: float = 1.07) -> EpochPlan:
    """The most epochs of ``cfg`` (at most ``max_epochs``) that fit ``budget_s`` seconds, calibration included.

    ``faces`` (default: 24 batches) is the slice each calibration trains on. ``margin`` covers epochs that run
    slower than the calibration's (up to 10 % was seen over a 2-hour CPU run). A crop recipe keeps its
    ``full_size_epochs`` whole-face epochs at the end and spends the rest of the budget on crop epochs.
    """
    if budget_s <= 0:
        raise TrainConfigError(f"the budget must be positive, got {budget_s:g} s")
    start = time.time()
    faces = faces or 24 * cfg.batch_size
    early_differs = bool(cfg.train_crop or cfg.train_resize)  # crop / shrunk-face epochs cost less than whole
    full_size = cfg.full_size_epochs if early_differs else 0
    full_s = time_epoch(cfg, train_set, val_set, None, None, faces)
    crop_s = (time_epoch(cfg, train_set, val_set, cfg.train_crop, cfg.train_resize, faces)
              if early_differs else None)
    calibration_s = time.time() - start
    left = (budget_s - calibration_s) / margin
    if crop_s is not None:
        epochs = full_size + math.floor((left - full_size * full_s) / crop_s) if left >= full_size * full_s else 0
        if full_size and epochs <= full_size:
            need = calibration_s + margin * (full_size * full_s + crop_s)
            raise TrainConfigError(
                f"a budget of {budget_s:.0f} s does not fit this recipe here: its {full_size} whole-face epochs "
                f"take about {full_size * full_s:.0f} s and a crop epoch {crop_s:.0f} s (calibration took "
                f"{calibration_s:.0f} s); give at least {need:.0f} s, or lower full_size_epochs")
    else:
        epochs = math.floor(left / full_s)
    if epochs < 1:
        one = crop_s or full_s
        raise TrainConfigError(
            f"a budget of {budget_s:.0f} s does not fit one epoch here: one takes about {one:.0f} s and the "
            f"calibration took {calibration_s:.0f} s; give at least {calibration_s + margin * one:.0f} s")
    if max_epochs is not None:
        epochs = min(epochs, max_epochs)
    return EpochPlan(epochs=epochs, budget_s=budget_s, calibration_s=calibration_s, epoch_s=full_s,
                     crop_epoch_s=crop_s, full_size_epochs=min(full_size, epochs), margin=margin)


@dataclass(frozen=True)
class Replanner:
    """``train``'s ``replan`` hook for a budgeted run: after each epoch, the most epochs that still fit.

    A plan made from a calibration at the start can be overtaken by the machine: on a 2-core EPYC the epochs of a
    2-hour run slowed from 65 s to 79 s within its first ten. This hook rescales the calibrated epoch times by how
    much slower the last three epochs ran than planned (their median, so one slow epoch does not cut the run),
    and shortens the run when the rest would pass ``limit_s`` (seconds of training, the budget less calibration).
    It waits for three epochs before it judges, and it never lengthens a run.
    """

    plan: EpochPlan
    limit_s: float
    margin: float = 1.02

    def __call__(self, history: list[dict[str, Any]], epochs: int) -> int:
        done = len(history)
        if done < 3:  # the median of one or two epochs is one outlier: 2 minutes of other work cut 26 epochs
            return epochs
        ends = [0.0] + [row["elapsed_s"] for row in history]
        # Each epoch ran under the plan in force when it started (a shortened run moves its whole-face tail).
        ran_under = [self.plan.epochs] + [row.get("planned_epochs", self.plan.epochs) for row in history]
        recent = range(max(0, done - 3), done)
        slowdown = float(np.median([(ends[i + 1] - ends[i]) / self.plan.epoch_cost(i, ran_under[i]) for i in recent]))
        for total in range(epochs, done, -1):
            rest = sum(self.plan.epoch_cost(i, total) for i in range(done, total)) * max(slowdown, 1.0)
            if ends[-1] + rest * self.margin <= self.limit_s:
                return total
        return done
