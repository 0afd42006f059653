"""Checkpoints are plain dicts: ``state_dict`` + the config that rebuilds the model (no pickled objects)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import EmoscopeError
from .registry import create_model, model_info


class CheckpointError(EmoscopeError, ValueError):
    """A weights file is missing, damaged or not an emoscope checkpoint."""


def model_meta(name: str, classes: tuple[str, ...] | list[str], **model_kwargs: Any) -> dict[str, Any]:
    """Everything needed to rebuild a model from a state_dict."""
    info = model_info(name)
    return {
        "model_name": name,
        "model_kwargs": model_kwargs,
        "classes": list(classes),
        "input_size": info.input_size,
        "in_chans": info.in_chans,
    }


def half_precision(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state_dict with floating-point tensors stored as fp16 (half the file; :func:`load_model` upcasts)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def flush_subnormals(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Set subnormal floats (below ``finfo.tiny``, ~1.2e-38 in fp32) to zero.

    Weight decay drives many weights towards zero without reaching it: 39 % of keras_arch4's weights after 30
    epochs with L2 0.002. The CPU computes with such numbers 10-100x slower, and fp32 inference (evaluation,
    the recognizer, ONNX export) took 15 s instead of 1 s per batch of 256 faces on one core. Their value is
    nothing next to the others', so predictions do not change. Training checkpoints keep them (exact resume).
    """
    out = {}
    for k, v in state.items():
        if v.is_floating_point():
            v = torch.where(v.abs() < torch.finfo(v.dtype).tiny, torch.zeros((), dtype=v.dtype), v)
        out[k] = v
    return out


def atomic_save(obj: dict[str, Any], path: str | Path) -> None:
    """``torch.save`` to a temp file then rename, so a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint dict safely (``weights_only=True``) with a clear error when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_name" not in ckpt:
        raise CheckpointError(f"{path}: not an emoscope checkpoint (needs 'model' state_dict and 'model_name')")
    return ckpt


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model of a checkpoint, load its weights (fp16 weights are upcast) and return it in eval mode."""
    ckpt = read_checkpoint(path)
    kwargs = dict(ckpt.get("model_kwargs") or {})
    for k, v in kwargs.items():
        if isinstance(v, list):
            kwargs[k] = tuple(v)
    model = create_model(ckpt["model_name"], num_classes=len(ckpt["classes"]), **kwargs)
    state = flush_subnormals({k: v.float() if v.is_floating_point() else v for k, v in ckpt["model"].items()})
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit model {ckpt['model_name']!r}: {exc}") from None
    model.eval()
    meta = {k: v for k, v in ckpt.items() if k not in ("model", "optimizer", "scheduler", "rng")}
    return model, meta
