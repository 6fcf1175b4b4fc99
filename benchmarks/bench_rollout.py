"""Rollout speed: mimviewer's models against OpenSTL's reference implementation.

Both run with identical weights (ours copied into OpenSTL's modules by key name, which is
possible because our checkpoint keys follow OpenSTL), on the same frames, in
``torch.inference_mode``. Ours is timed through the product's path, ``inference.rollout``
(patchify, steps, frames to the host); the reference through what OpenSTL's test step runs
(reshape_patch, ``model(frames, mask, return_loss=False)``, back to the host). A third column
times ours with every probe on (the full Trace). Timings are interleaved (ours, reference,
ours+probes per repeat) so that a busy machine slows all three alike; the median is reported.
``--fast`` columns time ours with every probe on under bf16 autocast (``predict --fast``)
and give its largest error against our float32 rollout; on CUDA a ``--cuda-graph`` column
times the same probed float32 rollout replayed as one CUDA graph.

    .venv/bin/python benchmarks/bench_rollout.py                 # CPU, small and realistic
    .venv/bin/python benchmarks/bench_rollout.py --device cuda --repeats 20
    .venv/bin/python benchmarks/bench_rollout.py --models mim --configs issue --threads 1 --clock cpu

OpenSTL's source is read from ``--openstl`` (default /tmp/openstl); its package
``__init__`` files pull in many extra libraries, so only the model and module files are
imported, under stub packages (tools/openstl_reference.py). Without the checkout the
reference columns are skipped.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
for folder in (REPO, REPO / "tools"):  # tools/: the shared OpenSTL loader
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from openstl_reference import DEFAULT_ROOT, OpenSTLNotFoundError, load_openstl  # noqa: E402

from mimviewer.accel import set_tf32  # noqa: E402
from mimviewer.inference import bf16_supported, pick_device, rollout  # noqa: E402
from mimviewer.nets import create_model, list_models  # noqa: E402
from mimviewer.trace import ProbeSpec  # noqa: E402

# the registry names timed against OpenSTL by default
REFERENCE = ("convlstm", "predrnn", "mim")


@dataclass(frozen=True)
class BenchConfig:
    name: str
    size: int  # frame height = width
    patch: int
    hidden: tuple[int, ...]
    filter_size: int
    pre: int
    aft: int
    batch: int

    def describe(self) -> str:
        layers = f"{len(self.hidden)}x{self.hidden[0]}"
        return (
            f"{self.size}x{self.size} p{self.patch} {layers} k{self.filter_size} "
            f"{self.pre}+{self.aft} B{self.batch}"
        )


CONFIGS = {
    "small": BenchConfig("small", 32, 4, (16, 16), 5, 5, 5, 2),
    "realistic": BenchConfig("realistic", 64, 4, (64, 64, 64, 64), 5, 10, 10, 4),
    # issue 12's MIM: 4x128, filter 5, patch 4, 64x64, 10->10, batch 2
    "issue": BenchConfig("issue", 64, 4, (128, 128, 128, 128), 5, 10, 10, 2),
}


def build_reference(root: Path, ours: torch.nn.Module, bench: BenchConfig) -> torch.nn.Module:
    cfg = ours.config
    try:
        openstl = load_openstl(cfg.arch, root=root)
    except OpenSTLNotFoundError as error:
        raise SystemExit(str(error)) from None
    reference = openstl.build(
        cfg.arch,
        num_hidden=cfg.num_hidden,
        pre=bench.pre,
        aft=bench.aft,
        channels=cfg.channels,
        height=cfg.height,
        width=cfg.width,
        patch_size=cfg.patch_size,
        filter_size=cfg.filter_size,
        layer_norm=cfg.layer_norm,
    )
    missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=False)
    unused = [re.compile(p) for p in type(ours).unused_checkpoint_keys]
    not_copied = [k for k in missing if not any(p.fullmatch(k) for p in unused)]
    if unexpected or not_copied:
        raise SystemExit(
            f"{cfg.arch}: keys differ from OpenSTL: ours only {unexpected}, theirs only {not_copied}"
        )
    return reference


def reference_rollout(reference: torch.nn.Module, frames: torch.Tensor, bench: BenchConfig) -> torch.Tensor:
    """What OpenSTL's test step runs: patchify channels-last, zero mask, model, back to frames."""
    b, t, c, h, w = frames.shape
    p = bench.patch
    # reshape_patch: (B, T, H, W, C) -> (B, T, H/p, W/p, p*p*C)
    x = frames.permute(0, 1, 3, 4, 2).reshape(b, t, h // p, p, w // p, p, c)
    x = x.permute(0, 1, 2, 4, 3, 5, 6).reshape(b, t, h // p, w // p, p * p * c)
    mask = torch.zeros(b, bench.aft - 1, h // p, w // p, p * p * c, device=frames.device)
    for module in reference.modules():
        if hasattr(module, "convlstm_c"):
            module.convlstm_c = None  # OpenSTL's MIM-S keeps state between calls; start clean
    out, _ = reference(x, mask, return_loss=False)  # (B, T-1, H', W', p*p*C)
    out = out.reshape(b, t - 1, h // p, w // p, p, p, c).permute(0, 1, 6, 2, 4, 3, 5)
    return out.reshape(b, t - 1, c, h, w)[:, -bench.aft :].cpu()


# -- timing --------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved_medians(
    runs: dict[str, Callable[[], object]], device: torch.device, warmup: int, repeats: int, clock: str
) -> dict[str, float]:
    """Median milliseconds of each run, the runs taking turns within every repeat.

    ``clock="cpu"`` measures this process's CPU time instead of wall time: on a CPU shared
    with other jobs it stays stable where wall time does not (with --threads 1 it equals
    the wall time an idle core would take).
    """
    now = time.process_time if clock == "cpu" else time.perf_counter
    times: dict[str, list[float]] = {name: [] for name in runs}
    for repeat in range(warmup + repeats):
        for name, run in runs.items():
            synchronize(device)
            start = now()
            run()
            synchronize(device)
            if repeat >= warmup:
                times[name].append((now() - start) * 1000)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_one(arch: str, bench: BenchConfig, args: argparse.Namespace, device: torch.device) -> dict:
    torch.manual_seed(0)
    model = create_model(
        arch,
        num_hidden=bench.hidden,
        patch_size=bench.patch,
        filter_size=bench.filter_size,
        height=bench.size,
        width=bench.size,
        pre=bench.pre,
        aft=bench.aft,
    )
    model.to(device).eval()
    frames = torch.rand(bench.batch, bench.pre + bench.aft, 1, bench.size, bench.size, device=device)
    runs: dict[str, Callable[[], object]] = {
        "ours": lambda: rollout(model, frames, bench.pre, bench.aft),
        "probes": lambda: rollout(model, frames, bench.pre, bench.aft, probes=ProbeSpec()),
    }
    row = {"model": arch, "config": bench.describe(), "max_diff": None, "bf16_diff": None, "fast_diff": None}
    if bf16_supported(device):  # opt-in bf16 autocast: the same rollout at lower precision
        runs["bf16"] = lambda: rollout(model, frames, bench.pre, bench.aft, amp=True)
        runs["fast"] = lambda: rollout(model, frames, bench.pre, bench.aft, amp=True, probes=ProbeSpec())
        exact = rollout(model, frames, bench.pre, bench.aft).prediction
        row["bf16_diff"] = float(
            abs(rollout(model, frames, bench.pre, bench.aft, amp=True).prediction - exact).max()
        )
        fast = rollout(model, frames, bench.pre, bench.aft, amp=True, probes=ProbeSpec()).prediction
        row["fast_diff"] = float(abs(fast - exact).max())
    if device.type == "cuda" and args.cuda_graph:
        graphed = rollout(model, frames, bench.pre, bench.aft, probes=ProbeSpec(), cuda_graph=True)
        if graphed.notes:
            print(f"  {arch}: {graphed.notes[0]}", file=sys.stderr)
        else:
            runs["graph"] = lambda: rollout(
                model, frames, bench.pre, bench.aft, probes=ProbeSpec(), cuda_graph=True
            )
    if args.openstl.is_dir() and arch in REFERENCE:
        reference = build_reference(args.openstl, model, bench).to(device).eval()

        def run_reference() -> torch.Tensor:
            with torch.inference_mode():
                return reference_rollout(reference, frames, bench)

        runs = {"reference": run_reference, **runs}
        ours = torch.from_numpy(rollout(model, frames, bench.pre, bench.aft).prediction)
        row["max_diff"] = (ours - run_reference()).abs().max().item()
    row.update(interleaved_medians(runs, device, args.warmup, args.repeats, args.clock))
    return row


def format_table(rows: list[dict]) -> str:
    lines = [
        "| model | config | ours ms/rollout | reference ms/rollout | ours / reference "
        "| ours + probes ms | probe overhead | max abs diff "
        "| ours bf16 ms | bf16 / reference | bf16 max abs diff "
        "| probes / reference | fast + probes ms | fast + probes / reference | fast max abs diff "
        "| cuda graph + probes ms |",
        "| --- | --- |" + " ---: |" * 14,
    ]
    for r in rows:
        ref = r.get("reference")
        ref_cells = (f"{ref:.1f}", f"{r['ours'] / ref:.2f}") if ref else ("n/a", "n/a")
        diff = "n/a" if r["max_diff"] is None else f"{r['max_diff']:.1e}"
        bf16 = r.get("bf16")
        bf16_cells = (
            (f"{bf16:.1f}", f"{bf16 / ref:.2f}" if ref else "n/a", f"{r['bf16_diff']:.1e}")
            if bf16
            else ("n/a", "n/a", "n/a")
        )
        fast = r.get("fast")
        fast_cells = (
            (f"{fast:.1f}", f"{fast / ref:.2f}" if ref else "n/a", f"{r['fast_diff']:.1e}")
            if fast
            else ("n/a", "n/a", "n/a")
        )
        probes_ratio = f"{r['probes'] / ref:.2f}" if ref else "n/a"
        graph = f"{r['graph']:.1f}" if r.get("graph") else "n/a"
        lines.append(
            f"| {r['model']} | {r['config']} | {r['ours']:.1f} | {ref_cells[0]} | {ref_cells[1]} "
            f"| {r['probes']:.1f} | {100 * (r['probes'] / r['ours'] - 1):+.0f}% | {diff} "
            f"| {' | '.join(bf16_cells)} | {probes_ratio} | {' | '.join(fast_cells)} | {graph} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(REFERENCE),
        help="registry names (those without an OpenSTL twin: ours only)",
    )
    parser.add_argument("--configs", nargs="+", default=["small", "realistic"], choices=list(CONFIGS))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time, or process CPU time (shared CPUs)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--openstl", type=Path, default=DEFAULT_ROOT, help="OpenSTL source checkout")
    parser.add_argument("--tf32", action="store_true", help="TF32 matmuls/convolutions (CUDA Ampere+)")
    parser.add_argument(
        "--cuda-graph",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="on CUDA, also time the probed rollout replayed as one CUDA graph",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    note = set_tf32(args.tf32, device)
    if note:
        print(note)
    if not args.openstl.is_dir():
        print(f"OpenSTL source not found at {args.openstl}: timing ours only (pass --openstl PATH)")
    available = set(list_models())
    rows = []
    for arch in args.models:
        if arch not in available:
            print(f"skipping {arch}: not in mimviewer.nets yet")
            continue
        for name in args.configs:
            rows.append(bench_one(arch, CONFIGS[name], args, device))
            print(f"  done: {arch} {name}", file=sys.stderr)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{args.clock} clock, warm-up {args.warmup}, median of {args.repeats}"
        + (", TF32 on" if args.tf32 and device.type == "cuda" else "")
    )
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
