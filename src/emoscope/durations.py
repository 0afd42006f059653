"""Durations on the command line and in benchmark scripts: ``90s``, ``45m``, ``2h``, ``1h30m`` or a bare number.

``emoscope train --time-limit`` has always counted minutes and the benchmark scripts' ``--time-limit`` seconds;
with a unit suffix both read the same, and a bare number keeps each option's documented unit.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable

UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0}
UNIT_NAMES = {"s": "seconds", "m": "minutes", "h": "hours"}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([hms])")


def parse_duration(text: str, bare_unit: str = "s") -> float:
    """Seconds in ``text``: ``"90s"``, ``"45m"``, ``"2h"``, ``"1h30m"``; a bare number counts ``bare_unit``."""
    s = text.strip().lower().replace(" ", "")
    try:
        value = float(s) * UNIT_SECONDS[bare_unit]
    except ValueError:
        parts = _PART.findall(s)
        if not s or "".join(n + u for n, u in parts) != s:
            raise ValueError(
                f"{text!r} is not a duration: write a number with s, m or h (90s, 45m, 2h, 1h30m), "
                f"or a bare number of {UNIT_NAMES[bare_unit]}"
            ) from None
        value = sum(float(n) * UNIT_SECONDS[u] for n, u in parts)
    if value < 0:
        raise ValueError(f"{text!r}: a duration cannot be negative")
    return value


def duration_arg(bare_unit: str) -> Callable[[str], float]:
    """An argparse ``type=`` that reads a duration and returns seconds (a bare number counts ``bare_unit``)."""

    def parse(text: str) -> float:
        try:
            return parse_duration(text, bare_unit)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = "duration"  # argparse names the type in its error message
    return parse
