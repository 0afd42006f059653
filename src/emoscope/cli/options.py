"""The recognizer's command-line options, declared once for every command that recognises faces.

``add_recognizer_options(parser)`` adds ``--weights``, ``--backend``, ``--detector``, ``--tta``, ``--margin``,
``--balance`` (and, on request, ``--no-detect`` and ``--threads``); ``recognizer_from_args(args)`` builds the
:class:`~emoscope.recognizer.Recognizer` from them. The choices come from the library
(``recognizer.BACKENDS``, ``recognizer.DETECTOR_CHOICES``, ``evaluation.TTA_MODES``), read only when a command
line is parsed or help is shown, so building the parser does not import torch. Values are checked by the
library's :func:`~emoscope.recognizer.check_options` (the one validation path): a bad one is one line on
stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

from . import UserError


class LibraryChoices(Sequence[str]):
    """The choices of an option, read from a library constant on first use (not when the parser is built)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def _values(self) -> tuple[str, ...]:
        return tuple(getattr(importlib.import_module(f"emoscope.{self.module}"), self.name))

    def __getitem__(self, i):  # type: ignore[override]
        return self._values()[i]

    def __len__(self) -> int:
        return len(self._values())

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __contains__(self, value: object) -> bool:
        return value in self._values()

    def __str__(self) -> str:
        return ", ".join(self._values())


BACKEND_CHOICES = LibraryChoices("recognizer", "BACKENDS")
DETECTOR_CHOICES = LibraryChoices("recognizer", "DETECTOR_CHOICES")
TTA_CHOICES = LibraryChoices("evaluation", "TTA_MODES")


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a whole number, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {v}")
    return v


def finite_float(text: str) -> float:
    """argparse type: a finite number (range checks are the library's)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"want a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"want a finite number, got {text!r}")
    return v


def json_or_word(text: str) -> Any:
    """A ``KEY=VALUE`` option's value: JSON (a number, true, null, a list or object, a "quoted string"), else the
    bare word as a string, so ``--set soft_targets=ferplus`` needs no quotes."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_recognizer_options(
    parser: argparse.ArgumentParser,
    *,
    tta: str | None = "none",
    margin: bool = True,
    no_detect: bool = False,
    threads: bool = False,
) -> None:
    """Add the recognizer's options to ``parser``.

    ``tta``: the default of ``--tta`` (``None``: no ``--tta`` option; recognition without TTA). ``margin``: add
    ``--margin``. ``no_detect``: add ``--no-detect`` (pictures are face crops already). ``threads``: add
    ``--threads`` (threads per model).
    """
    g = parser.add_argument_group("recognizer")
    g.add_argument("--weights", help="model weights: a .pt checkpoint, an exported .onnx, or a shipped model "
                                     "(default, fast); default: default")
    g.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, metavar="NAME",
                   help="model runtime: %(choices)s (default: auto = ONNX Runtime when an up-to-date .onnx "
                        "export is beside the weights, else torch)")
    g.add_argument("--detector", default="auto", choices=DETECTOR_CHOICES, metavar="NAME",
                   help="face detector: %(choices)s (default: auto = BlazeFace, big pictures also searched in "
                        "tiles for small faces; blazeface-fast: no tiles; none: the whole picture is the face)")
    if tta is not None:
        g.add_argument("--tta", default=tta, choices=TTA_CHOICES, metavar="MODE",
                       help="test-time augmentation (averaging the model over altered copies of each face: "
                            "flip = mirrored, crops = 12 views: the whole face, 5 shifted crops and their mirrors, "
                            "~12x slower): %(choices)s "
                            f"(default: {tta})")
    if margin:
        g.add_argument("--margin", type=finite_float, metavar="FRACTION",
                       help="face crop margin, a fraction of the face box side added on each side, 0 to 1 "
                            "(default: per detector, 0.1)")
    g.add_argument("--balance", type=finite_float, nargs="?", const=1.0, metavar="T",
                   help="read every emotion as equally likely: divide the probabilities by the model's training "
                        "class frequencies to the power T, 0 to 1 (--balance alone: 1). For posed or balanced "
                        "sets; everyday photos are better read as trained (default: 0)")
    if no_detect:
        g.add_argument("--no-detect", action="store_true",
                       help="pictures are face crops already: classify each whole (same as --detector none)")
    if threads:
        g.add_argument("--threads", type=positive_int, metavar="N", help="threads per model (default: all cores)")


def recognizer_kwargs(args: argparse.Namespace, **overrides: Any) -> dict[str, Any]:
    """The :class:`~emoscope.recognizer.Recognizer` keyword arguments that ``args`` holds (plus ``overrides``)."""
    kw: dict[str, Any] = {"weights": getattr(args, "weights", None), "backend": getattr(args, "backend", "auto"),
                          "detector": getattr(args, "detector", "auto")}
    if getattr(args, "no_detect", False):
        kw["detector"] = None
    for name in ("tta", "margin", "threads", "balance"):
        if getattr(args, name, None) is not None:
            kw[name] = getattr(args, name)
    kw.update(overrides)
    return kw


def recognizer_from_args(args: argparse.Namespace, **overrides: Any):
    """Check the options (:func:`~emoscope.recognizer.check_options`) and build the Recognizer.

    A bad value raises :class:`~emoscope.errors.InvalidArgumentError` before any model loads; a missing
    optional package (onnxruntime for ``--backend onnx``) becomes a one-line :class:`UserError`.
    """
    from ..recognizer import Recognizer, check_options

    kw = recognizer_kwargs(args, **overrides)
    check_options(**{k: v for k, v in kw.items() if k != "weights"})
    try:
        return Recognizer(**kw)
    except ImportError as exc:
        raise UserError(str(exc)) from None
