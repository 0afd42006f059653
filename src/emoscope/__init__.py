"""emoscope: recognise emotions from faces.

``from emoscope import Recognizer`` gives the inference API; ``emoscope.to_frame(faces)`` a pandas table of
its results; ``emoscope.read_image`` / ``emoscope.load_image`` the one picture decoder. Heavy modules
(torch, OpenCV) load on first use, not on ``import emoscope``.
"""

from .labels import EMOTIONS

#: The package version: the one place it is written (pyproject.toml reads it from here).
__version__ = "0.1.0"

__all__ = [
    "EMOTIONS",
    "EmoscopeError",
    "Face",
    "ImageReadError",
    "Recognizer",
    "__version__",
    "create_model",
    "list_models",
    "load_dataset",
    "load_image",
    "read_image",
    "to_frame",
]

_LAZY = {
    "Recognizer": ("recognizer", "Recognizer"),
    "Face": ("recognizer", "Face"),
    "to_frame": ("recognizer", "to_frame"),
    "create_model": ("models", "create_model"),
    "list_models": ("models", "list_models"),
    "load_dataset": ("datasets", "load_dataset"),
    "load_image": ("imaging", "load_image"),
    "read_image": ("imaging", "read_image"),
    "ImageReadError": ("imaging", "ImageReadError"),
    "EmoscopeError": ("errors", "EmoscopeError"),
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'emoscope' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names only (not the submodules and helpers a module namespace also holds)."""
    return sorted(__all__)
