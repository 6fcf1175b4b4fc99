"""Scale-out (issue 12, target 5): what a sweep costs over plain prediction of the same data.

``mimviewer sweep``'s engine (every gate probed, per-sequence metrics, gate statistics, one
atomic chunk file per batch) against the baseline of drawing the same sequences and rolling
them out without probes, batch by batch (what ``predict`` does), timed in the same run on the
same checkpoint. Prints sequences/s of both and the ratio of their times.

    .venv/bin/python benchmarks/bench_sweep.py --sequences 32 --batch-size 8
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mimviewer import sweep  # noqa: E402
from mimviewer.checkpoints import load_checkpoint  # noqa: E402
from mimviewer.inference import rollout  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(REPO / "models" / "mim_digits.safetensors"))
    parser.add_argument("--sequences", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    loaded = load_checkpoint(args.checkpoint)
    cfg = loaded.config
    dataset = sweep.open_dataset(
        f"digits:{args.sequences}",
        channels=cfg.channels,
        size=(cfg.height, cfg.width),
        length=cfg.pre + cfg.aft,
    )
    chunks = sweep.chunks_of(dataset.count, args.batch_size)
    device = torch.device("cpu")

    start = time.process_time()
    for indices in chunks:
        frames = np.stack([dataset.read(i) for i in indices])
        rollout(loaded.model, frames[:, : cfg.pre], cfg.pre, cfg.aft, device=device)
    baseline = time.process_time() - start

    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder, "results.csv")
        options = sweep.SweepOptions(batch_size=args.batch_size)
        identity = sweep.checkpoint_identity(Path(args.checkpoint))
        start = time.process_time()
        sweep.prepare_parts(output, sweep.manifest(dataset, identity, options, cfg.pre, cfg.aft))
        parts = sweep.sweep(loaded, dataset, output, options, device=device, checkpoint_identity=identity)
        rows = sweep.assemble([parts])
        sweep.write_table(output, rows, {})
        swept = time.process_time() - start
    print(
        f"{cfg.arch} {'x'.join(map(str, cfg.num_hidden))} {cfg.height}x{cfg.width} {cfg.pre}+{cfg.aft}, "
        f"{args.sequences} sequences, batch {args.batch_size}, {torch.get_num_threads()} thread(s), CPU time"
    )
    print("| run | s | sequences/s | time / baseline |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| draw + rollout, no probes (baseline) | {baseline:.2f} | {args.sequences / baseline:.1f} | 1.00 |"
    )
    print(
        f"| sweep: every gate, metrics, chunk files, table ({len(rows[0])} columns) | {swept:.2f} "
        f"| {args.sequences / swept:.1f} | {swept / baseline:.2f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
