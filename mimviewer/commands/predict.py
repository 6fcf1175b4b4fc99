"""``mimviewer predict CHECKPOINT INPUT -o OUT.npy``: run a checkpoint over frames, save the prediction."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from mimviewer.access import check_readable
from mimviewer.commands.probe_options import add_probe_flags, probe_spec
from mimviewer.errors import DataError, ShapeError
from mimviewer.limits import FIELD_RANGES, MAX_BATCH, check_flag, check_memory, check_rollout, shorten


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Flags that state (or correct) a checkpoint's config; they win over the file and inference."""
    group = parser.add_argument_group("model config (when the checkpoint does not say, or says wrong)")
    group.add_argument("--arch", help="architecture, e.g. convlstm, predrnn, mim")
    group.add_argument("--num-hidden", metavar="N,N,...", help="hidden channels per layer, e.g. 64,64")
    group.add_argument("--filter-size", type=int, help="conv kernel size")
    group.add_argument("--patch-size", type=int, help="patch size p")
    group.add_argument("--layer-norm", action=argparse.BooleanOptionalAction, default=None, help="LayerNorm")
    group.add_argument(
        "--peephole",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="convlstm, lstm, lstmp: peepholes from C to the gates",
    )
    group.add_argument(
        "--cifg",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="lstm, lstmp: coupled gates, i = 1 - f",
    )
    group.add_argument("--channels", type=int, help="channels of one frame (default: the input's)")
    group.add_argument(
        "--config", metavar="FILE", help="OpenSTL config .py (read as data) or our config .json"
    )


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ModelConfig fields the user stated on the command line."""
    for flag, value in (("--filter-size", args.filter_size), ("--patch-size", args.patch_size)):
        check_flag(value, flag, 1, FIELD_RANGES[flag[2:].replace("-", "_")][1])
    check_flag(args.channels, "--channels", 1, FIELD_RANGES["channels"][1])
    overrides: dict[str, Any] = {
        "arch": args.arch,
        "filter_size": args.filter_size,
        "patch_size": args.patch_size,
        "layer_norm": args.layer_norm,
        "channels": args.channels,
    }
    if args.num_hidden:
        try:
            overrides["num_hidden"] = tuple(int(n) for n in args.num_hidden.split(","))
        except ValueError:
            raise ShapeError(
                f"--num-hidden must be sizes separated by commas, got {shorten(args.num_hidden)}"
            ) from None
    options = {name: getattr(args, name) for name in ("peephole", "cifg") if getattr(args, name) is not None}
    if options:  # gate variants (nets/variants.py); they add to the checkpoint's own options
        overrides["options"] = options
    return {k: v for k, v in overrides.items() if v is not None}


def load_checkpoint(args: argparse.Namespace, frame_shape: tuple[int, int, int], device: Any):
    """``args.checkpoint`` loaded for INPUT's frames (C, H, W), with --config and the config flags."""
    from mimviewer.checkpoints import load_for_input

    c, h, w = frame_shape
    return load_for_input(
        args.checkpoint,
        channels=c,
        frame_size=(h, w),
        config_file=args.config,
        overrides=config_overrides(args),
        device=device,
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict future frames with a checkpoint and save them as .npy",
        description="Run CHECKPOINT over the frames in INPUT (.npy: (N,T,C,H,W), (T,C,H,W) or (T,H,W), "
        "float in [0,1] or uint8; or a video, image folder, .npz, HDF5 or radar sequence) and save the "
        "predicted frames as float32 (N,aft,C,H,W), without N when the input had none.",
    )
    parser.add_argument("checkpoint", help="checkpoint: .safetensors, OpenSTL .ckpt, .pth")
    parser.add_argument(
        "input", help="input frames: .npy (N,T,C,H,W)/(T,C,H,W)/(T,H,W), or any sequence open_sequence reads"
    )
    parser.add_argument("-o", "--output", required=True, help="where to write the prediction (.npy)")
    parser.add_argument("--pre", type=int, help="context frames (default: the checkpoint's)")
    parser.add_argument(
        "--aft",
        type=int,
        help="frames to predict (default: the checkpoint's); more than it was trained for runs on "
        "autoregressively, and the frames past its trained horizon are reported",
    )
    parser.add_argument(
        "--now",
        type=int,
        help="the last frame the model reads (-1: the input's last frame, a forecast past the end); "
        "default: the first --pre frames are read",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default: 8)")
    parser.add_argument("--trace", metavar="TRACE.npz", help="also save the trace of every gate and memory")
    parser.add_argument(
        "--bf16",
        action="store_true",
        help="bf16 autocast: about 2x faster convolutions on GPUs and AVX512-BF16/AMX CPUs, ~3 digits",
    )
    parser.add_argument(
        "--delta-eps",
        type=float,
        metavar="E",
        help="delta inference: recurrent products from the previous step's plus W times the change, "
        "changes below E dropped; prints the multiply-adds skipped and the error against the exact rollout",
    )
    add_fit_flag(parser)
    add_speed_flags(parser)
    add_config_flags(parser)
    add_probe_flags(parser)
    parser.set_defaults(run=run)


