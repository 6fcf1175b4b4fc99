"""``mimviewer whatif CKPT INPUT --edits edits.json -o out.gif``: replay edits of the context.

Applies the edit list (as the window saves it; see :mod:`mimviewer.whatif`) to the context
frames, predicts from the original and the edited context, and writes GT | original |
edited | edited - original frame by frame.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mimviewer.errors import MimviewerError, ShapeError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mimviewer.commands.export import add_sequence_flags
    from mimviewer.commands.predict import add_config_flags, add_fit_flag

    parser = subparsers.add_parser(
        "whatif",
        help="predict from edited context frames and compare with the original prediction",
        description="Apply the edits in EDITS.json (erase/paint strokes, moved blobs, shifted or scaled "
        "frames, copied frames; frames count from 0) to INPUT's context frames, predict from both, "
        "and write GT | original | edited | edited - original as .gif or .mp4.",
    )
    parser.add_argument("checkpoint", help="checkpoint: .safetensors, OpenSTL .ckpt, .pth")
    parser.add_argument("input", help="input sequence: video, image folder, .npy/.npz, HDF5, ODIM radar")
    parser.add_argument(
        "--edits", required=True, metavar="EDITS.json", help="the edit list (the window saves one)"
    )
    parser.add_argument("-o", "--output", required=True, help="out.gif or out.mp4")
    parser.add_argument("--pre", type=int, help="context frames (default: the checkpoint's)")
    parser.add_argument("--aft", type=int, help="frames to predict (default: the checkpoint's)")
    add_sequence_flags(parser)
    parser.add_argument("--fps", type=float, default=4, help="frames per second (default: 4)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_fit_flag(parser)
    add_config_flags(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mimviewer.commands.attribute import load_model_and_frames
    from mimviewer.inference import pick_device
    from mimviewer.whatif import EditList, run_whatif
    from mimviewer.whatif_images import write_whatif

    output = Path(args.output)
    if output.suffix.lower() not in (".gif", ".mp4"):
        raise MimviewerError(f"{output}: what-if comparisons are written as .gif or .mp4")
    edits = EditList.load(args.edits)
    device = pick_device(args.device)
    model, frames, units = load_model_and_frames(args, device, output)
    cfg = model.config
    pre = args.pre if args.pre is not None else cfg.pre
    aft = args.aft if args.aft is not None else cfg.aft
    if pre < 1 or aft < 1 or pre > len(frames):
        raise ShapeError(
            f"{args.input} has {len(frames)} frames from --start; need 1 <= pre <= that, aft >= 1"
        )
    try:
        result = run_whatif(model, frames[:pre], edits.edits, aft=aft, device=device)
    except MimviewerError as exc:
        raise type(exc)(f"{args.edits}: {exc}") from None
    write_whatif(output, result, frames[: pre + aft], units=units, fps=args.fps)
    change = np.abs(result.difference).reshape(aft, -1).max(1)
    print(f"wrote {output}: {len(edits)} edit(s) to {pre} context frames, {aft} predicted")
    print("  largest |edited - original| per predicted frame: " + ", ".join(f"{c:.3g}" for c in change))
    return 0
