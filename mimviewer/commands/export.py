"""``mimviewer export CHECKPOINT INPUT -o OUT``: predict, then write a video, strip or metrics file.

The output's suffix says what to write: ``.gif`` / ``.mp4`` the GT | prediction | difference
comparison, ``.png`` a strip of frames, ``.csv`` / ``.json`` the per-frame metrics.
``--demo`` uses the bundled demo model and data instead of CHECKPOINT and INPUT.
When INPUT ends before context + horizon (or ``--now`` says where "now" is), it is a
forecast: the frames past the end are marked "not observed yet" and have no metrics
(:mod:`mimviewer.forecast`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import MimviewerError, ShapeError
from mimviewer.limits import check_flag, check_fps, check_rollout

if TYPE_CHECKING:
    from mimviewer.data import Sequence

OUTPUT_SUFFIXES = (".gif", ".mp4", ".png", ".csv", ".json")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mimviewer.commands.predict import add_config_flags, add_fit_flag
    from mimviewer.commands.probe_options import add_probe_flags

    parser = subparsers.add_parser(
        "export",
        help="predict and export a GIF/MP4 comparison, a PNG strip or per-frame metrics (CSV/JSON)",
        description="Run CHECKPOINT over INPUT and write OUT by its suffix: .gif/.mp4 (ground truth | "
        "prediction | difference, context frames marked), .png (a strip of frames), .csv/.json "
        "(MSE, MAE, PSNR, SSIM per predicted frame; CSI/POD/FAR/HSS for radar data). With pre + aft "
        "frames the prediction is compared with the truth; a shorter INPUT is forecast past its end "
        "(the frames without truth are marked 'not observed yet' and have no metrics).",
    )
    parser.add_argument("checkpoint", nargs="?", help="checkpoint: .safetensors, OpenSTL .ckpt, .pth")
    parser.add_argument(
        "input", nargs="?", help="input sequence: video, image folder, .npy/.npz, HDF5, ODIM radar"
    )
    parser.add_argument(
        "-o", "--output", required=True, help="out.gif, out.mp4, out.png, out.csv or out.json"
    )
    parser.add_argument(
        "--demo", action="store_true", help="the bundled demo model and data (no CHECKPOINT/INPUT)"
    )
    parser.add_argument(
        "--compare", metavar="CKPT2", help="a second checkpoint shown (and scored) beside the first"
    )
    parser.add_argument("--pre", type=int, help="context frames (default: the checkpoint's)")
    parser.add_argument("--aft", type=int, help="frames to predict (default: the checkpoint's)")
    add_sequence_flags(parser)
    parser.add_argument(
        "--now",
        type=int,
        help="forecast from this frame (the last one the model reads; -1 = the last of INPUT); "
        "default: from --start when INPUT holds pre + aft frames after it, else from INPUT's last frame",
    )
    parser.add_argument("--fps", type=float, default=4, help="frames per second of a .gif/.mp4 (default: 4)")
    parser.add_argument(
        "--stats", metavar="FILE", help="also write gate statistics per layer/step (.csv/.json)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    add_fit_flag(parser)
    add_config_flags(parser)
    add_probe_flags(parser)
    parser.set_defaults(run=run)


def add_sequence_flags(parser: argparse.ArgumentParser) -> None:
    """--start, --sample, --units: which frames of INPUT :func:`read_sequence` reads, and as what."""
    parser.add_argument("--start", type=int, default=0, help="first frame of INPUT to use (default: 0)")
    parser.add_argument(
        "--sample", type=int, default=0, help="which sequence of an array holding many (default: 0)"
    )
    parser.add_argument(
        "--units",
        choices=("intensity", "dBZ", "mm/h"),
        help="what INPUT's values are, e.g. an array in dBZ (default: what the file says, else intensity)",
    )


def read_sequence(path: str | Path, args: argparse.Namespace):
    """INPUT through ``mimviewer.data.open_sequence``: one sequence (``--sample`` picks one of many),
    read lazily (only the frames used are decoded)."""
    from mimviewer.data import open_sequence

    options = {"units": args.units, "sequence": args.sample or None}
    return open_sequence(path, **{k: v for k, v in options.items() if v is not None})


def _model_names(paths: list[Path], archs: list[str]) -> list[str]:
    """Panel names: the checkpoint's file name, told apart when two are the same."""
    names = [path.stem for path in paths]
    if len(set(names)) < len(names):
        names = [f"{name} ({arch}, {i + 1})" for i, (name, arch) in enumerate(zip(names, archs, strict=True))]
    return names