def add_speed_flags(parser: argparse.ArgumentParser) -> None:
    """--fast, --tf32, --cuda-graph: each on where the hardware has it, else one line saying why not."""
    group = parser.add_argument_group("speed (each falls back with a one-line note where unavailable)")
    group.add_argument("--fast", action="store_true", help="bf16 autocast where the GPU/CPU has native bf16")
    group.add_argument("--tf32", action="store_true", help="TF32 matmuls and convolutions (CUDA Ampere+)")
    group.add_argument(
        "--cuda-graph", action="store_true", help="capture the whole rollout with probes as one CUDA graph"
    )


def speed_notes(args: argparse.Namespace, device: Any) -> tuple[bool, list[str]]:
    """(use bf16, notes to print) for the speed flags; sets TF32 process-wide."""
    from mimviewer.accel import fast_note, set_tf32

    notes = [note for note in (set_tf32(args.tf32, device),) if note]
    amp = bool(getattr(args, "bf16", False))
    if args.fast and not amp:
        note = fast_note(device)
        if note:
            notes.append(note)
        amp = note is None
    return amp, notes


def add_fit_flag(parser: argparse.ArgumentParser) -> None:
    """``--fit``: how frames of another size are fitted to the model (as the window does)."""
    from mimviewer.data import FIT_MODES

    parser.add_argument(
        "--fit",
        choices=FIT_MODES,
        default="resize",
        help="frames of another size than the model's: resize (default), centre crop or centre pad; "
        "channels are converted too (colour -> grey by luma, grey -> colour), as in the window",
    )


class InputFrames(NamedTuple):
    sequences: list  # mimviewer.data.Sequence per input sequence, read lazily (only the frames used)
    batched: bool  # False when the file held one sequence without an N axis
    notes: tuple[str, ...]  # what the input rule did to the values


