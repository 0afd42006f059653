"""Training: a run is prepared, then each epoch is trained, validated and saved.

Everything a run needs is in :class:`TrainConfig`. :func:`train` reads top to bottom: :func:`prepare_run` (model,
optimiser, schedule, data, a resumed state), then per epoch :func:`train_one_epoch`, :func:`record_epoch` (which
calls :func:`validate`) and :func:`save_checkpoint`, until the plan, early stopping or the time limit ends it. It
returns a :class:`TrainResult`.

A run folder receives ``config.json``, ``best.pt`` (best validation accuracy) and ``last.pt`` (every epoch; in
that order, each atomic), ``history.csv``, ``history.json`` and ``curves.png``. ``resume=True`` continues exactly
where ``last.pt`` stopped. Under torchrun (``emoscope.distributed``) the same run is spread over the processes.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from .augment import AugmentConfig, augment_batch, mixup
from .datasets.faceset import FaceSet
from .distributed import Dist, process_group
from .errors import EmoscopeError
from .evaluation import classification_metrics, predict_proba
from .models import create_model, model_info
from .models.checkpoint import CheckpointError, atomic_save, model_meta, read_checkpoint
from .models.registry import ModelInfo
from .preprocess import normalize, resize_batch, to_unit


class TrainConfigError(EmoscopeError, ValueError):
    """A training run cannot start as configured (unknown option, missing GPU, mismatched teacher or resume...)."""


@dataclass
class TrainConfig:
    """All knobs of a training run (saved as ``config.json`` beside the checkpoints)."""

    model: str = "emovgg_m"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 30
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adam | adamw | rmsprop
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | plateau | constant
    warmup_epochs: float = 1.0  # for cosine
    plateau_patience: int = 3
    plateau_factor: float = 0.5
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.0
    # Soft targets: "ferplus" blends each training face's share of FER+ annotator votes into its target, with this
    # weight (the rest stays on the dataset's own label); ``train`` takes the vote shares as ``targets``.
    soft_targets: str | None = None
    soft_target_weight: float = 0.3
    class_weights: bool = False
    augment: bool = True
    aug: AugmentConfig = field(default_factory=AugmentConfig)
    train_crop: int | None = None  # train on random crops of this size (None: full input size)
    # With train_crop: the last this many epochs train on whole faces, so that BatchNorm's statistics and the head
    # settle on the whole faces the model is scored on (a crop-trained net scored on whole faces drifts; FixRes).
    full_size_epochs: int = 0
    # Progressive resizing: before those last epochs, each (cropped) training batch is also shrunk to this many
    # pixels a side, which makes a step cheaper (the whole face, at less detail; None: no resize).
    train_resize: int | None = None
    # Keep an exponential moving average of the weights (BatchNorm statistics included) with this decay per step,
    # e.g. 0.999 (0: off). The average is what is validated and saved as best.pt, so it is the model that ships.
    ema_decay: float = 0.0
    early_stopping: int = 0  # stop after this many epochs without val improvement (0: never)
    time_limit_s: float = 0.0  # stop before an epoch that would end past this many seconds of training (0: never)
    init_weights: str | None = None  # start from this checkpoint's weights (fine-tuning; head reset if shapes differ)
    # knowledge distillation: a trained checkpoint whose soft labels the model learns too, or a list of them whose
    # averaged logits are the soft labels (an ensemble teacher)
    teacher: str | list[str] | None = None
    distill_alpha: float = 0.7  # weight of the distillation term (1 - alpha goes to the hard-label loss)
    distill_temperature: float = 3.0
    val_tta: str = "none"
    bf16: bool = True
    channels_last: bool = True
    threads: int = 0  # 0: torch default
    device: str = "auto"  # auto (a CUDA GPU when there is one, else the CPU) | cpu | cuda | cuda:N
    seed: int = 0
    out_dir: str = "runs/run"

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        if isinstance(d.get("aug"), dict):
            aug = dict(d["aug"])
            if "erasing_area" in aug:
                aug["erasing_area"] = tuple(aug["erasing_area"])
            d["aug"] = AugmentConfig(**aug)
        known = set(TrainConfig.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise TrainConfigError(f"unknown training option(s): {', '.join(sorted(unknown))}")
        return TrainConfig(**d)


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the first CUDA GPU when PyTorch sees one, else the CPU; a clear error for a missing GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise TrainConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainConfigError(f"device {name!r} asked for, but this PyTorch sees no CUDA GPU; use --device cpu")
    if dev.type not in ("cpu", "cuda"):
        raise TrainConfigError(f"unknown device {name!r}; use auto, cpu or cuda")
    return dev


def make_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    name = cfg.optimizer.lower()
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    raise TrainConfigError(f"unknown optimizer {cfg.optimizer!r}; choose sgd, adam, adamw or rmsprop")


def make_scheduler(cfg: TrainConfig, opt: torch.optim.Optimizer, steps_per_epoch: int, done_steps: int = 0):
    """Returns (scheduler, step_per_batch). Plateau steps once per epoch on validation accuracy.

    ``done_steps`` > 0 lays the schedule over ``cfg.epochs`` and places it after that many steps: how a run
    that was shortened part-way (``train``'s ``replan``) continues on the shorter curve.
    """
    total = cfg.epochs * steps_per_epoch
    last = done_steps - 1  # the scheduler's own step counter (-1: a fresh schedule)
    if cfg.schedule == "onecycle":
        # Very short runs (a handful of steps) still get a warm-up of at least two steps.
        total = max(total, 4)
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total,
                                                   pct_start=max(0.25, 2 / total), last_epoch=last), True
    if cfg.schedule == "cosine":
        warm = int(cfg.warmup_epochs * steps_per_epoch)

        def f(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

        return torch.optim.lr_scheduler.LambdaLR(opt, f, last_epoch=last), True
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        ), False
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0), True
    raise TrainConfigError(f"unknown schedule {cfg.schedule!r}; choose onecycle, cosine, plateau or constant")


def load_initial_weights(model: torch.nn.Module, path: str) -> None:
    """Copy every tensor of a checkpoint whose name and shape match (a new class head stays fresh)."""
    state = read_checkpoint(path)["model"]
    own = model.state_dict()
    fitting = {k: v.float() if v.is_floating_point() else v for k, v in state.items()
               if k in own and own[k].shape == v.shape}
    if not fitting:
        raise TrainConfigError(f"{path}: no weights fit model (different architecture?)")
    model.load_state_dict(fitting, strict=False)


def teacher_paths(teacher: str | list[str] | None) -> list[str]:
    """A config's ``teacher`` as a list of checkpoint paths (one path, several, or none)."""
    return [teacher] if isinstance(teacher, str) else list(teacher or [])


class TeacherEnsemble(nn.Module):
    """Several frozen teachers read as one: the mean of their logits (each teacher's vote counts the same)."""

    def __init__(self, teachers: list[nn.Module]) -> None:
        super().__init__()
        self.teachers = nn.ModuleList(teachers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([t(x).float() for t in self.teachers]).mean(0)


def load_teacher(cfg: TrainConfig, classes: list[str], size: int, in_chans: int) -> torch.nn.Module:
    """The frozen teacher of a distillation run (an ensemble when ``cfg.teacher`` lists several); each must see
    the same input and predict the same classes as the student."""
    from .models.checkpoint import load_model

    paths = teacher_paths(cfg.teacher)
    if not paths:
        raise TrainConfigError("teacher: give a checkpoint path or a non-empty list of them")
    teachers = []
    for path in paths:
        teacher, tmeta = load_model(path)
        if list(tmeta["classes"]) != list(classes):
            raise TrainConfigError(f"teacher {path} predicts {tmeta['classes']}, the data has {classes}; "
                                   "distil from a teacher trained on the same label scheme")
        if (tmeta["input_size"], tmeta["in_chans"]) != (size, in_chans):
            raise TrainConfigError(f"teacher {path} takes {tmeta['in_chans']}x{tmeta['input_size']}px input, "
                                   f"the student {in_chans}x{size}px; pick a teacher with the same input")
        teachers.append(teacher.eval().requires_grad_(False))
    teacher = teachers[0] if len(teachers) == 1 else TeacherEnsemble(teachers).eval()
    return teacher.to(memory_format=torch.channels_last) if cfg.channels_last else teacher


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.'s soft-target loss: KL(teacher || student) at temperature T, scaled by T^2."""
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                    log_target=True, reduction="batchmean") * t * t


def blend_targets(cfg: TrainConfig, labels: np.ndarray, num_classes: int,
                  targets: np.ndarray | None) -> torch.Tensor | None:
    """Each training face's target distribution, ``(1 - w) * one_hot(label) + w * targets``, or None for plain
    labels. A face whose ``targets`` row is all zeros keeps its one-hot label."""
    if cfg.soft_targets is None:
        if targets is not None:
            raise TrainConfigError("soft targets were given but soft_targets is not set; set soft_targets=ferplus")
        return None
    if cfg.soft_targets != "ferplus":
        raise TrainConfigError(f"unknown soft_targets {cfg.soft_targets!r}; the one source is 'ferplus'")
    if not 0.0 <= cfg.soft_target_weight <= 1.0:
        raise TrainConfigError(f"soft_target_weight {cfg.soft_target_weight} must be in [0, 1]")
    if targets is None:
        raise TrainConfigError("soft_targets=ferplus needs the FER+ vote shares of the training faces "
                               "(emoscope train reads them from the FER-2013 folder's ferplus/fer2013new.csv)")
    q = np.asarray(targets, dtype=np.float32)
    if q.shape != (len(labels), num_classes):
        raise TrainConfigError(f"soft targets have shape {q.shape}, expected {(len(labels), num_classes)} "
                               "(one row per training face, one column per class)")
    total = q.sum(1)
    if (q < 0).any() or not np.all((total == 0) | np.isclose(total, 1.0, atol=1e-4)):
        raise TrainConfigError("each soft-target row must be a distribution (non-negative, summing to 1) or zeros")
    one_hot = np.eye(num_classes, dtype=np.float32)[labels]
    q = np.where(total[:, None] > 0, q, one_hot)
    return torch.from_numpy((1 - cfg.soft_target_weight) * one_hot + cfg.soft_target_weight * q)


def class_weight_tensor(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (a class with no samples gets weight 0)."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    w = np.divide(counts.sum() / num_classes, counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(w / w[w > 0].mean(), dtype=torch.float32)


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for every float tensor of the state (weights and BatchNorm
    running statistics); integer buffers (BatchNorm's batch counter) are copied."""
    for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if e.is_floating_point():
            e.lerp_(m, 1.0 - decay)
        else:
            e.copy_(m)


def ema_decay_at(decay: float, step: int) -> float:
    """The decay used after optimiser step ``step`` (0-based): ramped up as ``(1 + step) / (10 + step)`` so that the
    average does not keep the random initial weights for thousands of steps (as timm's ModelEma warm-up does)."""
    return min(decay, (1 + step) / (10 + step))




@dataclass(frozen=True)
class EvalResult:
    """A model's scores on the validation split."""

    loss: float  # mean negative log-likelihood of the true class
    accuracy: float
    macro_f1: float


@dataclass(frozen=True)
class EpochStats:
    """One epoch of training batches, over all processes: mean loss and accuracy, and how many faces it saw."""

    loss: float
    accuracy: float
    samples: int


@dataclass
class TrainResult:
    """What :func:`train` reports: the best epoch, how the run went and where its weights are."""

    best_acc: float  # the best epoch's validation accuracy (training accuracy when there is no validation split)
    best_epoch: int  # 1-based; -1 when no epoch has run
    best_macro_f1: float | None  # the best epoch's validation macro-F1 (None without a validation split)
    epochs_run: int  # of the whole run, earlier calls included
    planned_epochs: int  # the run's length (``replan`` may have shortened it)
    elapsed_s: float  # the whole run's training time
    out_dir: str
    weights: str  # best.pt: the best epoch's (averaged, with EMA) weights
    stopped: str | None  # why the run ended before its planned epochs: 'early stopping', 'time limit' or None
    resumed_at: int | None  # the first epoch this call trained when it continued a saved run
    processes: int = 1  # training processes (torchrun's --nproc-per-node)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)  # one row per epoch (history.json)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (``history`` left out: it is in history.json)."""
        d = asdict(self)
        del d["history"]
        return d


@dataclass
class Run:
    """Everything one training run holds between epochs: the model and its optimiser, the data on the device and
    the record of the epochs so far. :func:`prepare_run` builds it; the epoch functions below advance it."""

    cfg: TrainConfig
    out: Path
    dist: Dist
    device: torch.device
    info: ModelInfo
    classes: tuple[str, ...]
    model: nn.Module  # the weights being trained
    net: nn.Module  # what batches go through: ``model``, or ``model`` in DistributedDataParallel
    ema: nn.Module | None
    opt: torch.optim.Optimizer
    sched: Any
    per_batch: bool  # the scheduler steps per batch (else once per epoch, on validation accuracy)
    steps_per_epoch: int
    epochs: int  # the run's length; ``replan`` may shorten it
    meta: dict[str, Any]
    images: torch.Tensor  # the whole training split on the device: a batch is one gather
    labels: torch.Tensor
    soft: torch.Tensor | None  # per-face target distributions (soft targets), else None
    loss_weights: torch.Tensor | None  # per-class weights of the loss (cfg.class_weights)
    teacher: nn.Module | None
    start_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_acc: float = -1.0
    best_epoch: int = -1  # 1-based
    best_state: dict[str, torch.Tensor] | None = None  # the best epoch's shipped weights, kept in last.pt too
    resumed_at: int | None = None
    t_start: float = 0.0
    last_plot: float = 0.0

    @property
    def shipped(self) -> nn.Module:
        """The weights validated each epoch and saved as best.pt: the moving average when there is one."""
        return self.model if self.ema is None else self.ema

    def say(self, message: str) -> None:
        """A line for the user, from rank 0 only."""
        if self.dist.main:
            tqdm.write(message)


def steps_per_epoch(n: int, batch_size: int, world: int = 1) -> int:
    """Batches per epoch. A last batch too small to give each process two faces (BatchNorm needs two) is dropped;
    with one process that is a last batch of one face."""
    full, rest = divmod(n, batch_size)
    return max(1, full + (rest >= 2 * world))


def check_config(cfg: TrainConfig, train_set: FaceSet, dist: Dist) -> ModelInfo:
    """The model's registry entry, once the sizes and options that only fail later have been checked."""
    if len(train_set) == 0:
        raise TrainConfigError("the training split is empty")
    try:
        info = model_info(cfg.model)
    except ValueError as exc:  # unknown model name
        raise TrainConfigError(str(exc)) from None
    train_size = cfg.train_crop or info.input_size
    if not 8 <= train_size <= info.input_size:
        raise TrainConfigError(f"train_crop {cfg.train_crop} must be between 8 and the model's input size "
                               f"{info.input_size}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise TrainConfigError(f"ema_decay {cfg.ema_decay} must be in [0, 1): 0 turns the average off, 0.999 is usual")
    if cfg.train_resize is not None and not 8 <= cfg.train_resize <= train_size:
        raise TrainConfigError(f"train_resize {cfg.train_resize} must be between 8 and the crop size {train_size}")
    if dist.active and cfg.batch_size < 2 * dist.world:
        raise TrainConfigError(f"batch_size {cfg.batch_size} is the global batch, split over {dist.world} "
                               f"processes; give at least {2 * dist.world} (two faces per process, for BatchNorm)")
    return info


def prepare_run(cfg: TrainConfig, train_set: FaceSet, targets: np.ndarray | None = None, resume: bool = False,
                dist: Dist | None = None) -> Run:
    """Model, optimiser, schedule, teacher and data of a run, continued from ``last.pt`` with ``resume``.

    Rank 0 creates the run folder, writes ``config.json`` and removes the ``*.pt.tmp`` a kill during a save left.
    With several processes the model is wrapped in DistributedDataParallel (gradients summed over ranks).
    """
    dist = dist or Dist()
    info = check_config(cfg, train_set, dist)
    out = Path(cfg.out_dir)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        for stray in out.glob("*.pt.tmp"):
            stray.unlink()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    if dist.active and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)  # one GPU per process
    classes = train_set.classes
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(classes), **cfg.model_kwargs)
    if cfg.init_weights:
        load_initial_weights(model, cfg.init_weights)
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    opt = make_optimizer(cfg, model.parameters())
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema_decay else None
    steps = steps_per_epoch(len(train_set), cfg.batch_size, dist.world)
    sched, per_batch = make_scheduler(cfg, opt, steps)
    weights = class_weight_tensor(train_set.labels, len(classes)).to(device) if cfg.class_weights else None
    teacher = load_teacher(cfg, classes, info.input_size, info.in_chans).to(device) if cfg.teacher else None
    soft = blend_targets(cfg, train_set.labels, len(classes), targets)
    run = Run(cfg=cfg, out=out, dist=dist, device=device, info=info, classes=classes, model=model, net=model,
              ema=ema, opt=opt, sched=sched, per_batch=per_batch, steps_per_epoch=steps, epochs=cfg.epochs,
              # class_counts: the prior the model learns, which Recognizer(balance=...) can divide out
              meta={**model_meta(cfg.model, classes, **cfg.model_kwargs), "class_counts": train_set.class_counts()},
              images=torch.from_numpy(train_set.images).to(device),
              labels=torch.from_numpy(train_set.labels).to(device),
              soft=soft.to(device) if soft is not None else None, loss_weights=weights, teacher=teacher)
    if dist.main:
        (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if dist.active:  # the same initial weights everywhere (seeded above); from here each rank its own dropout
        torch.manual_seed(cfg.seed * 1_000_003 + 1 + dist.rank)
    if resume and (out / "last.pt").exists():
        resume_run(run, read_checkpoint(out / "last.pt"))
    run.t_start = time.time() - (run.history[-1]["elapsed_s"] if run.history else 0.0)
    if dist.active:
        run.net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return run


def check_resumable(cfg: TrainConfig, ck: dict[str, Any], path: Path) -> None:
    """Refuse to continue a saved run under options that would make it a different run."""
    saved = ck.get("train_config", {})
    keys = ("model", "epochs", "batch_size", "schedule", "lr", "ema_decay", "soft_targets",
            "soft_target_weight")  # a run saved before an option
    changed = [k for k in keys if saved.get(k, getattr(TrainConfig, k)) != asdict(cfg)[k]]  # had its default
    # A constant or plateau schedule does not depend on the epoch count, so a run may be extended (say from
    # 30 to its recipe's 50 epochs) and be the same as one planned that long; one-cycle and cosine may not.
    if changed == ["epochs"] and cfg.schedule in ("constant", "plateau") and cfg.epochs >= ck["epoch"] + 1:
        changed = []
    if changed:
        raise TrainConfigError(f"cannot resume {path}: {', '.join(changed)} differ from the saved run; "
                               "resume with the same config or start a new --out folder")


def resume_run(run: Run, ck: dict[str, Any]) -> None:
    """Continue ``run`` exactly where the checkpoint ``ck`` (last.pt) stopped, and make best.pt agree with it."""
    cfg = run.cfg
    check_resumable(cfg, ck, run.out / "last.pt")
    run.model.load_state_dict(ck["model"])
    saved_epochs = ck.get("train_config", {}).get("epochs")
    planned = ck.get("planned_epochs", saved_epochs)
    run.epochs = planned if planned != saved_epochs else cfg.epochs  # a replanned run keeps its new length
    if run.epochs != cfg.epochs:  # a cosine LambdaLR's state does not hold its length: lay it out again
        run.sched, run.per_batch = make_scheduler(replace(cfg, epochs=run.epochs), run.opt, run.steps_per_epoch)
    if run.ema is not None:
        run.ema.load_state_dict(ck["ema"])  # saved beside the model whenever ema_decay was on (checked above)
    run.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    run.start_epoch, run.history = ck["epoch"] + 1, ck["history"]
    run.best_acc, run.best_epoch = ck["best_acc"], ck["best_epoch"]
    run.resumed_at = run.start_epoch + 1
    restore_rng(run, ck)
    if run.dist.main:
        reconcile_best(run, ck)
    run.best_acc, run.best_epoch = run.dist.from_main((run.best_acc, run.best_epoch))


def restore_rng(run: Run, ck: dict[str, Any]) -> None:
    """The random state each process had when ``ck`` was saved (rank 0's when the process count changed)."""
    world = ck.get("world_size", 1)
    if world != run.dist.world:
        run.say(f"resuming a run trained on {world} process(es) with {run.dist.world}: the batches are the same, "
                "the result is not bit for bit the one an uninterrupted run would give")
    same = run.dist.active and world == run.dist.world
    torch.set_rng_state(ck["rng_ranks"][run.dist.rank] if same else ck["rng"])
    if run.device.type == "cuda" and "cuda_rng" in ck:
        torch.cuda.set_rng_state(ck["cuda_rng_ranks"][run.dist.rank] if same else ck["cuda_rng"], run.device)


def score(row: dict[str, Any]) -> float:
    """What selects the best epoch: validation accuracy, or training accuracy without a validation split."""
    return row.get("val_acc", row["train_acc"])


def reconcile_best(run: Run, ck: dict[str, Any]) -> None:
    """Make best.pt hold the epoch last.pt names as the best one (rank 0, on resume).

    A kill between the two writes of an epoch leaves them apart: best.pt one epoch ahead of last.pt (the order
    :func:`save_checkpoint` uses), or behind it (the order before). best.pt is rewritten from the copy of the best
    weights last.pt keeps or, for a last.pt saved without one, from last.pt's own weights when its epoch is the
    best; failing both, the run goes on with the epoch best.pt holds as its best, and says so.
    """
    claimed, last_epoch, path = run.best_epoch, ck["epoch"] + 1, run.out / "best.pt"
    if claimed < 1:
        return
    try:
        best = read_checkpoint(path)
        held = best["epoch"] + 1
    except CheckpointError:
        best, held = None, None
    kept, source = ck.get("best_model"), "the copy of the best weights last.pt keeps"
    if kept is None and claimed == last_epoch:
        kept, source = ck["ema"] if run.ema is not None else ck["model"], "last.pt's weights (its epoch is the best)"
    has = f"epoch {held}" if best is not None else "no readable checkpoint"
    if best is not None and held == claimed:
        run.best_state = kept if kept is not None else best["model"]
    elif kept is not None:
        run.best_state = kept
        atomic_save(best_payload(run, claimed - 1), path)
        run.say(f"repaired {path}: it held {has}, the run's best is epoch {claimed}; rewrote it from {source}")
    elif best is not None and held > last_epoch:  # an older last.pt without a copy, one epoch behind best.pt
        run.say(f"{path} holds epoch {held}, newer than last.pt (the run stopped between the two writes); "
                f"epoch {held} is trained again and saved if it is still the best")
    else:
        run.best_acc, run.best_epoch = (score(run.history[held - 1]), held) if best is not None else (-1.0, -1)
        run.best_state = best["model"] if best is not None else None
        goes_on = f"with epoch {held} as its best" if best is not None else "and the next epoch becomes its best"
        run.say(f"{path} holds {has}, not the best epoch {claimed} the run recorded, and there is no copy of that "
                f"one; the run goes on {goes_on}")


def training_batch(run: Run, idx: torch.Tensor, g: torch.Generator, crop: int,
                   shrink: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Faces ``idx`` augmented, cropped or shrunk and mixed: (input, labels, target, mixup's second target, its
    weight). The targets are class ids, or per-face distributions with soft targets."""
    cfg, size = run.cfg, run.info.input_size
    x = resize_batch(to_unit(run.images[idx]), size)
    y = run.labels[idx]
    t = run.soft[idx] if run.soft is not None else y
    if cfg.augment:
        x = augment_batch(x, cfg.aug, g, crop)
    elif crop != size:
        off = (size - crop) // 2
        x = x[..., off : off + crop, off : off + crop]
    if shrink:
        x = resize_batch(x, shrink, antialias=True)
    t2, lam = t, 1.0
    if cfg.mixup_alpha > 0:
        x, t, t2, lam = mixup(x, t, cfg.mixup_alpha, g)
    return normalize(x, run.info.in_chans), y, t, t2, lam


def batch_loss(run: Run, x: torch.Tensor, t: torch.Tensor, t2: torch.Tensor,
               lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, loss) of one batch: cross-entropy on the (mixed) targets, plus distillation with a teacher."""
    cfg = run.cfg
    with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
        logits = run.net(x)
        if run.teacher is not None:
            with torch.no_grad():
                teacher_logits = run.teacher(x).float()
    logits = logits.float()
    smoothing = cfg.label_smoothing
    loss = lam * F.cross_entropy(logits, t, weight=run.loss_weights, label_smoothing=smoothing)
    if lam < 1.0:
        loss = loss + (1 - lam) * F.cross_entropy(logits, t2, weight=run.loss_weights, label_smoothing=smoothing)
    if run.teacher is not None:
        loss = ((1 - cfg.distill_alpha) * loss
                + cfg.distill_alpha * distillation_loss(logits, teacher_logits, cfg.distill_temperature))
    return logits, loss


def train_one_epoch(run: Run, epoch: int, progress: bool = True) -> EpochStats:
    """One pass over the training split (``epoch`` is 0-based): every rank takes its shard of each global batch.

    The order of an epoch comes from a generator seeded by the epoch alone, so a resumed run sees exactly the same
    batches; with several processes each rank augments its shard from a generator of its own.
    """
    cfg, dist, size = run.cfg, run.dist, run.info.input_size
    g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    order = torch.randperm(len(run.images), generator=g)
    if dist.active:
        g = torch.Generator().manual_seed((cfg.seed * 100_003 + epoch) * 1_009 + dist.rank)
    early = epoch < run.epochs - cfg.full_size_epochs  # crops / shrunk faces; then whole faces to the end
    crop = (cfg.train_crop or size) if early else size
    shrink = cfg.train_resize if early else None
    run.net.train()
    # Running sums stay on the device: reading them every step would stall a GPU.
    loss_sum, correct, seen = torch.zeros((), device=run.device), torch.zeros((), device=run.device), 0
    bar = tqdm(range(run.steps_per_epoch), desc=f"epoch {epoch + 1}/{run.epochs}", leave=False,
               disable=not (progress and dist.main))
    for step in bar:
        batch = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        idx = dist.shard(batch).to(run.device)
        x, y, t, t2, lam = training_batch(run, idx, g, crop, shrink)
        logits, loss = batch_loss(run, x, t, t2, lam)
        run.opt.zero_grad(set_to_none=True)
        # DDP averages the ranks' gradients; weighting each by its share of the batch makes that the batch mean.
        (loss * (len(idx) * dist.world / len(batch)) if dist.active else loss).backward()
        run.opt.step()
        if run.ema is not None:
            update_ema(run.ema, run.model, ema_decay_at(cfg.ema_decay, epoch * run.steps_per_epoch + step))
        if run.per_batch:
            run.sched.step()
        loss_sum += loss.detach() * len(y)
        correct += (logits.argmax(1) == y).sum()
        seen += len(y)
        if progress and (step % 10 == 0 or step == run.steps_per_epoch - 1):
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{float(correct) / seen:.3f}")
    total = dist.all_sum(torch.stack([loss_sum.double(), correct.double(), torch.tensor(seen, dtype=torch.float64,
                                                                                         device=run.device)]))
    return EpochStats(loss=float(total[0]) / float(total[2]), accuracy=float(total[1]) / float(total[2]),
                      samples=int(total[2]))


def validate(model: nn.Module, val_set: FaceSet, cfg: TrainConfig, info: ModelInfo) -> EvalResult:
    """Loss, accuracy and macro-F1 of ``model`` on ``val_set`` (with ``cfg.val_tta``)."""
    probs = predict_proba(model, val_set.images, tta=cfg.val_tta, input_size=info.input_size,
                          in_chans=info.in_chans, bf16=cfg.bf16)
    loss = float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-8)), torch.from_numpy(val_set.labels)))
    m = classification_metrics(val_set.labels, probs.argmax(1), val_set.classes)
    return EvalResult(loss=loss, accuracy=m["accuracy"], macro_f1=m["macro_f1"])