def run(args: argparse.Namespace) -> int:
    from mimviewer import export
    from mimviewer.atomic import check_output
    from mimviewer.commands.probe_options import probe_spec
    from mimviewer.data import adapt
    from mimviewer.forecast import forecast_metrics
    from mimviewer.inference import pick_device, rollout
    from mimviewer.metrics import summary
    from mimviewer.render import FrameRenderer

    output = Path(args.output)
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise MimviewerError(f"{output}: unknown export type; use one of {', '.join(OUTPUT_SUFFIXES)}")
    if args.stats and Path(args.stats).suffix.lower() not in (".csv", ".json"):
        raise MimviewerError(f"{args.stats}: gate statistics are written as .csv or .json")
    sources = tuple(p for p in (args.input, args.checkpoint, args.compare, args.config) if p)
    check_output(output, sources)
    if args.stats:
        check_output(args.stats, sources)
    spec = probe_spec(args) if args.stats else None  # checked (lo < hi, ...) before any work
    device = pick_device(args.device)
    check_fps(args.fps)
    check_flag(args.start, "--start", 0, 2**40)
    check_flag(args.sample, "--sample", -(2**40), 2**40)

    if args.demo:
        if args.checkpoint or args.input:
            raise MimviewerError("--demo takes no CHECKPOINT or INPUT")
        models, names, sequence = _demo_models()
    else:
        if not args.checkpoint or not args.input:
            raise MimviewerError("give CHECKPOINT and INPUT (or --demo)")
        sequence = read_sequence(args.input, args)
        models, names = _load_models(args, sequence.shape, device)

    config = models[0].config
    units = sequence.meta.units
    pre = args.pre if args.pre is not None else config.pre
    aft = args.aft if args.aft is not None else config.aft
    if pre < 1 or aft < 1 or args.start < 0:
        raise ShapeError(f"--pre, --aft must be >= 1 and --start >= 0, got {pre}, {aft}, {args.start}")
    check_rollout(config, pre, aft, 1, source=str(args.input or "the demo data"), trace=bool(args.stats))
    plan = _plan(args, len(sequence), pre, aft, config.aft, sequence.meta.frame_interval_s)
    shape = (config.channels, config.height, config.width)
    stop = min(plan.now + aft + 1, len(sequence))
    _, window, notes = adapt(sequence, shape, fit=args.fit, start=plan.first, stop=stop)
    context = window[:pre]
    truth = np.full((aft, *window.shape[1:]), np.nan, np.float32)  # NaN frames: not observed yet
    truth[: len(window) - pre] = window[pre:]

    predictions: dict[str, np.ndarray] = {}
    trace = None
    for i, (model, name) in enumerate(zip(models, names, strict=True)):
        probes = spec if i == 0 else None
        result = rollout(model, context[None], pre, aft, probes=probes, device=device)
        predictions[name] = result.prediction[0]  # (aft, C, H, W)
        trace = trace or result.trace

    scores = {
        name: forecast_metrics(truth, p, plan.observed, units=units, device=device)
        for name, p in predictions.items()
    }
    renderer = FrameRenderer.for_units(units, to_physical=sequence.to_physical)
    gt = np.concatenate([context, truth])
    if suffix in (".gif", ".mp4"):
        frame_notes = [plan.frame_note(k) for k in range(plan.timeline_length)]
        export.write_comparison(
            output, gt, predictions, pre=pre, fps=args.fps, renderer=renderer, notes=frame_notes
        )
    elif suffix == ".png":
        export.write_strip(output, gt, predictions, pre=pre, renderer=renderer)
    else:
        table = (
            scores[names[0]]
            if len(names) == 1
            else {f"{n}/{k}": v for n in names for k, v in scores[n].items()}
        )
        if suffix == ".csv":
            export.write_metrics_csv(output, table, first_frame=plan.now + 1)
        else:
            source = "demo" if args.demo else str(args.input)
            extra = {
                "models": names,
                "input": source,
                "sample": args.sample,
                "units": units,
                "pre": pre,
                "aft": aft,
                "now": plan.now,
                "lead": plan.lead_labels(),
                "observed": plan.observed.tolist(),
                "beyond_trained_horizon": plan.beyond_trained.tolist(),
            }
            export.write_metrics_json(output, table, first_frame=plan.now + 1, extra=extra)
    if args.stats and trace is not None:
        export.write_trace_stats(args.stats, trace)

    print(f"wrote {output}: {pre} context + {aft} predicted frames, {units}")
    for note in notes:
        print(f"  input: {note}")
    if plan.is_forecast or plan.beyond_trained.any():
        print(f"  forecast: {plan.describe()}")
    for name in names:
        if not plan.observed.any():
            print(f"  {name}: no truth observed for the predicted frames yet: no metrics")
            continue
        means = summary(scores[name])
        print(f"  {name}: " + ", ".join(f"{k} {means[k]:.4g}" for k in ("mse", "mae", "psnr", "ssim")))
    if args.stats:
        print(f"  gate statistics of {names[0]} in {args.stats}")
    return 0


