"""Per-step cost of the probes on the GUI path: reduce every recorded tensor, bring the step to the host.

The GUI streams each step to the host while the rollout runs. Before issue 11 every quantity
was reduced with ~15 small ops into its own buffers and copied to the host separately (two
synchronising copies per quantity: ~180 per step for a 4-layer MIM); now the reductions
write into one arena row per step and that row travels in one copy (pinned and
non-blocking on CUDA). Both run here on the tensors one real step of a 4-layer MIM records
(captured once), taking turns, on the same device:

    .venv/bin/python benchmarks/bench_probes.py --threads 1            # CPU, MIM 4x128 64x64 p4 B2
    .venv/bin/python benchmarks/bench_probes.py --device cuda --repeats 200

"before" is the previous recorder, kept below verbatim as the baseline (``BeforeRecorder``).
Printed: median (and p90) milliseconds per step of reduce + host transfer, the ratio
after / before, and the number of device-to-host copies per step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mimviewer.inference import pick_device  # noqa: E402
from mimviewer.nets import create_model  # noqa: E402
from mimviewer.trace import NO_PROBE, Probe, ProbeSpec, TraceRecorder  # noqa: E402


# -- the baseline: the recorder and the GUI's per-quantity copies as they were (commit b1577df) --------
@dataclass
class _Buffers:
    maps: torch.Tensor  # (steps, 4, B, *S): mean, low, high, channel
    stats: torch.Tensor  # (steps, B, 6)
    scratch: torch.Tensor
    raw: list[torch.Tensor] = field(default_factory=list)


class BeforeRecorder(Probe):
    enabled = True

    def __init__(self, spec: ProbeSpec, steps: int):
        self.spec, self.steps, self.t = spec, steps, 0
        self._buffers: dict[str, _Buffers] = {}
        self._previous_h: dict[int, torch.Tensor] = {}

    def begin_step(self, t: int) -> None:
        self.t = t

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        if name == "H" and self.spec.wants(layer, "dH"):
            previous = self._previous_h.get(layer)
            delta = value if previous is None else value - previous
            self._previous_h[layer] = value
            self._reduce(layer, "dH", delta)
        if self.spec.wants(layer, name):
            self._reduce(layer, name, value)

    @torch.no_grad()
    def _reduce(self, layer: int, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        k = f"{layer}/{name}"
        buffers = self._buffers.get(k)
        if buffers is None:
            batch, spatial = value.shape[0], value.shape[2:]
            buffers = _Buffers(
                maps=value.new_zeros((self.steps, 4, batch, *spatial)),
                stats=value.new_zeros((self.steps, batch, 6)),
                scratch=torch.empty_like(value),
            )
            self._buffers[k] = buffers
        spec, t = self.spec, self.t
        scratch = buffers.scratch
        maps = buffers.maps[t]
        torch.mean(value, 1, out=maps[0])
        torch.mean(torch.lt(value, spec.lo, out=scratch), 1, out=maps[1])
        torch.mean(torch.gt(value, spec.hi, out=scratch), 1, out=maps[2])
        maps[3] = value[:, min(spec.channel, value.shape[1] - 1)]
        means = maps[:3].flatten(2).mean(2)
        flat = value.flatten(1)
        still = torch.lt(torch.abs(value, out=scratch), spec.eps, out=scratch).flatten(1)
        stats = buffers.stats[t]
        stats[:, 0] = means[0]
        stats[:, 1] = flat.amin(1)
        stats[:, 2] = flat.amax(1)
        stats[:, 3] = means[1]
        stats[:, 4] = means[2]
        stats[:, 5] = still.mean(1)

    def host(self, t: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """What the GUI worker did per step: two copies per quantity (batch item 0)."""
        return {
            k: (b.maps[t][:, 0].cpu().numpy(), b.stats[t][0].cpu().numpy()) for k, b in self._buffers.items()
        }


# -- one real step's recorded tensors -----------------------------------------------------------
class Capture(Probe):
    """Keeps copies of what the cells record at one step."""

    enabled = True

    def __init__(self, step: int):
        self.step, self.t = step, 0
        self.values: list[tuple[int, str, torch.Tensor]] = []

    def begin_step(self, t: int) -> None:
        self.t = t

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        if self.t == self.step:
            self.values.append((layer, name, value.detach().clone()))


def capture_step(args: argparse.Namespace, device: torch.device) -> list[tuple[int, str, torch.Tensor]]:
    torch.manual_seed(0)
    model = create_model(
        "mim",
        num_hidden=(args.hidden,) * args.layers,
        filter_size=5,
        patch_size=4,
        height=args.size,
        width=args.size,
    ).eval()
    frames = torch.rand(args.batch, 3, 1, args.size, args.size)
    capture = Capture(step=1)  # step 1: every quantity (MIM-N included) is computed
    with torch.inference_mode():
        list(model.generate(frames, pre=3, aft=1, probe=capture))
    assert NO_PROBE is not capture
    return [(layer, name, value.to(device)) for layer, name, value in capture.values]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--size", type=int, default=64, help="frame height = width (patch 4)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=60, help="steps timed per path")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall or process CPU time")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    values = capture_step(args, device)
    steps = 19
    spec = ProbeSpec()
    now = time.process_time if args.clock == "cpu" else time.perf_counter

    before = BeforeRecorder(spec, steps)
    after = TraceRecorder(spec, steps)

    def run_before(t: int) -> int:
        before.begin_step(t)
        for layer, name, value in values:
            before.record(layer, name, value)
        host = before.host(t)
        return 2 * len(host) if device.type == "cuda" else 0  # on the CPU .cpu() copies nothing

    def run_after(t: int) -> int:
        after.begin_step(t)
        for layer, name, value in values:
            after.record(layer, name, value)
        after.host_step(t, 0)
        return 1 if device.type == "cuda" else 0

    times: dict[str, list[float]] = {"before": [], "after": []}
    copies = {"before": 0, "after": 0}
    with torch.inference_mode():
        for repeat in range(args.repeats + 3):  # 3 warm-up steps
            t = repeat % steps
            for name, run in (("before", run_before), ("after", run_after)):
                synchronize(device)
                start = now()
                copies[name] = run(t)
                synchronize(device)
                if repeat >= 3:
                    times[name].append((now() - start) * 1000)
    # both paths computed the same step
    check_t = (args.repeats + 2) % steps
    host = after.host_step(check_t, 0)
    for k, (maps, _) in before.host(check_t).items():
        np.testing.assert_allclose(host.maps[k][0], maps[0], rtol=1e-5, atol=1e-6)  # the mean map

    def p90(x: list[float]) -> float:
        return float(np.percentile(x, 90))

    quantities = len(after._slots)
    print(
        f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock; "
        f"MIM {args.layers}x{args.hidden}, {args.size}x{args.size} p4, batch {args.batch}: "
        f"{quantities} quantities per step (dH included), {len(values)} tensors recorded"
    )
    print("| path | ms per step (median) | p90 | device-to-host copies per step |")
    print("| --- | ---: | ---: | ---: |")
    for name in ("before", "after"):
        median = statistics.median(times[name])
        print(f"| {name} | {median:.2f} | {p90(times[name]):.2f} | {copies[name]} |")
    ratio = statistics.median(times["after"]) / statistics.median(times["before"])
    print(f"after / before: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
