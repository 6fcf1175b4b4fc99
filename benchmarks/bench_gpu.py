"""Everything GPU-related in one short run (issue 12, target 4); ``benchmarks/gpu.sh`` calls it.

On issue 12's MIM (4 layers x 128, filter 5, patch 4, 64x64 frames, 10 -> 10), with the same
random weights in ours and in OpenSTL's own classes (read from a checkout, ``--openstl``,
default /tmp/openstl or $OPENSTL_DIR; without it the reference rows say so and are skipped):

1. batch-1 latency per sequence with every probe on: ours eager, ours as one CUDA graph,
   ours as a CUDA graph under bf16, against OpenSTL eager float32 without probes
   (goal: <= 5 ms with probes);
2. batch-64 throughput in sequences/s for float32, TF32 and bf16: OpenSTL eager (no probes),
   ours eager (no probes), ours eager with probes, ours CUDA graph with probes
   (goal: >= 1500 sequences/s);
3. an out-of-memory provocation: the allocator is capped to a sliver of the GPU and a large
   batch is run through ``mimviewer predict``; it must exit with status 2 and one line
   (``DeviceMemoryError``), and the GPU must run a small rollout afterwards.

Timing: CUDA events around each call, warm-up first, calls interleaved across variants,
median reported; every ratio is against the reference measured in the same run.
``--device cpu --tiny`` runs the same code on a tiny model (tests/test_bench_gpu.py), with
the CUDA-only parts reported as skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "tools", REPO / "benchmarks"):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from bench_rollout import BenchConfig, build_reference, reference_rollout  # noqa: E402
from openstl_reference import openstl_root  # noqa: E402

from mimviewer.accel import autocast, bf16_supported, set_tf32  # noqa: E402
from mimviewer.inference import rollout  # noqa: E402
from mimviewer.nets import create_model  # noqa: E402
from mimviewer.trace import ProbeSpec  # noqa: E402

ISSUE = BenchConfig("issue", 64, 4, (128, 128, 128, 128), 5, 10, 10, 1)
TINY = BenchConfig("tiny", 16, 2, (8, 8), 3, 3, 3, 1)
LATENCY_GOAL_MS = 5.0
THROUGHPUT_GOAL = 1500.0


def timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Milliseconds of one call: CUDA events on a GPU, perf_counter on a CPU."""

    def run(fn: Callable[[], object]) -> float:
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            return start.elapsed_time(end)
        begin = time.perf_counter()
        fn()
        return (time.perf_counter() - begin) * 1000

    return run


def medians(runs: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int) -> dict:
    time_one = timer(device)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(warmup + repeats):
        for name, fn in runs.items():
            elapsed = time_one(fn)
            if repeat >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


def variants(model, reference, frames, bench: BenchConfig, device, *, precision: str, probes_only: bool):
    """The calls to time at one precision: name -> callable (reference first, when there is one)."""
    amp = precision == "bf16"
    runs: dict[str, Callable[[], object]] = {}
    if reference is not None:

        def run_reference() -> object:
            with torch.inference_mode(), autocast(device, amp):
                return reference_rollout(reference, frames, bench)

        runs["OpenSTL eager"] = run_reference
    if not probes_only:
        runs["ours eager"] = lambda: rollout(model, frames, bench.pre, bench.aft, amp=amp)
    runs["ours eager + probes"] = lambda: rollout(
        model, frames, bench.pre, bench.aft, amp=amp, probes=ProbeSpec()
    )
    if device.type == "cuda":
        graphed = rollout(model, frames, bench.pre, bench.aft, amp=amp, probes=ProbeSpec(), cuda_graph=True)
        if graphed.notes:
            print(f"  {precision}: {graphed.notes[0]}")
        else:
            runs["ours CUDA graph + probes"] = lambda: rollout(
                model, frames, bench.pre, bench.aft, amp=amp, probes=ProbeSpec(), cuda_graph=True
            )
    return runs


def precisions(device: torch.device) -> list[str]:
    names = ["fp32"]
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0):
        names.append("tf32")
    if bf16_supported(device):
        names.append("bf16")
    return names


def report(title: str, results: dict[str, float], batch: int, unit: str) -> None:
    reference = results.get("OpenSTL eager")
    print(f"\n{title}")
    print(f"| variant | ms per rollout | {unit} | time / OpenSTL eager (this precision, no probes) |")
    print("| --- | ---: | ---: | ---: |")
    for name, ms in results.items():
        value = ms / batch if unit == "ms per sequence" else batch * 1000 / ms
        ratio = f"{ms / reference:.2f}" if reference else "n/a"
        print(f"| {name} | {ms:.2f} | {value:.2f} | {ratio} |")