def record_epoch(run: Run, epoch: int, stats: EpochStats, val_set: FaceSet | None,
                 replan: Callable[[list[dict[str, Any]], int], int] | None) -> bool:
    """Validate, log the epoch's history row, track the best epoch and let ``replan`` shorten the run.

    Rank 0 validates, times and replans; every rank then applies rank 0's row, so all take the same decisions.
    Returns whether this epoch is the best so far.
    """
    row, epochs = None, run.epochs
    if run.dist.main:
        row = {"epoch": epoch + 1, "lr": run.opt.param_groups[0]["lr"], "train_loss": stats.loss,
               "train_acc": stats.accuracy}
        if val_set is not None and len(val_set):
            ev = validate(run.shipped, val_set, run.cfg, run.info)
            row.update(val_loss=ev.loss, val_acc=ev.accuracy, val_macro_f1=ev.macro_f1)
        row["elapsed_s"] = time.time() - run.t_start
        if replan is not None and epoch + 1 < epochs:
            epochs = max(epoch + 1, min(epochs, replan([*run.history, row], epochs)))
            if epochs < run.epochs:
                run.say(f"replanned: {epochs} epochs instead of {run.epochs}, to stay inside the budget")
        if replan is not None:  # every row of a replanned run says how long the run is planned to be
            row["planned_epochs"] = epochs
    row, epochs = run.dist.from_main((row, epochs))
    if not run.per_batch and "val_acc" in row:
        run.sched.step(row["val_acc"])
    improved = score(row) > run.best_acc
    if improved:
        run.best_acc, run.best_epoch = score(row), epoch + 1
    run.history.append(row)
    if epochs < run.epochs:
        run.epochs = epochs
        if run.per_batch:  # the schedule continues on the curve of the shorter run
            run.sched, _ = make_scheduler(replace(run.cfg, epochs=epochs), run.opt, run.steps_per_epoch,
                                          done_steps=(epoch + 1) * run.steps_per_epoch)
    return improved


