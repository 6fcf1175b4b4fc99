"""The one command-line entry point: ``mimviewer SUBCOMMAND ...``.

Each subcommand lives in ``mimviewer/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``. A :class:`~mimviewer.errors.MimviewerError` is printed as one
line (no traceback) and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from mimviewer import __version__
from mimviewer.errors import MimviewerError

# Subcommand modules under mimviewer.commands, in help order.
COMMANDS = (
    "demo",
    "view",
    "watch",
    "predict",
    "info",
    "export",
    "attribute",
    "whatif",
    "train",
    "study",
    "delta",
    "sweep",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mimviewer",
        description="Look inside recurrent video-prediction models. Without a subcommand, opens the window.",
    )
    parser.add_argument("--version", action="version", version=f"mimviewer {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"mimviewer.commands.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `mimviewer` opens the empty window
        args = parser.parse_args(["view"])
    try:
        return int(args.run(args) or 0)
    except MimviewerError as exc:
        print(f"mimviewer: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mimviewer: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
