"""The ``emoscope`` command line: a thin shell over the library.

Each sub-command lives in its own module with an ``add_parser(subparsers)`` function that
registers it and sets ``func``; errors the user can fix are printed as one line, not a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import EmoscopeError

#: Sub-command modules, in the order they are listed in ``emoscope --help``.
COMMAND_MODULES = ["data", "train", "evaluate", "predict", "video", "batch", "research", "mood", "serve"]


class UserError(EmoscopeError):
    """An error caused by the user's input; the CLI prints its message and exits with status 2."""


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    p = argparse.ArgumentParser(prog="emoscope", description="Recognise emotions from faces.")
    p.add_argument("--version", action="version", version=f"emoscope {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line as given, for run folders that record how they were made
    try:
        return int(args.func(args) or 0)
    except (EmoscopeError, FileNotFoundError) as exc:
        print(f"emoscope {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