def best_payload(run: Run, epoch: int) -> dict[str, Any]:
    """best.pt's content: the best epoch's shipped weights (``epoch`` 0-based) and what rebuilds the model."""
    return {**run.meta, "model": run.best_state, "epoch": epoch, "best_acc": run.best_acc,
            "train_config": asdict(run.cfg)}


def save_checkpoint(run: Run, epoch: int, improved: bool) -> None:
    """best.pt (when ``epoch`` is the best so far), then last.pt, each atomically; rank 0 writes, all ranks call.

    best.pt goes first: last.pt names the best epoch, so it must never name one best.pt does not hold yet. last.pt
    also keeps a copy of the best weights, from which ``--resume`` repairs a best.pt a kill left one epoch ahead.
    """
    rng = run.dist.gather(torch.get_rng_state())  # every rank's, for an exact resume on as many processes
    cuda_rng = run.dist.gather(torch.cuda.get_rng_state(run.device)) if run.device.type == "cuda" else None
    if not run.dist.main:
        return
    if improved:
        run.best_state = {k: v.detach().clone() for k, v in run.shipped.state_dict().items()}
        atomic_save(best_payload(run, epoch), run.out / "best.pt")
    state = {
        **run.meta, "model": run.model.state_dict(), "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(), "epoch": epoch, "history": run.history, "best_acc": run.best_acc,
        "best_epoch": run.best_epoch, "rng": rng[0], "train_config": asdict(run.cfg), "planned_epochs": run.epochs,
        "world_size": run.dist.world,
    }
    if run.best_state is not None:
        state["best_model"] = run.best_state
    if run.ema is not None:
        state["ema"] = run.ema.state_dict()
    if cuda_rng is not None:
        state["cuda_rng"] = cuda_rng[0]
    if run.dist.active:
        state["rng_ranks"] = rng
        if cuda_rng is not None:
            state["cuda_rng_ranks"] = cuda_rng
    atomic_save(state, run.out / "last.pt")