def read_input(path: str | Path) -> InputFrames:
    """The one place predict reads its input (values through :mod:`mimviewer.data.normalise`).

    ``.npy``: (N,T,C,H,W), (T,C,H,W) or (T,H,W) intensities; anything else
    ``mimviewer.data.open_sequence`` reads (videos, image folders, HKO-7 PNGs, .npz, HDF5,
    ODIM radar) is one sequence. Fitting to the model happens later (:func:`mimviewer.data.adapt`).
    """
    from mimviewer.data import open_sequence
    from mimviewer.data.arrays import LazyArraySequence

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() != ".npy":
        return InputFrames([open_sequence(path)], False, ())
    check_readable(path, DataError, ".npy")
    try:  # memory-mapped: only the frames a window uses are ever read and normalised
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except PermissionError:
        raise DataError(f"{path}: permission denied (the file cannot be read by this user)") from None
    except Exception as exc:  # a damaged header fails in many ways (ValueError, SyntaxError, EOFError)
        raise DataError(f"{path}: not a readable .npy array ({shorten(str(exc), 80)})") from None
    if not (array.dtype in (np.uint8, np.uint16) or np.issubdtype(array.dtype, np.floating)):
        raise DataError(f"{path}: frames must be uint8, uint16 or float, not {array.dtype}")
    batched = array.ndim == 5
    if array.ndim == 3:
        array = array[:, None]  # (T, 1, H, W)
    if array.ndim == 4:
        array = array[None]  # (1, T, C, H, W)
    if array.ndim != 5:
        raise ShapeError(
            f"{path}: expected frames (N,T,C,H,W), (T,C,H,W) or (T,H,W), got shape {array.shape}"
        )
    # One lazy sequence per N: each window read goes through the one input rule (data/normalise.py).
    sequences = [
        LazyArraySequence(array, source=str(path), kind="npy", layout="NTCHW", sequence=i)
        for i in range(len(array))
    ]
    return InputFrames(sequences, batched, ())


def _concat_traces(traces: list) -> Any:
    """One Trace over all batches: maps (steps, 4, B, ...) along axis 2, stats (steps, B, 6) along 1."""
    from mimviewer.trace import Trace, split_key

    first = traces[0]
    if len(traces) == 1:
        return first
    maps = {k: np.concatenate([t.maps[k] for t in traces], axis=2) for k in first.maps}
    stats = {k: np.concatenate([t.stats[k] for t in traces], axis=1) for k in first.stats}
    raw = {k: np.concatenate([t.raw[k] for t in traces], axis=1) for k in first.raw}
    valid = {k: np.logical_and.reduce([t.valid_steps(*split_key(k)) for t in traces]) for k in first.maps}
    return Trace(maps=maps, stats=stats, spec=first.spec, pre=first.pre, aft=first.aft, raw=raw, valid=valid)


