"""A timm-style model registry: ``create_model(name, num_classes=...)`` and ``list_models()``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one architecture."""

    name: str
    factory: Callable[..., nn.Module]
    input_size: int  # side of the square input the architecture was designed for
    in_chans: int  # 1 = gray, 3 = the gray face repeated over RGB
    description: str


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, input_size: int = 48, in_chans: int = 1, description: str = ""):
    """Decorator that adds a factory ``f(num_classes=7, **kwargs) -> nn.Module`` to the registry."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, fn, input_size, in_chans, description or (fn.__doc__ or "").strip())
        return fn

    return wrap


def list_models() -> list[str]:
    """Names of every registered architecture, sorted."""
    return sorted(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(list_models())}") from None


def create_model(name: str, num_classes: int = 7, **kwargs) -> nn.Module:
    """Build a registered model with fresh weights."""
    return model_info(name).factory(num_classes=num_classes, **kwargs)
