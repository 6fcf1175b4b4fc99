"""``mimviewer info CHECKPOINT``: what a checkpoint holds (format, architecture, config, size)."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "info",
        help="describe a checkpoint: format, architecture, config, parameter count",
        description="Read CHECKPOINT (never running pickled code) and print what it holds; "
        "the config is inferred from the weights when the file has none.",
    )
    parser.add_argument("checkpoint", help="checkpoint: .safetensors, OpenSTL .ckpt, .pth")
    parser.add_argument("--channels", type=int, help="channels of one frame, when the weights cannot tell")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimviewer.checkpoints import describe_checkpoint
    from mimviewer.limits import FIELD_RANGES, check_flag

    check_flag(args.channels, "--channels", 1, FIELD_RANGES["channels"][1])

    print(describe_checkpoint(args.checkpoint, channels=args.channels))
    return 0
