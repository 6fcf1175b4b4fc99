"""``mimviewer study``: forget-gate saturation and MIM signals of checkpoints on a held-out set."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mimviewer.errors import MimviewerError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "study",
        help="gate-saturation study: saturated forget gates per layer over the horizon, MIM signals",
        description="Roll checkpoints out over a held-out synthetic set with every probe and write "
        "saturation curves, MIM-N/MIM-S signal curves, heatmap grids (PNG) and saturation.json.",
    )
    p.add_argument(
        "models",
        nargs="+",
        help="bundled model names (e.g. predrnn_storms), checkpoint paths, or the .csv/.parquet "
        "tables of `mimviewer sweep` (the study over a whole test set)",
    )
    p.add_argument(
        "--data", choices=("digits", "storms"), help="held-out data (default: what the model was trained on)"
    )
    p.add_argument("--sequences", type=int, default=16, help="held-out sequences")
    p.add_argument(
        "--aft",
        type=int,
        help="prediction steps (default: the model's trained horizon; more runs on autoregressively)",
    )
    p.add_argument("--seed", type=int, help="generator seed (default: the model cards' test seed)")
    p.add_argument("--lo", type=float, default=0.1, help="a gate below lo is saturated low")
    p.add_argument("--hi", type=float, default=0.9, help="a gate above hi is saturated high")
    p.add_argument("--out", type=Path, default=Path("docs/figures"), help="folder for figures and numbers")
    p.set_defaults(run=run)


def resolve(model: str) -> tuple[str, Path]:
    from mimviewer.paths import bundled_models_dir

    path = Path(model)
    if path.suffix or path.exists():
        return path.stem, path
    bundled = bundled_models_dir() / f"{model}.safetensors"
    if not bundled.is_file():
        raise MimviewerError(f"{model}: neither a file nor a bundled model (see models/)")
    return model, bundled


SWEEP_TABLES = (".csv", ".parquet")


def run_sweeps(args: argparse.Namespace) -> int:
    """The study over whole data sets, from sweep tables (no rollout: the sweep did it)."""
    from mimviewer.study import study_sweep, write_sweep_study
    from mimviewer.sweep import read_table

    results = [study_sweep(Path(table).stem, read_table(table)) for table in args.models]
    written = write_sweep_study(results, args.out)
    print(json.dumps({k: str(v) for k, v in written.items()}, indent=1))
    return 0


def run(args: argparse.Namespace) -> int:
    from mimviewer.checkpoints import load_checkpoint

    tables = [Path(m).suffix.lower() in SWEEP_TABLES for m in args.models]
    if any(tables):
        if not all(tables):
            raise MimviewerError("give either sweep tables (.csv/.parquet) or models, not both")
        return run_sweeps(args)
    from mimviewer.limits import check_flag, check_memory
    from mimviewer.study import study_model, write_study
    from mimviewer.train import TEST_SEED, TrainConfig, synthetic_frames

    check_flag(args.sequences, "--sequences", 1, 10_000)
    check_flag(args.lo, "--lo", 0.0, 1.0)
    check_flag(args.hi, "--hi", 0.0, 1.0)
    check_flag(args.seed, "--seed", 0, 2**62)
    if not args.lo < args.hi:
        raise MimviewerError(f"--lo ({args.lo:g}) must be below --hi ({args.hi:g})")

    results = []
    for model in args.models:
        name, path = resolve(model)
        loaded = load_checkpoint(path)
        data = args.data
        if data is None:
            if "train" not in loaded.metadata:
                raise MimviewerError(f"{path}: no training recipe in the file; say --data digits or storms")
            data = TrainConfig.from_json(loaded.metadata["train"]).data
        cfg = loaded.config
        seed = TEST_SEED if args.seed is None else args.seed
        aft = cfg.aft if args.aft is None else args.aft
        if aft < 1:
            raise MimviewerError(f"--aft must be >= 1, got {aft}")
        check_flag(aft, "--aft", 1, 10_000)
        check_memory(
            args.sequences * (cfg.pre + aft) * cfg.height * cfg.height * 4 * 2,
            f"{path}: {args.sequences} held-out sequences of {cfg.pre}+{aft} frames "
            f"of {cfg.height}x{cfg.height}",
            advice="lower --sequences or --aft",
        )
        frames = synthetic_frames(data, args.sequences, cfg.pre + aft, cfg.height, seed)
        results.append(study_model(name, loaded, frames, lo=args.lo, hi=args.hi, aft=aft))
    written = write_study(results, args.out)
    print(json.dumps({k: str(v) for k, v in written.items()}, indent=1))
    return 0
