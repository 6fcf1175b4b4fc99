"""Memory of a traced rollout (issue 12, target 6): the reduced trace against the 10 MB goal.

Issue 12's MIM (4 layers x 128, filter 5, patch 4, 64x64 frames) rolled out over 20 steps
with every probe on, one sequence: the bytes of the reduced Trace (maps + stats: what the
window and the exports hold) measured on a real rollout, against the goal (10 MB) and
against what keeping every raw tensor would take (``ProbeSpec(keep_raw=True)``, estimated
by a shape-only run on the meta device, which tests/test_engine.py checks equals the kept
bytes). Then the raw-tensor budget: E3D-LSTM 4x128 with its recall history (every past C of
every layer), the part of its state that grows with the steps.

    .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mimviewer.inference import rollout
from mimviewer.memory import RAW_BUDGET_BYTES, MemoryBudgetError, estimate
from mimviewer.nets import create_model
from mimviewer.trace import ProbeSpec

GOAL_BYTES = 10e6
ISSUE = dict(num_hidden=(128,) * 4, filter_size=5, patch_size=4, height=64, width=64, pre=10, aft=11)


def main() -> int:
    torch.set_num_threads(1)
    model = create_model("mim", **ISSUE)
    start = time.perf_counter()
    trace = rollout(model, torch.rand(1, 10, 1, 64, 64), 10, 11, probes=ProbeSpec()).trace
    seconds = time.perf_counter() - start
    reduced = sum(trace.maps[k].nbytes + trace.stats[k].nbytes for k in trace.maps)
    raw = estimate(model, ProbeSpec(keep_raw=True), 1, 10, 11)
    print(f"MIM 4x128 k5 p4 64x64, {trace.steps} steps, {len(trace.maps)} traced quantities, 1 sequence")
    print("| measure | bytes | / 10 MB goal | / raw tensors |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| reduced trace (measured) | {reduced:,} | {reduced / GOAL_BYTES:.2f} | {reduced / raw.raw:.3f} |"
    )
    print(f"| raw tensors, if kept (estimated) | {raw.raw:,} | {raw.raw / GOAL_BYTES:.2f} | 1.000 |")
    print(f"| rollout state | {raw.state:,} | {raw.state / GOAL_BYTES:.2f} | {raw.state / raw.raw:.3f} |")
    print(f"(rollout with every probe: {seconds:.1f} s wall on this machine)")
    verdict = "met" if reduced < GOAL_BYTES else "missed"
    print(f"reduced trace {reduced / 1e6:.2f} MB: goal < 10 MB {verdict}")
    e3d = create_model("e3d_lstm", **ISSUE)
    sizes = estimate(e3d, ProbeSpec(keep_raw=True), 1, 10, 11)
    history = e3d.history_capacity(20) * sum(e3d.config.num_hidden) * 4
    print(
        f"E3D-LSTM 4x128, 20 steps, raw kept: raw {sizes.raw / 2**20:.0f} MiB + state "
        f"{sizes.state / 2**20:.0f} MiB (recall history {history / 2**20:.0f} MiB) "
        f"vs budget {RAW_BUDGET_BYTES / 2**20:.0f} MiB"
    )
    try:
        rollout(e3d, torch.rand(1, 10, 1, 64, 64), 10, 11, probes=ProbeSpec(keep_raw=True))
        print("within the budget")
    except MemoryBudgetError as error:
        print(f"refused before the first step: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
