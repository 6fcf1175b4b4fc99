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
    parser.add_argument(
        "--state", metavar="FILE", help="reopen a saved view state (.mimviewer.json: files, frame, settings)"
    )
    from mimviewer.commands.predict import add_fit_flag

    add_fit_flag(parser)
    parser.add_argument("--pre", type=int, help="context frames (default: the checkpoint's)")
    parser.add_argument(
        "--aft", type=int, help="frames to predict (default: the checkpoint's; more runs on autoregressively)"
    )
    parser.add_argument(
        "--now",
        type=int,
        help="the last frame the model reads (-1: the last of INPUT; default: where the truth of the whole "
        "horizon exists, else the last frame)",
    )
    add_window_options(parser)
    parser.set_defaults(run=run)


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """--device and --screenshot: the options of every command that opens the window (view, demo)."""
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument(
        "--screenshot", metavar="PNG", help="render the window once inference finished, save, exit"
    )
    parser.add_argument(
        "--fast", action="store_true", help="bf16 autocast where the GPU/CPU has it (shown in the status bar)"
    )
    parser.add_argument(
        "--delta-eps",
        type=float,
        metavar="E",
        help="also show the main model's delta inference rollout (|Δh| < E skipped; 0: exact up to "
        "rounding) beside the exact prediction, with the skipped multiply-adds per layer",
    )


def run(args: argparse.Namespace) -> int:
    from mimviewer.ui.app import choose_device, has_display, run_window

    if args.device != "auto":  # a device that cannot work is an error before any window opens
        from mimviewer.inference import pick_device

        pick_device(args.device)
    if args.screenshot is None and not has_display():
        raise MimviewerError(
            "no display found (DISPLAY/WAYLAND_DISPLAY unset): pass --screenshot PNG to render offscreen"
        )
    state = None
    if args.state:
        from mimviewer.viewmodel.state import read_state

        state = read_state(args.state)  # a broken or moved state file is one line, before the window

    if args.delta_eps is not None:
        from mimviewer.viewmodel.delta import check_eps

        check_eps(args.delta_eps)  # a bad threshold is one line before any window opens
        if not args.checkpoint:
            raise MimviewerError("--delta-eps needs --checkpoint: the delta row is that model's")

    for name in ("pre", "aft"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise MimviewerError(f"--{name} must be >= 1, got {value}")

    def setup(window, _loaded) -> None:
        choose_device(window, args.device)
        window.runner.fast = args.fast
        window.session.fit = args.fit
        if state is not None:
            window.open_state(state)
        elif args.input or args.checkpoint or args.compare:
            opened = window.open_paths(
                sequence=args.input, checkpoint=args.checkpoint, compare=args.compare, run=False
            )
            if opened and args.delta_eps is not None and window.session.slots[0] is not None:
                window.session.set_delta(args.delta_eps)  # run below with the others
            if opened and (args.pre or args.aft or args.now is not None):
                window.change_forecast_to(context=args.pre, horizon=args.aft, now=args.now)
            elif opened:
                window.runner.start()

    return run_window(setup, screenshot=args.screenshot)
