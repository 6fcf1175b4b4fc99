"""``mimviewer delta CKPT [INPUT] --eps 0,1e-3,1e-2 -o curve.csv``: what delta inference buys.

For each threshold eps the model runs with every recurrent product computed incrementally
(mimviewer/nets/delta.py); the curve holds the fraction of recurrent multiply-adds skipped
against the MSE/SSIM of the prediction, both versus the truth and versus the exact rollout.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mimviewer.errors import MimviewerError, ShapeError

DEFAULT_EPS = "0,1e-4,1e-3,3e-3,1e-2,3e-2,0.1,0.3"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "delta",
        help="delta inference trade-off: skipped recurrent multiply-adds vs prediction error",
        description="Run CHECKPOINT exactly and in delta mode for each --eps over INPUT (any input predict "
        "reads) or, without INPUT, over held-out synthetic sequences (--data); write the curve (CSV), "
        "per layer and step numbers (<stem>_steps.csv) and a plot (<stem>.png).",
    )
    p.add_argument("checkpoint", help="checkpoint file, or a bundled model name (e.g. predrnn_digits)")
    p.add_argument("input", nargs="?", help="input frames (as for predict); default: synthetic --data")
    p.add_argument("--eps", default=DEFAULT_EPS, help=f"thresholds, comma-separated (default {DEFAULT_EPS})")
    p.add_argument("-o", "--output", required=True, type=Path, help="the curve, .csv")
    p.add_argument(
        "--data", choices=("digits", "storms"), help="synthetic data without INPUT (default: by units)"
    )
    p.add_argument("--sequences", type=int, default=8, help="synthetic sequences without INPUT (default 8)")
    p.add_argument("--seed", type=int, help="synthetic seed (default: the model cards' held-out test seed)")
    p.add_argument("--pre", type=int, help="context frames (default: the checkpoint's)")
    p.add_argument("--aft", type=int, help="frames to predict (default: the checkpoint's)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(run=run)


def parse_eps(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise MimviewerError(f"--eps must be numbers separated by commas, got {text!r}") from None
    if not values or any(not v >= 0 for v in values):
        raise MimviewerError(f"--eps must list thresholds >= 0, got {text!r}")
    return values


def run(args: argparse.Namespace) -> int:
    import torch

    from mimviewer.checkpoints import load_checkpoint, load_for_input
    from mimviewer.commands.predict import read_input
    from mimviewer.commands.study import resolve
    from mimviewer.data import adapt
    from mimviewer.delta import delta_curve, write_curve
    from mimviewer.inference import pick_device
    from mimviewer.train import synthetic_frames

    eps_values = parse_eps(args.eps)
    if args.output.suffix.lower() != ".csv":
        raise MimviewerError(f"{args.output}: the curve is written as .csv")
    device = pick_device(args.device)
    _, path = resolve(args.checkpoint)
    if args.input is not None:
        inputs = read_input(args.input)
        t, c, h, w = inputs.sequences[0].shape
        loaded = load_for_input(path, channels=c, frame_size=(h, w), device=device)
        cfg = loaded.config
        stop = min(t, (args.pre or cfg.pre) + (args.aft or cfg.aft))  # context and, where there, truth
        shape = (cfg.channels, cfg.height, cfg.width)
        frames = np.stack([adapt(seq, shape, fit="resize", stop=stop)[1] for seq in inputs.sequences])
        source = str(args.input)
    else:
        loaded = load_checkpoint(path, device=device)
        cfg = loaded.config
        if cfg.channels != 1 or cfg.height != cfg.width:
            raise MimviewerError(f"{path}: synthetic data is square and grey; give INPUT frames")
        data = args.data or ("storms" if cfg.units in ("dBZ", "mm/h") else "digits")
        pre, aft = args.pre or cfg.pre, args.aft or cfg.aft
        from mimviewer.train import TEST_SEED  # here: building the parser must not import torch

        if args.seed is None:
            args.seed = TEST_SEED
        frames = synthetic_frames(data, args.sequences, pre + aft, cfg.height, args.seed)
        source = f"{args.sequences} synthetic {data} sequences (seed {args.seed})"
    cfg = loaded.config
    pre = args.pre if args.pre is not None else cfg.pre
    aft = args.aft if args.aft is not None else cfg.aft
    if frames.shape[1] < pre:
        raise ShapeError(f"{source} has {frames.shape[1]} frames, fewer than the {pre} context frames")
    torch_frames = torch.from_numpy(np.ascontiguousarray(frames)).float().to(device)
    points, runs = delta_curve(loaded.model.eval(), torch_frames, eps_values, pre, aft)
    written = write_curve(points, runs, args.output, inputs=(args.input, path))
    print(f"{cfg.arch} ({path.name}) on {source}, pre {pre}, aft {aft}:")
    print(
        f"{'eps':>8} {'skipped':>8} {'MSE truth':>10} {'SSIM truth':>10} {'MSE exact':>10} {'SSIM exact':>10}"
    )
    for p in points:
        print(
            f"{p.eps:>8g} {p.skipped_fraction:>8.3f} {p.mse_vs_truth:>10.5f} {p.ssim_vs_truth:>10.4f} "
            f"{p.mse_vs_exact:>10.2e} {p.ssim_vs_exact:>10.4f}"
        )
    bar = points[0]
    print(f"exact rollout: MSE {bar.exact_mse_vs_truth:.5f}, SSIM {bar.exact_ssim_vs_truth:.4f} vs truth")
    print("wrote " + ", ".join(str(p) for p in written.values()))
    return 0
