"""The training loop, readable top to bottom: data -> augmentation -> forward/backward -> eval -> checkpoint.

Everything a run needs is in :class:`TrainConfig`; a run directory receives ``config.json``,
``last.pt`` (every epoch, atomic), ``best.pt`` (best validation accuracy), ``history.csv``,
``history.json`` and ``curves.png``. ``resume=True`` continues exactly where ``last.pt`` stopped.
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
from tqdm.auto import tqdm

from .augment import AugmentConfig, augment_batch, mixup
from .datasets.faceset import FaceSet
from .errors import EmoscopeError
from .evaluation import classification_metrics, predict_proba
from .models import create_model, model_info
from .models.checkpoint import atomic_save, model_meta, read_checkpoint
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
    teacher: str | None = None  # knowledge distillation: a trained checkpoint whose soft labels the model learns too
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


def load_teacher(cfg: TrainConfig, classes: list[str], size: int, in_chans: int) -> torch.nn.Module:
    """The frozen teacher of a distillation run; it must see the same input and predict the same classes."""
    from .models.checkpoint import load_model

    teacher, tmeta = load_model(cfg.teacher)
    if list(tmeta["classes"]) != list(classes):
        raise TrainConfigError(f"teacher {cfg.teacher} predicts {tmeta['classes']}, the data has {classes}; "
                               "distil from a teacher trained on the same label scheme")
    if (tmeta["input_size"], tmeta["in_chans"]) != (size, in_chans):
        raise TrainConfigError(f"teacher {cfg.teacher} takes {tmeta['in_chans']}x{tmeta['input_size']}px input, "
                               f"the student {in_chans}x{size}px; pick a teacher with the same input")
    teacher.eval().requires_grad_(False)
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


def train(cfg: TrainConfig, train_set: FaceSet, val_set: FaceSet | None = None, resume: bool = False,
          progress: bool = True, stop_after: int | None = None,
          replan: Callable[[list[dict[str, Any]], int], int] | None = None,
          targets: np.ndarray | None = None) -> dict[str, Any]:
    """Train ``cfg.model`` on ``train_set``; select the best epoch on ``val_set``. Returns a summary dict.

    ``stop_after`` ends this call after that many epochs (the run can be resumed later). ``replan(history,
    epochs)``, called after each epoch, may shorten the run to fewer epochs (never below those done): the schedule
    then continues on the curve of the shorter run and a crop recipe's whole-face epochs move forward with its
    end (``emoscope.budget`` uses it to keep a run inside a wall-clock budget when its epochs slow down).
    ``targets`` (with ``cfg.soft_targets``) holds a class distribution per training face, e.g. FER+ vote shares;
    a face's row of zeros means "none", and that face learns its label alone.
    """
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(train_set) == 0:
        raise TrainConfigError("the training split is empty")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    classes = train_set.classes
    try:
        info = model_info(cfg.model)
    except ValueError as exc:  # unknown model name
        raise TrainConfigError(str(exc)) from None
    device = resolve_device(cfg.device)
    size = info.input_size
    train_size = cfg.train_crop or size
    if not 8 <= train_size <= size:
        raise TrainConfigError(f"train_crop {cfg.train_crop} must be between 8 and the model's input size {size}")
    if not 0.0 <= cfg.ema_decay < 1.0:
        raise TrainConfigError(f"ema_decay {cfg.ema_decay} must be in [0, 1): 0 turns the average off, 0.999 is usual")
    if cfg.train_resize is not None and not 8 <= cfg.train_resize <= train_size:
        raise TrainConfigError(f"train_resize {cfg.train_resize} must be between 8 and the crop size {train_size}")

    # --- model, optimiser, schedule -------------------------------------------------------------
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=len(classes), **cfg.model_kwargs)
    if cfg.init_weights:
        load_initial_weights(model, cfg.init_weights)
    model = model.to(device, memory_format=torch.channels_last if cfg.channels_last else torch.preserve_format)
    opt = make_optimizer(cfg, model.parameters())
    ema = copy.deepcopy(model).eval().requires_grad_(False) if cfg.ema_decay else None
    shipped = model if ema is None else ema  # the weights validated each epoch and saved as best.pt
    # A last batch of one face breaks BatchNorm; fold it away instead.
    steps_per_epoch = max(1, len(train_set) // cfg.batch_size if len(train_set) % cfg.batch_size == 1
                          else math.ceil(len(train_set) / cfg.batch_size))
    sched, per_batch = make_scheduler(cfg, opt, steps_per_epoch)
    epochs = cfg.epochs  # the run's length; ``replan`` may shorten it
    weights = class_weight_tensor(train_set.labels, len(classes)).to(device) if cfg.class_weights else None
    teacher = load_teacher(cfg, classes, size, info.in_chans).to(device) if cfg.teacher else None
    soft = blend_targets(cfg, train_set.labels, len(classes), targets)
    meta = model_meta(cfg.model, classes, **cfg.model_kwargs)
    (out / "config.json").write_text(json.dumps(asdict(cfg), indent=2))

    start_epoch, history, best_acc, best_epoch = 0, [], -1.0, -1
    resumed_at = None  # the first epoch this call trains, when it continues a saved run
    if resume and (out / "last.pt").exists():
        ck = read_checkpoint(out / "last.pt")
        saved = ck.get("train_config", {})
        keys = ("model", "epochs", "batch_size", "schedule", "lr", "ema_decay", "soft_targets",
                "soft_target_weight")  # a run saved before an option
        changed = [k for k in keys if saved.get(k, getattr(TrainConfig, k)) != asdict(cfg)[k]]  # had its default
        # A constant or plateau schedule does not depend on the epoch count, so a run may be extended (say from
        # 30 to its recipe's 50 epochs) and be the same as one planned that long; one-cycle and cosine may not.
        if (changed == ["epochs"] and cfg.schedule in ("constant", "plateau")
                and cfg.epochs >= ck["epoch"] + 1):
            changed = []
        if changed:
            raise TrainConfigError(
                f"cannot resume {out / 'last.pt'}: {', '.join(changed)} differ from the saved run; "
                "resume with the same config or start a new --out folder"
            )
        model.load_state_dict(ck["model"])
        planned = ck.get("planned_epochs", saved.get("epochs"))
        epochs = planned if planned != saved.get("epochs") else cfg.epochs  # a replanned run keeps its new length
        if epochs != cfg.epochs:  # a cosine LambdaLR's state does not hold its length: lay it out again
            sched, per_batch = make_scheduler(replace(cfg, epochs=epochs), opt, steps_per_epoch)
        if ema is not None:
            ema.load_state_dict(ck["ema"])  # saved beside the model whenever ema_decay was on (checked above)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, history = ck["epoch"] + 1, ck["history"]
        best_acc, best_epoch = ck["best_acc"], ck["best_epoch"]
        torch.set_rng_state(ck["rng"])
        resumed_at = start_epoch + 1
        if device.type == "cuda" and "cuda_rng" in ck:
            torch.cuda.set_rng_state(ck["cuda_rng"], device)

    # The whole training split lives on the device (FER-2013 is 66 MB of uint8), so a batch is one gather.
    images = torch.from_numpy(train_set.images).to(device)
    labels = torch.from_numpy(train_set.labels).to(device)
    soft = soft.to(device) if soft is not None else None
    t_start = time.time() - (history[-1]["elapsed_s"] if history else 0.0)
    stop_at = math.inf if stop_after is None else start_epoch + stop_after
    stopped = None  # why the run ended before cfg.epochs: 'early stopping' or 'time limit'

    def patience_spent(epochs_done: int) -> bool:
        """Early stopping's test: ``cfg.early_stopping`` epochs have passed since the best one."""
        return bool(cfg.early_stopping) and epochs_done - best_epoch >= cfg.early_stopping

    if history and patience_spent(start_epoch):
        stop_at, stopped = start_epoch, "early stopping"  # a resumed run that had already stopped early
    last_plot = 0.0  # curves.png is redrawn at most every 30 s and once at the end: a plot costs ~0.3 s
    epoch = start_epoch
    while epoch < min(epochs, stop_at):
        # Each epoch has its own generator, so a resumed run sees exactly the same batches.
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        order = torch.randperm(len(images), generator=g)
        early = epoch < epochs - cfg.full_size_epochs  # crops / shrunk faces; then whole faces to the end
        crop = train_size if early else size
        shrink = cfg.train_resize if early else None
        model.train()
        # Running sums stay on the device: reading them every step would stall a GPU.
        loss_sum, correct, seen = torch.zeros((), device=device), torch.zeros((), device=device), 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                   leave=False)
        for step in bar:
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size].to(device)
            x = resize_batch(to_unit(images[idx]), size)
            y = labels[idx]
            t = soft[idx] if soft is not None else y  # what the loss fits: class ids or per-face distributions
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
            x = normalize(x, info.in_chans)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
                logits = model(x)
                if teacher is not None:
                    with torch.no_grad():
                        teacher_logits = teacher(x).float()
            logits = logits.float()
            loss = lam * F.cross_entropy(logits, t, weight=weights, label_smoothing=cfg.label_smoothing)
            if lam < 1.0:
                loss = loss + (1 - lam) * F.cross_entropy(
                    logits, t2, weight=weights, label_smoothing=cfg.label_smoothing
                )
            if teacher is not None:
                loss = ((1 - cfg.distill_alpha) * loss
                        + cfg.distill_alpha * distillation_loss(logits, teacher_logits, cfg.distill_temperature))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if ema is not None:
                update_ema(ema, model, ema_decay_at(cfg.ema_decay, epoch * steps_per_epoch + step))
            if per_batch:
                sched.step()
            loss_sum += loss.detach() * len(y)
            correct += (logits.argmax(1) == y).sum()
            seen += len(y)
            if progress and (step % 10 == 0 or step == steps_per_epoch - 1):
                bar.set_postfix(loss=f"{float(loss_sum) / seen:.3f}", acc=f"{float(correct) / seen:.3f}")

        # --- validation, logging, checkpoints ---------------------------------------------------
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "lr": opt.param_groups[0]["lr"],
            "train_loss": float(loss_sum) / seen,
            "train_acc": float(correct) / seen,
        }
        if val_set is not None and len(val_set):
            probs = predict_proba(shipped, val_set.images, tta=cfg.val_tta, input_size=size,
                                  in_chans=info.in_chans, bf16=cfg.bf16)
            row["val_loss"] = float(F.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-8)),
                                               torch.from_numpy(val_set.labels)))
            m = classification_metrics(val_set.labels, probs.argmax(1), classes)
            row["val_acc"], row["val_macro_f1"] = m["accuracy"], m["macro_f1"]
            if not per_batch:
                sched.step(row["val_acc"])
        score = row.get("val_acc", row["train_acc"])
        improved = score > best_acc
        if improved:
            best_acc, best_epoch = score, epoch + 1
        row["elapsed_s"] = time.time() - t_start
        history.append(row)
        if replan is not None and epoch + 1 < epochs:
            shorter = max(epoch + 1, min(epochs, replan(history, epochs)))
            if shorter < epochs:
                tqdm.write(f"replanned: {shorter} epochs instead of {epochs}, to stay inside the budget")
                epochs = shorter
                if per_batch:
                    sched, _ = make_scheduler(replace(cfg, epochs=epochs), opt, steps_per_epoch,
                                              done_steps=(epoch + 1) * steps_per_epoch)
        if replan is not None:  # every row of a replanned run says how long the run is planned to be
            row["planned_epochs"] = epochs
        state = {
            **meta, "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "epoch": epoch, "history": history, "best_acc": best_acc, "best_epoch": best_epoch,
            "rng": torch.get_rng_state(), "train_config": asdict(cfg), "planned_epochs": epochs,
        }
        if ema is not None:
            state["ema"] = ema.state_dict()
        if device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(device)
        atomic_save(state, out / "last.pt")
        if improved:
            atomic_save({**meta, "model": shipped.state_dict(), "epoch": epoch, "best_acc": best_acc,
                         "train_config": asdict(cfg)}, out / "best.pt")
        replot = time.time() - last_plot > 30
        write_history(history, out, plot=replot)
        last_plot = time.time() if replot else last_plot
        if progress:
            shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
            tqdm.write(shown + (" *" if improved else ""))
        if patience_spent(epoch + 1):
            tqdm.write(f"early stopping: no improvement for {cfg.early_stopping} epochs")
            stopped = "early stopping"
            break
        # The last epoch's duration predicts the next one's: stop rather than overrun the limit.
        epoch_s = row["elapsed_s"] - (history[-2]["elapsed_s"] if len(history) > 1 else 0.0)
        if cfg.time_limit_s and epoch + 1 < min(epochs, stop_at) and row["elapsed_s"] + epoch_s > cfg.time_limit_s:
            tqdm.write(f"time limit: {row['elapsed_s']:.0f} s spent, another epoch would pass {cfg.time_limit_s:g} s")
            stopped = "time limit"
            break
        epoch += 1
    if history:
        write_history(history, out)  # the final curves.png
    return {"best_acc": best_acc, "best_epoch": best_epoch, "epochs_run": len(history), "planned_epochs": epochs,
            "elapsed_s": history[-1]["elapsed_s"] if history else 0.0, "out_dir": str(out), "stopped": stopped,
            "resumed_at": resumed_at if len(history) > start_epoch else None}  # None also when nothing was left


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
