"""emoscope: recognise emotions from faces.

``from emoscope import Recognizer`` gives the inference API; heavy modules load on first use.
"""

from __future__ import annotations

from typing import Any

from .labels import EMOTIONS

__version__ = "0.1.0"
__all__ = ["EMOTIONS", "Face", "Recognizer", "__version__", "create_model", "list_models", "load_dataset"]

_LAZY = {
    "Recognizer": ("recognizer", "Recognizer"),
    "Face": ("recognizer", "Face"),
    "create_model": ("models", "create_model"),
    "list_models": ("models", "list_models"),
    "load_dataset": ("datasets", "load_dataset"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'emoscope' has no attribute {name!r}")