def log_epoch(run: Run, improved: bool, progress: bool) -> None:
    """history.csv / .json (curves.png at most every 30 s: a plot costs ~0.3 s) and the epoch's row on screen."""
    if not run.dist.main:
        return
    replot = time.time() - run.last_plot > 30
    write_history(run.history, run.out, plot=replot)
    run.last_plot = time.time() if replot else run.last_plot
    if progress:
        row = run.history[-1]
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
        tqdm.write(shown + (" *" if improved else ""))


def patience_spent(run: Run, epochs_done: int) -> bool:
    """Early stopping's test: ``cfg.early_stopping`` epochs have passed since the best one."""
    return bool(run.cfg.early_stopping) and epochs_done - run.best_epoch >= run.cfg.early_stopping


def stop_reason(run: Run, epoch: int, stop_at: float) -> str | None:
    """Why the run stops after ``epoch`` (0-based) short of its plan: 'early stopping', 'time limit' or None."""
    if patience_spent(run, epoch + 1):
        run.say(f"early stopping: no improvement for {run.cfg.early_stopping} epochs")
        return "early stopping"
    # The last epoch's duration predicts the next one's: stop rather than overrun the limit.
    elapsed = run.history[-1]["elapsed_s"]
    epoch_s = elapsed - (run.history[-2]["elapsed_s"] if len(run.history) > 1 else 0.0)
    limit = run.cfg.time_limit_s
    if limit and epoch + 1 < min(run.epochs, stop_at) and elapsed + epoch_s > limit:
        run.say(f"time limit: {elapsed:.0f} s spent, another epoch would pass {limit:g} s")
        return "time limit"
    return None