def out_of_memory(device: torch.device, bench: BenchConfig, model) -> bool:
    """Cap the allocator, run `mimviewer predict` with a big batch: one line, status 2, GPU still fine."""
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.cli import main

    print("\nout-of-memory provocation")
    if device.type != "cuda":
        print("  skipped: needs a CUDA device")
        return True
    import gc

    from mimviewer import accel

    accel._captured.clear()  # the CUDA graphs captured above hold their memory pools
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    # what this process holds now plus 384 MiB: room for the checkpoint, not for 512 sequences
    fraction = min(1.0, (torch.cuda.memory_reserved(device) + 384 * 2**20) / total)
    torch.cuda.set_per_process_memory_fraction(fraction, device)
    ok = False
    try:
        with tempfile.TemporaryDirectory() as folder:
            ckpt, data, out = Path(folder, "m.safetensors"), Path(folder, "x.npy"), Path(folder, "y.npy")
            save_checkpoint(ckpt, model)
            batch = 512
            frames = np.random.default_rng(0).random(
                (batch, bench.pre, 1, bench.size, bench.size), np.float32
            )
            np.save(data, frames)
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                status = main(["predict", str(ckpt), str(data), "-o", str(out), "--batch-size", str(batch)])
            lines = err.getvalue().strip().splitlines()
            print(f"  predict exit status {status}; stderr: {lines}")
            ok = status == 2 and len(lines) == 1 and "ran out of memory" in lines[0]
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        torch.cuda.empty_cache()
    small = torch.rand(1, bench.pre, 1, bench.size, bench.size, device=device)
    rollout(model, small, bench.pre, bench.aft, probes=ProbeSpec())
    print(f"  translated to one line: {'yes' if ok else 'NO'}; a small rollout runs afterwards: yes")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N (cpu: a dry run of the code)")
    parser.add_argument(
        "--openstl", type=Path, default=None, help="OpenSTL checkout (default $OPENSTL_DIR or /tmp/openstl)"
    )
    parser.add_argument("--batch", type=int, default=64, help="throughput batch (default 64)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--tiny", action="store_true", help="a tiny model instead of the issue's MIM (dry runs)"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU here: benchmarks/gpu.sh needs one (nothing was measured)")
        return 0
    root = openstl_root(args.openstl)
    base = TINY if args.tiny else ISSUE
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    print(f"torch {torch.__version__}; MIM {base.describe()}; OpenSTL expected at {root}")
    torch.manual_seed(0)
    model = (
        create_model(
            "mim",
            num_hidden=base.hidden,
            patch_size=base.patch,
            filter_size=base.filter_size,
            height=base.size,
            width=base.size,
            pre=base.pre,
            aft=base.aft,
        )
        .to(device)
        .eval()
    )
    reference = None
    if root.is_dir():
        reference = build_reference(root, model, base).to(device).eval()
    else:
        print(f"OpenSTL not found at {root}: reference rows skipped (clone OpenSTL there or set OPENSTL_DIR)")
    results_ok = True

    # 1. batch-1 latency with probes
    frames = torch.rand(
        1, base.pre + base.aft, 1, base.size, base.size, device=device
    )  # OpenSTL reads T frames
    runs = variants(model, reference, frames, base, device, precision="fp32", probes_only=True)
    if bf16_supported(device) and device.type == "cuda":
        bf16 = variants(model, None, frames, base, device, precision="bf16", probes_only=True)
        runs.update({f"{name} (bf16)": fn for name, fn in bf16.items()})
    latency = medians(runs, device, args.warmup, args.repeats)
    report("batch 1, latency per sequence (every probe on for ours)", latency, 1, "ms per sequence")
    best = min(v for k, v in latency.items() if "probes" in k)
    verdict = "met" if best <= LATENCY_GOAL_MS else "missed"
    print(f"best latency with probes: {best:.2f} ms (goal <= {LATENCY_GOAL_MS} ms: {verdict})")

    # 2. batch-64 throughput at each precision
    frames = torch.rand(args.batch, base.pre + base.aft, 1, base.size, base.size, device=device)
    best_throughput = 0.0
    for precision in precisions(device):
        set_tf32(precision == "tf32", device)
        runs = variants(model, reference, frames, base, device, precision=precision, probes_only=False)
        times = medians(runs, device, args.warmup, max(3, args.repeats // 4))
        report(f"batch {args.batch}, throughput, {precision}", times, args.batch, "sequences/s")
        ours = [args.batch * 1000 / ms for name, ms in times.items() if name.startswith("ours")]
        best_throughput = max(best_throughput, *ours)
    set_tf32(False, device)
    verdict = "met" if best_throughput >= THROUGHPUT_GOAL else "missed"
    print(f"best throughput: {best_throughput:.0f} sequences/s (goal >= {THROUGHPUT_GOAL:.0f}: {verdict})")

    # 3. out of memory
    results_ok &= out_of_memory(device, base, model)
    return 0 if results_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
