"""``mimviewer sweep CHECKPOINT DATA -o results.parquet|csv``: a checkpoint over a whole data set.

Under ``torchrun --nproc_per_node N -m mimviewer sweep ...`` every rank takes every N-th
chunk of sequences (torch.distributed: gloo on CPU, NCCL on GPUs, rank r on cuda:LOCAL_RANK),
rank 0 gathers the rows and writes the file, which is the one a single process writes.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mimviewer.errors import MimviewerError, ShapeError

if TYPE_CHECKING:
    import torch


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from mimviewer.commands.predict import add_config_flags, add_fit_flag

    parser = subparsers.add_parser(
        "sweep",
        help="run a checkpoint over every sequence of a data set: per-sequence scores and gate statistics",
        description="Roll CHECKPOINT out over every sequence of DATA and write one row per sequence: "
        "scores over the predicted frames, and per layer and gate the saturated fractions (low, high), "
        "the mean and the dH stillness, with the data set's identity. Resumable: finished chunks "
        "are kept in OUT.parts/ and skipped on a rerun. Under torchrun it shards by rank.",
    )
    parser.add_argument("checkpoint", help="checkpoint: .safetensors, OpenSTL .ckpt, .pth")
    parser.add_argument(
        "data",
        help="a sequence file or folder open_sequence reads (arrays with an N axis: every sequence; "
        "a folder of sequences: every one), or a generator: digits:COUNT, storms:COUNT",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, help="results: .parquet or .csv")
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per forward pass (default: 8)")
    parser.add_argument("--seed", type=int, default=0, help="generator seed (default: 0)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (torchrun: per rank)")
    parser.add_argument("--lo", type=float, default=0.1, help="a gate below lo is saturated low")
    parser.add_argument("--hi", type=float, default=0.9, help="a gate above hi is saturated high")
    parser.add_argument("--eps", type=float, default=1e-3, help="|dH| below eps counts as still")
    parser.add_argument("--fast", action="store_true", help="bf16 autocast where the device has bf16")
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls/convolutions (CUDA Ampere+)")
    parser.add_argument(
        "--cuda-graph", action="store_true", help="replay each batch's rollout with probes as one CUDA graph"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    add_fit_flag(parser)
    add_config_flags(parser)
    parser.set_defaults(run=run)


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, 0
    return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0))


def run(args: argparse.Namespace) -> int:
    import torch
    import torch.distributed as dist

    from mimviewer import sweep
    from mimviewer.inference import pick_device

    if args.batch_size < 1:
        raise ShapeError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0 <= args.lo < args.hi <= 1:
        raise ShapeError(f"need 0 <= --lo < --hi <= 1, got lo={args.lo}, hi={args.hi}")
    if args.output.suffix.lower() not in sweep.OUTPUT_SUFFIXES:
        raise MimviewerError(f"{args.output}: results are written as .parquet or .csv")
    rank, world, local = _distributed()
    device = pick_device(args.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _sweep(args, device, rank, world)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _sweep(args: argparse.Namespace, device: torch.device, rank: int, world: int) -> int:
    import torch.distributed as dist

    from mimviewer import sweep
    from mimviewer.accel import device_memory_errors, fast_note, set_tf32
    from mimviewer.checkpoints import load_checkpoint
    from mimviewer.commands.predict import config_overrides

    def say(text: str) -> None:
        if rank == 0:
            print(f"mimviewer: {text}", file=sys.stderr)

    for note in (set_tf32(args.tf32, device), fast_note(device) if args.fast else None):
        if note:
            say(note)
    fast = args.fast and fast_note(device) is None
    loaded = load_checkpoint(
        args.checkpoint, config_file=args.config, overrides=config_overrides(args), device=device
    )
    cfg = loaded.config
    dataset = sweep.open_dataset(
        args.data,
        channels=cfg.channels,
        size=(cfg.height, cfg.width),
        length=cfg.pre + cfg.aft,
        seed=args.seed,
        fit=args.fit,
    )
    options = sweep.SweepOptions(args.batch_size, args.lo, args.hi, args.eps, fast, args.cuda_graph)
    identity = sweep.checkpoint_identity(Path(args.checkpoint))
    manifest = sweep.manifest(dataset, identity, options, cfg.pre, cfg.aft, args.fit)
    problem = [sweep.prepare_parts(args.output, manifest) if rank == 0 else None]
    if world > 1:
        dist.broadcast_object_list(problem, src=0)  # every rank stops on rank 0's objection
    if problem[0]:
        raise MimviewerError(problem[0])
    done_before = sum(
        sweep.chunk_path(args.output, c).is_file()
        for c in range(len(sweep.chunks_of(dataset.count, args.batch_size)))
    )
    if done_before:
        say(f"resuming: {done_before} chunk(s) already done in {sweep.parts_dir(args.output)}")
    label = f"sweep {Path(dataset.name).name}" + (f" ({world} ranks)" if world > 1 else "")
    progress = sweep.Progress(dataset.count, label) if rank == 0 and not args.quiet else None
    notes: list[str] = []
    with device_memory_errors(f"sweep of {args.checkpoint}", device, "try a smaller --batch-size"):
        mine = sweep.sweep(
            loaded,
            dataset,
            args.output,
            options,
            device=device,
            checkpoint_identity=identity,
            rank=rank,
            world=world,
            progress=progress,
            notes=notes,
        )
    for note in notes:
        say(note)
    parts = [mine]
    if world > 1:
        gathered = [None] * world if rank == 0 else None
        dist.gather_object(mine, gathered, dst=0)
        parts = gathered or []
    if rank == 0:
        rows = sweep.assemble(parts)
        sweep.write_table(args.output, rows, manifest, inputs=(args.checkpoint, args.data))
        sweep.remove_parts(args.output)
        print(
            f"wrote {args.output}: {len(rows)} sequences x {len(rows[0])} columns "
            f"({cfg.arch}, {dataset.identity['dataset']}, on {device}"
            + (f" x {world} ranks" if world > 1 else "")
            + ")"
        )
    if world > 1:
        dist.barrier()
    return 0
