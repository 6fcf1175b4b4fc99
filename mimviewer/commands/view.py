"""`mimviewer view INPUT --checkpoint CKPT [--compare CKPT2]`: open a user's files in the window."""

from __future__ import annotations

import argparse

from mimviewer.errors import MimviewerError


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "view",
        help="open the window (optionally on a sequence and checkpoints)",
        description="Open the window; with INPUT and --checkpoint, predict and show the internals.",
    )
    parser.add_argument("input", nargs="?", help="sequence: video, image folder, .npy/.npz, HDF5, radar")
    parser.add_argument("--checkpoint", "-c", help="model checkpoint (.safetensors, .ckpt, .pth)")
    parser.add_argument("--compare", help="a second checkpoint shown next to the first")
    from mimviewer.commands.predict import add_fit_flag

    add_fit_flag(parser)
    add_window_options(parser)
    parser.set_defaults(run=run)


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """--device and --screenshot: the options of every command that opens the window (view, demo)."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--screenshot", metavar="PNG", help="render the window once inference finished, save, exit"
    )


def run(args: argparse.Namespace) -> int:
    from mimviewer.inference import pick_device
    from mimviewer.ui.app import choose_device, has_display, run_window

    pick_device(args.device)  # a device that cannot work is an error before any window opens
    if args.screenshot is None and not has_display():
        raise MimviewerError(
            "no display found (DISPLAY/WAYLAND_DISPLAY unset): pass --screenshot PNG to render offscreen"
        )

    def setup(window) -> None:
        choose_device(window, args.device)
        window.session.fit = args.fit
        if args.input or args.checkpoint or args.compare:
            window.open_paths(sequence=args.input, checkpoint=args.checkpoint, compare=args.compare)

    return run_window(setup, screenshot=args.screenshot)