def run(args: argparse.Namespace) -> int:
    from mimviewer.accel import device_memory_errors
    from mimviewer.atomic import atomic_file, check_output
    from mimviewer.data import adapt
    from mimviewer.forecast import plan_forecast
    from mimviewer.inference import pick_device, rollout
    from mimviewer.trace import ProbeSpec

    sources = tuple(s for s in (args.input, args.checkpoint, args.config) if s)
    output = check_output(args.output, sources)
    if args.trace:
        check_output(args.trace, sources)
    spec = probe_spec(args) if args.trace else None  # checked before any work
    device = pick_device(args.device)
    check_flag(args.batch_size, "--batch-size", 1, MAX_BATCH)
    inputs = read_input(args.input)
    first = inputs.sequences[0]
    t, c, h, w = first.shape
    loaded = load_checkpoint(args, (c, h, w), device)
    cfg = loaded.config
    pre = args.pre if args.pre is not None else cfg.pre
    aft = args.aft if args.aft is not None else cfg.aft
    if pre < 1 or aft < 1:
        raise ShapeError(f"--pre and --aft must be >= 1, got pre={pre}, aft={aft}")
    # before any frame is read: the rollout (and its trace) must fit this machine's memory
    n = len(inputs.sequences)
    check_rollout(cfg, pre, aft, min(n, args.batch_size), source=str(args.input), trace=bool(args.trace))
    check_memory(
        n * (pre + aft) * cfg.channels * cfg.height * cfg.width * 4,
        f"{args.input}: {n} sequence(s) of {pre} context + {aft} predicted frames",
        advice="predict fewer sequences at once",
    )
    if t < pre:
        hint = "" if args.pre is not None else f" (the checkpoint's default); pass --pre {t} or fewer"
        raise ShapeError(f"{args.input} has {t} frames, fewer than the {pre} context frames asked for{hint}")
    try:
        plan = plan_forecast(t, pre, aft, now=pre - 1 if args.now is None else args.now, trained_aft=cfg.aft)
    except ShapeError as exc:
        raise ShapeError(f"{args.input}: {exc}") from None
    shape = (cfg.channels, cfg.height, cfg.width)
    adapted = [
        adapt(seq, shape, fit=args.fit, start=plan.first, stop=plan.now + 1) for seq in inputs.sequences
    ]
    frames = np.stack([frames for _, frames, _ in adapted])  # (N, pre, C, H, W)
    notes = inputs.notes + adapted[0][2]
    amp, speed = speed_notes(args, device)

    if args.delta_eps is not None and not args.delta_eps >= 0:
        raise ShapeError(f"--delta-eps must be >= 0, got {args.delta_eps}")
    predictions, traces, delta = [], [], DeltaTally()
    graph = args.cuda_graph and args.delta_eps is None  # a graph would replay the exact kernels
    if args.cuda_graph and not graph:
        speed.append("cuda graph off: delta inference runs eagerly")
    for start in range(0, len(frames), args.batch_size):
        batch = frames[start : start + args.batch_size]

        def run_batch(probes: ProbeSpec | None, batch=batch) -> Any:
            return rollout(
                loaded.model,
                batch,
                pre,
                aft,
                probes=probes,
                device=device,
                amp=amp,
                cuda_graph=graph,
            )

        probes = spec
        with device_memory_errors(f"{args.checkpoint} on {args.input}", device):
            if args.delta_eps is None:
                result = run_batch(probes)
            else:
                result = delta.run(loaded.model, args.delta_eps, run_batch, probes)
        speed.extend(note for note in getattr(result, "notes", ()) if note not in speed)
        predictions.append(result.prediction)
        if result.trace is not None:
            traces.append(result.trace)
    for note in speed:
        print(f"mimviewer: {note}", file=sys.stderr)
    prediction = np.concatenate(predictions).astype(np.float32)  # (N, aft, C, H, W)
    if not inputs.batched:
        prediction = prediction[0]
    with atomic_file(output, sources) as f:  # through a file: the name stays exactly the one asked
        np.save(f, prediction)
    if args.trace:
        _concat_traces(traces).save(args.trace, sources)
    print(
        f"wrote {output} {tuple(prediction.shape)}: {cfg.arch} ({loaded.format}) from {pre} context frames "
        f"on {device}" + (f"; trace in {args.trace}" if args.trace else "")
    )
    for note in notes:
        print(f"  input: {note}")
    if plan.is_forecast or plan.beyond_trained.any():
        print(f"  forecast: {plan.describe()}")
    if args.delta_eps is not None:
        print(delta.summary(args.delta_eps))
    return 0


class DeltaTally:
    """Delta inference over the batches: skipped multiply-adds per layer, error against exact."""

    def __init__(self) -> None:
        self.layers: dict[int, tuple[int, int]] = {}
        self.squared_error, self.values = 0.0, 0

    def run(self, model: Any, eps: float, run_batch: Any, probes: Any) -> Any:
        from mimviewer.delta import skipped_macs
        from mimviewer.nets.delta import delta_mode

        exact = run_batch(None)
        with delta_mode(model, eps) as session:
            result = run_batch(probes)
        for layer, (skipped, total) in skipped_macs(session.stats).items():
            before = self.layers.get(layer, (0, 0))
            self.layers[layer] = (before[0] + skipped, before[1] + total)
        self.squared_error += float(np.square(result.prediction - exact.prediction, dtype=np.float64).sum())
        self.values += result.prediction.size
        return result

    def summary(self, eps: float) -> str:
        skipped = sum(s for s, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        per_layer = ", ".join(f"layer {k}: {s / t:.3f}" for k, (s, t) in sorted(self.layers.items()) if t)
        share = f"{skipped / total:.3f} of the recurrent multiply-adds ({per_layer})" if total else "nothing"
        mse = self.squared_error / max(1, self.values)
        return f"delta eps {eps:g}: skipped {share}; prediction MSE against the exact rollout {mse:.3g}"
