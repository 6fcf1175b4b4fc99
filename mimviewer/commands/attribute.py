"""``mimviewer attribute CKPT INPUT --region x0,y0,x1,y1 --frame K -o attr.npz|png|gif``.

What in the context made the model predict this region of frame K: Captum's saliency,
gradient x input or integrated gradients over the context pixels (see
:mod:`mimviewer.attribution`), plus the share of the gradient through each memory path.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mimviewer.errors import MimviewerError, ShapeError

OUTPUT_SUFFIXES = (".npz", ".png", ".gif")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mimviewer.attribution_choices import BASELINES, DEFAULT_BLUR_SIGMA, DEFAULT_IG_STEPS, METHODS
    from mimviewer.commands.export import add_sequence_flags
    from mimviewer.commands.predict import add_config_flags, add_fit_flag

    parser = subparsers.add_parser(
        "attribute",
        help="which context pixels drive the predicted values in a region (Captum attribution)",
        description="Attribute the sum of predicted frame K inside a region to every pixel of every "
        "context frame, and measure how much of the gradient reaches the region through each "
        "layer's memories (C, M; MIM's N and S) at each step. OUT by suffix: .npz (every number), "
        ".png (overlay on the context frames, per-frame totals, memory path x step), .gif (the "
        "same scrubbed frame by frame). Frames count from 0; step t reads frame t, predicts t + 1.",
    )
    parser.add_argument("checkpoint", help="checkpoint: .safetensors, OpenSTL .ckpt, .pth")
    parser.add_argument("input", help="input sequence: video, image folder, .npy/.npz, HDF5, ODIM radar")
    parser.add_argument("-o", "--output", required=True, help="attr.npz, attr.png or attr.gif")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--region",
        metavar="x0,y0,x1,y1",
        help="pixel box of frame K (x1, y1 exclusive; default: whole frame)",
    )
    where.add_argument(
        "--mask",
        metavar="MASK.npy|png",
        help="any region shape: an (H, W) .npy of 0/1 or bool, or a grey .png (pixels > 127 are in)",
    )
    parser.add_argument(
        "--frame", type=int, help="the frame K to explain (default: the first predicted, = pre)"
    )
    parser.add_argument(
        "--method",
        choices=tuple(METHODS),
        default="ig",
        help="; ".join(f"{k}: {v}" for k, v in METHODS.items()) + " (default: ig)",
    )
    parser.add_argument(
        "--baseline",
        choices=tuple(BASELINES),
        default="zeros",
        help="integrated gradients' starting point: "
        + "; ".join(f"{k}: {v}" for k, v in BASELINES.items())
        + " (default: zeros)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=DEFAULT_IG_STEPS,
        help=f"integrated gradients' steps (default: {DEFAULT_IG_STEPS})",
    )
    parser.add_argument(
        "--blur-sigma", type=float, default=DEFAULT_BLUR_SIGMA, help="blur baseline's sigma in pixels"
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory-path gradient norms")
    parser.add_argument("--pre", type=int, help="context frames (default: the checkpoint's)")
    add_sequence_flags(parser)
    parser.add_argument("--fps", type=float, default=2, help="frames per second of a .gif (default: 2)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_fit_flag(parser)
    add_config_flags(parser)
    parser.set_defaults(run=run)


def load_model_and_frames(args: argparse.Namespace, device, output: Path) -> tuple:
    """(model, frames (T, C, H, W) from --start fitted to the model, units) for attribute and whatif."""
    from mimviewer.atomic import check_output
    from mimviewer.commands.export import read_sequence
    from mimviewer.commands.predict import load_checkpoint
    from mimviewer.data import adapt

    check_output(output, tuple(p for p in (args.input, args.checkpoint, args.config) if p))
    sequence = read_sequence(args.input, args)
    loaded = load_checkpoint(args, sequence.shape[1:], device)
    cfg = loaded.config
    if not 0 <= args.start < len(sequence):
        raise ShapeError(f"--start {args.start}: {args.input} has frames 0..{len(sequence) - 1}")
    _, frames, _ = adapt(sequence, (cfg.channels, cfg.height, cfg.width), fit=args.fit, start=args.start)
    return loaded.model, frames, sequence.meta.units


def read_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    """An (H, W) bool region from a .npy (bool or 0/1) or a grey .png (> 127); errors name the file."""
    import cv2

    from mimviewer.attribution import AttributionError

    path = Path(path)
    if not path.is_file():
        raise AttributionError(f"{path}: no such mask file")
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise AttributionError(f"{path}: not a readable .npy mask ({exc})") from None
        if values.dtype != bool and not (
            np.issubdtype(values.dtype, np.number) and np.isin(values, (0, 1)).all()
        ):
            raise AttributionError(f"{path}: a mask holds bool or 0/1 values, got {values.dtype}")
        mask = values.astype(bool)
    elif path.suffix.lower() == ".png":
        grey = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise AttributionError(f"{path}: not a readable .png")
        mask = grey > 127
    else:
        raise AttributionError(f"{path}: a mask is a .npy or .png file")
    if mask.shape != shape:
        raise AttributionError(f"{path}: the mask is {mask.shape[::-1]} (W x H), the frames {shape[::-1]}")
    if not mask.any():
        raise AttributionError(f"{path}: the mask selects no pixel")
    return mask


def run(args: argparse.Namespace) -> int:
    from mimviewer.attribution import AttributionRequest, Region, iter_attribution
    from mimviewer.attribution_images import write_attribution_image
    from mimviewer.inference import pick_device, rollout, run_to_end
    from mimviewer.limits import check_flag

    check_flag(args.steps, "--steps", 1, 10_000)  # integrated gradients: one backward pass per step
    output = Path(args.output)
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise MimviewerError(f"{output}: attributions are written as {', '.join(OUTPUT_SUFFIXES)}")
    device = pick_device(args.device)
    model, frames, units = load_model_and_frames(args, device, output)
    cfg = model.config
    pre = args.pre if args.pre is not None else cfg.pre
    if not 1 <= pre <= len(frames):
        raise ShapeError(
            f"{args.input} has {len(frames)} frames from --start; --pre must be 1..{len(frames)}, got {pre}"
        )
    frame = pre if args.frame is None else args.frame
    if args.mask:
        mask = read_mask(args.mask, (cfg.height, cfg.width))
    elif args.region:
        mask = Region.parse(args.region).mask(cfg.height, cfg.width)
    else:
        mask = np.ones((cfg.height, cfg.width), bool)
    request = AttributionRequest(
        frame=frame,
        mask=mask,
        method=args.method,
        baseline=args.baseline,
        ig_steps=args.steps,
        blur_sigma=args.blur_sigma,
        memory=not args.no_memory,
    )
    context = frames[:pre]
    attribution = run_to_end(
        iter_attribution(model, context, request),
        each=lambda progress: print(f"  [{progress.done}/{progress.total}] {progress.text}", flush=True),
    )
    attribution.meta.update(
        checkpoint=str(args.checkpoint), input=str(args.input), start=str(args.start), device=str(device)
    )
    if output.suffix.lower() == ".npz":
        attribution.save(output)
    else:
        aft = max(1, frame - pre + 1)
        predicted = rollout(model, context, pre, aft, device=device).outputs[0, frame - 1]
        write_attribution_image(output, attribution, context, predicted, units=units, fps=args.fps)
    totals = ", ".join(f"{t:.3g}" for t in attribution.frame_totals)
    print(f"wrote {output}: {attribution.describe()}")
    print(f"  per context frame: {totals}")
    gap = attribution.completeness_gap
    if gap is not None:
        change = attribution.target - attribution.baseline_target
        print(
            f"  completeness: sum {attribution.frame_totals.sum():.4g} vs F(input) - F(baseline) "
            f"{change:.4g} (gap {gap:.3g})"
        )
    return 0