def _plan(
    args: argparse.Namespace,
    length: int,
    pre: int,
    aft: int,
    trained_aft: int,
    frame_interval_s: float | None,
):
    """Where "now" is: ``--now``, else from ``--start`` when the truth is all there, else the last frame."""
    from mimviewer.forecast import default_now, plan_forecast

    source = args.input or "the demo data"
    if args.now is not None and args.start:
        raise MimviewerError("give --start or --now, not both")
    if args.now is None and args.start + pre > length:
        raise ShapeError(
            f"{source} has {length - args.start} frame(s) from frame {args.start}, "
            f"fewer than the {pre} context frames (pass --pre)"
        )
    now = args.now if args.now is not None else default_now(length, pre, aft, start=args.start)
    try:
        return plan_forecast(
            length, pre, aft, now=now, trained_aft=trained_aft, frame_interval_s=frame_interval_s
        )
    except ShapeError as exc:
        raise ShapeError(f"{source}: {exc}") from None


def _load_models(args: argparse.Namespace, shape: tuple[int, ...], device) -> tuple[list, list[str]]:
    """The checkpoint (and --compare's) for an input of ``shape`` (T, C, H, W); both must agree on
    the frames they take, which the input is then fitted to."""
    from mimviewer.checkpoints import load_for_input
    from mimviewer.commands.predict import config_overrides

    _, c, h, w = shape
    paths = [Path(args.checkpoint)] + ([Path(args.compare)] if args.compare else [])
    models = []
    for i, path in enumerate(paths):
        loaded = load_for_input(
            path,
            channels=c,
            frame_size=(h, w),
            config_file=args.config if i == 0 else None,
            overrides=config_overrides(args) if i == 0 else None,
            device=device,
        )
        cfg = loaded.config
        first = models[0].config if models else cfg
        if (cfg.channels, cfg.height, cfg.width) != (first.channels, first.height, first.width):
            raise ShapeError(
                f"{path} takes {cfg.channels}x{cfg.height}x{cfg.width} frames, {args.checkpoint} "
                f"{first.channels}x{first.height}x{first.width}: they cannot be compared"
            )
        models.append(loaded.model)
    return models, _model_names(paths, [m.config.arch for m in models])


def _demo_models() -> tuple[list, list[str], Sequence]:
    """The bundled demo model and its generated sequence."""
    from mimviewer.commands.demo import load_demo
    from mimviewer.data import from_array

    demo = load_demo()
    return [demo.model], [demo.model_name], from_array(demo.frames, units=demo.units, source=demo.source)