def run_result(run: Run, stopped: str | None) -> TrainResult:
    """The :class:`TrainResult` of ``run`` as it stands."""
    hist = run.history
    best = hist[run.best_epoch - 1] if 1 <= run.best_epoch <= len(hist) else {}
    return TrainResult(
        best_acc=run.best_acc, best_epoch=run.best_epoch, best_macro_f1=best.get("val_macro_f1"),
        epochs_run=len(hist), planned_epochs=run.epochs, elapsed_s=hist[-1]["elapsed_s"] if hist else 0.0,
        out_dir=str(run.out), weights=str(run.out / "best.pt"), stopped=stopped,
        resumed_at=run.resumed_at if len(hist) > run.start_epoch else None,  # None also when nothing was left
        processes=run.dist.world, history=list(hist),
    )


def train(cfg: TrainConfig, train_set: FaceSet, val_set: FaceSet | None = None, resume: bool = False,
          progress: bool = True, stop_after: int | None = None,
          replan: Callable[[list[dict[str, Any]], int], int] | None = None,
          targets: np.ndarray | None = None) -> TrainResult:
    """Train ``cfg.model`` on ``train_set``; select the best epoch on ``val_set``.

    ``stop_after`` ends this call after that many epochs (the run can be resumed later). ``replan(history,
    epochs)``, called after each epoch, may shorten the run to fewer epochs (never below those done): the schedule
    then continues on the curve of the shorter run and a crop recipe's whole-face epochs move forward with its
    end (``emoscope.budget`` uses it to keep a run inside a wall-clock budget when its epochs slow down).
    ``targets`` (with ``cfg.soft_targets``) holds a class distribution per training face, e.g. FER+ vote shares;
    a face's row of zeros means "none", and that face learns its label alone.

    Started by torchrun on several processes, the run is one run spread over them: ``cfg.batch_size`` is the
    global batch, each process trains on its shard of it, gradients are summed, and rank 0 validates and saves.
    """
    with process_group(resolve_device(cfg.device).type) as dist:
        run = prepare_run(cfg, train_set, targets, resume, dist)
        stop_at = math.inf if stop_after is None else run.start_epoch + stop_after
        # A resumed run that had already stopped early trains no more.
        stopped = "early stopping" if run.history and patience_spent(run, run.start_epoch) else None
        epoch = run.start_epoch
        while stopped is None and epoch < min(run.epochs, stop_at):
            stats = train_one_epoch(run, epoch, progress)
            improved = record_epoch(run, epoch, stats, val_set, replan)
            save_checkpoint(run, epoch, improved)
            log_epoch(run, improved, progress)
            stopped = stop_reason(run, epoch, stop_at)
            epoch += 1
        if run.history and dist.main:
            write_history(run.history, run.out)  # the final curves.png
        dist.barrier()  # every file is written when any rank returns
        return run_result(run, stopped)


def best_epoch(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The history row :func:`train` keeps as ``best.pt``: highest validation accuracy (training accuracy when
    there was no validation split), the earliest epoch on ties."""
    return max(history, key=lambda row: row.get("val_acc", row["train_acc"]))


def write_history(history: list[dict[str, Any]], out: Path, plot: bool = True) -> None:
    """history.csv, history.json and (with ``plot``) curves.png: loss and accuracy against epoch."""
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    (out / "history.json").write_text(json.dumps(history, indent=1))
    if not plot:
        return
    from .plots import plot_curves

    plot_curves({"run": history}, out / "curves.png")
