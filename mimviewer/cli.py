"""The one command-line entry point: ``mimviewer SUBCOMMAND ...``.

Each subcommand lives in ``mimviewer/commands/<name>.py`` with ``add_parser(subparsers)``
and ``run(args) -> int``. A :class:`~mimviewer.errors.MimviewerError` is printed as one
line (no traceback) and exits with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from mimviewer import __version__
from mimviewer.errors import MimviewerError
from mimviewer.limits import check_flags

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


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line, like every other error (usage is one --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
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
        check_flags(vars(args))  # every command's numbers: finite, and in range by name (limits.py)
        code = int(args.run(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not later at exit as a traceback
        return code
    except MimviewerError as exc:
        print(f"mimviewer: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `mimviewer info X | head -0`: the reader left; say so once, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print("mimviewer: error: standard output was closed before everything was written", file=sys.stderr)
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by a closed pipe
    except KeyboardInterrupt:
        print("mimviewer: interrupted", file=sys.stderr)
        return 130


def _one_line(exc: BaseException) -> str:
    """The message on one line (a file name may hold a newline), cut to a readable length."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 2000 else text[:1990] + " [...]"


if __name__ == "__main__":
    raise SystemExit(main())
