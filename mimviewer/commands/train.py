"""``mimviewer train``: train any registered architecture, resumable (see mimviewer/train.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mimviewer.access import check_readable
from mimviewer.errors import MimviewerError
from mimviewer.limits import MAX_CONFIG_BYTES, check_flag


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a model on synthetic digits/storms or on a sequence file",
        description="Train a recurrent video-prediction model; writes RUN_DIR/model.safetensors, "
        "train_state.pt (for --resume) and log.jsonl.",
    )
    p.add_argument("--arch", default="convlstm", help="registry name (convlstm, predrnn, mim, ...)")
    p.add_argument("--data", default="digits", help="digits, storms, or a sequence file/folder")
    p.add_argument("--out", type=Path, help="run folder (default runs/ARCH-DATA)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue the run in RUN_DIR")
    p.add_argument("--num-hidden", help="hidden sizes per layer, e.g. 32,32")
    p.add_argument("--filter-size", type=int)
    p.add_argument("--patch-size", type=int)
    p.add_argument(
        "--layer-norm", action="store_true", help="LayerNorm after each conv (lstm/lstmp: of each gate)"
    )
    p.add_argument(
        "--peephole",
        action="store_true",
        help="convlstm, lstm, lstmp: peepholes from the cell memory C to the gates",
    )
    p.add_argument(
        "--cifg", action="store_true", help="lstm, lstmp: coupled input and forget gate, i = 1 - f"
    )
    p.add_argument("--pre", type=int, help="context frames (default 10)")
    p.add_argument("--aft", type=int, help="predicted frames (default 10)")
    p.add_argument("--size", type=int, default=64, help="frame size of the synthetic data")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--schedule", default="cosine", choices=("cosine", "onecycle", "constant"))
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip (0: off)")
    p.add_argument(
        "--loss",
        default="mse",
        choices=("mse", "mse+mae", "balanced"),
        help="mse+mae: L2 + L1 (E3D-LSTM); balanced: HKO-7 B-MSE + B-MAE (radar in dBZ)",
    )
    p.add_argument("--sampling", default="linear", choices=("linear", "reverse", "none"))
    p.add_argument("--sampling-stop", type=float, default=0.6, help="fraction of the run")
    p.add_argument("--aux-weight", type=float, default=0.1, help="weight of the auxiliary loss")
    p.add_argument("--val-every", type=int, default=100)
    p.add_argument("--val-sequences", type=int, default=16)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--stop-after", type=int, help="stop this session after N steps (resume later)")
    p.set_defaults(run=run)


def model_overrides(args: argparse.Namespace) -> dict:
    overrides: dict = {}
    if args.num_hidden:
        try:
            overrides["num_hidden"] = tuple(int(n) for n in args.num_hidden.split(","))
        except ValueError as exc:
            raise MimviewerError(f"--num-hidden wants sizes like 32,32, got {args.num_hidden!r}") from exc
    for name in ("filter_size", "patch_size", "pre", "aft"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    if args.layer_norm:
        overrides["layer_norm"] = True
    from mimviewer.train import VARIANT_FLAGS

    options = {name: True for name in VARIANT_FLAGS if getattr(args, name)}
    if options:
        overrides["options"] = options
    return overrides


def run(args: argparse.Namespace) -> int:
    from mimviewer.train import TrainConfig, train

    check_flag(args.threads, "--threads", 1, 1024)
    check_flag(args.stop_after, "--stop-after", 0, 10**9)
    if args.threads:
        import torch  # here, not at the top: every command's parser is built at start-up

        torch.set_num_threads(args.threads)
    if args.resume:
        train_json = args.resume / "train.json"
        if not train_json.is_file():
            raise MimviewerError(f"{args.resume}: not a run folder (no train.json)")
        size = check_readable(train_json, MimviewerError, "train.json")
        if size > MAX_CONFIG_BYTES:
            raise MimviewerError(f"{train_json}: {size:,} bytes is not a training recipe")
        try:
            text = train_json.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise MimviewerError(f"{train_json}: not a training recipe (binary, not UTF-8 text)") from None
        cfg = TrainConfig.from_json(text, source=str(train_json))
        run_dir = args.resume
    else:
        cfg = TrainConfig(
            arch=args.arch,
            model=model_overrides(args),
            data=args.data,
            size=args.size,
            steps=args.steps,
            batch_size=args.batch_size,
            lr=args.lr,
            weight_decay=args.weight_decay,
            schedule=args.schedule,
            warmup=args.warmup,
            clip=args.clip,
            loss=args.loss,
            sampling=args.sampling,
            sampling_stop=args.sampling_stop,
            aux_weight=args.aux_weight,
            val_every=args.val_every,
            val_sequences=args.val_sequences,
            checkpoint_every=args.checkpoint_every,
            seed=args.seed,
        )
        run_dir = args.out or Path("runs") / f"{args.arch}-{Path(args.data).stem}"
        if (run_dir / "train_state.pt").exists():
            raise MimviewerError(f"{run_dir} already holds a run; use --resume {run_dir} or another --out")
    result = train(cfg, run_dir, device=args.device, resume=bool(args.resume), stop_after=args.stop_after)
    print(json.dumps({"run_dir": str(result.run_dir), "step": result.step}))
    return 0
