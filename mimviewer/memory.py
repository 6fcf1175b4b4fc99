"""How much memory a rollout's trace and state take, and the budget for kept raw tensors.

A reduced trace is small by design: per quantity and step, four (B, H', W') maps and six
numbers per sequence (a 20-step, 4-layer, 128-channel MIM on 64x64 frames with patch 4:
about 6.8 MB per sequence, ``benchmarks/bench_memory.py``). Raw tensors are C times larger
per quantity, so keeping them (``ProbeSpec.keep_raw``) is checked against a budget *before*
the rollout starts, together with the rollout's own state, which for E3D-LSTM includes the
recall history (every past C of every layer) that grows with the number of steps.

Sizes come from a shape-only run of the same architecture on torch's ``meta`` device: no
arithmetic, no memory, exact shapes for every quantity of every layer and step. Its shape
functions are Python, about a second for a 4-layer model, so the budget check first tries a
generous bound that needs no run (every quantity at the widest layer's channels, E3D-LSTM's
clip frames folded in, its recall history at full capacity) and sizes exactly only when the
bound does not fit; exact sizes are cached per config, probes, batch and steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch

from mimviewer.errors import MimviewerError
from mimviewer.trace import MAP_REDUCTIONS, STAT_NAMES, Probe, ProbeSpec, key

RAW_BUDGET_BYTES = 256 * 2**20  # kept raw tensors + rollout state, per rollout
MIB = 2**20


class MemoryBudgetError(MimviewerError):
    """Keeping raw tensors would take more memory than the budget allows."""


class _ShapeProbe(Probe):
    """Counts, per trace key, the elements one sequence records at every step."""

    enabled = True

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self.elements: dict[str, int] = {}  # key -> elements per sequence of one step
        self.spatial: dict[str, int] = {}  # key -> H'*W' (or units) of one map
        self.steps: dict[str, set[int]] = {}  # key -> the steps that record it
        self.t = 0

    def begin_step(self, t: int) -> None:
        self.t = t

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        names = [name, "dH"] if name == "H" else [name]
        for recorded in names:
            if self.spec.wants(layer, recorded):
                k = key(layer, recorded)
                self.elements[k] = value[0].numel()
                self.spatial[k] = value[0, 0].numel()
                self.steps.setdefault(k, set()).add(self.t)


def _tensors(tree: Any) -> list[torch.Tensor]:
    if isinstance(tree, torch.Tensor):
        return [tree]
    if isinstance(tree, (list, tuple)):
        return [t for item in tree for t in _tensors(item)]
    if isinstance(tree, dict):
        return [t for item in tree.values() for t in _tensors(item)]
    return []


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one rollout of ``batch`` sequences (float32 trace; the state in the model's dtype)."""

    reduced: int  # the Trace's maps and stats
    raw: int  # every recorded tensor, if kept
    state: int  # the recurrent state at the end (E3D-LSTM: including the recall history)
    # key -> steps that record it (MIM-N has no step 0; E3D-LSTM rests between window rebuilds)
    recorded_steps: dict[str, frozenset[int]] = field(default_factory=dict)

    @property
    def raw_and_state(self) -> int:
        return self.raw + self.state


def estimate(model: torch.nn.Module, spec: ProbeSpec, batch: int, pre: int, aft: int) -> MemoryEstimate:
    """Sizes from a shape-only rollout of the same architecture on the meta device (cached)."""
    return _estimate(model.config.to_json(), spec, batch, pre, aft)


def upper_bound(model: torch.nn.Module, spec: ProbeSpec, batch: int, pre: int, aft: int) -> int:
    """Bytes that raw tensors plus state cannot exceed, from the config alone (no run): every
    quantity every step at the widest layer, x the clip length for E3D-LSTM, plus 16 state
    tensors per layer and the recall history at capacity."""
    cfg = model.config
    clip = getattr(model, "window_length", 1)
    cells = cfg.grid_height * cfg.grid_width
    per_step = sum(len(model.quantities(layer)) + 1 for layer in range(cfg.num_layers))
    widest = max(max(cfg.num_hidden), cfg.patch_channels) * clip * cells * 4 * batch
    capacity = getattr(model, "history_capacity", lambda steps: 0)(pre + aft - 1)
    history = capacity * sum(cfg.num_hidden) * 4 * batch
    return (pre + aft - 1) * per_step * widest + 16 * cfg.num_layers * widest + history


@lru_cache(maxsize=32)
def _estimate(config_json: str, spec: ProbeSpec, batch: int, pre: int, aft: int) -> MemoryEstimate:
    from mimviewer.nets import create_model
    from mimviewer.nets.config import ModelConfig

    cfg = ModelConfig.from_json(config_json)
    with torch.device("meta"):
        twin = create_model(cfg)
    last: list[Any] = [None]
    step = twin.step

    def remember(x: torch.Tensor, state: Any, probe: Probe) -> tuple[torch.Tensor, Any]:
        y, last[0] = step(x, state, probe)
        return y, last[0]

    twin.step = remember  # generate() calls self.step: keep the final state to weigh it
    probe = _ShapeProbe(spec)
    frames = torch.empty((batch, pre, cfg.channels, cfg.height, cfg.width), device="meta")
    steps = pre + aft - 1
    with torch.inference_mode():
        for _ in twin.generate(frames, pre, aft, probe=probe):
            pass
    reduced = sum(
        4 * batch * steps * (len(MAP_REDUCTIONS) * probe.spatial[k] + len(STAT_NAMES)) for k in probe.elements
    )
    raw = sum(4 * batch * steps * n for n in probe.elements.values())  # by step, NaN where not computed
    # one count per storage: E3D's recall keys are views of their buffer
    storages = {t.untyped_storage()._cdata: t.untyped_storage().nbytes() for t in _tensors(last[0])}
    state = sum(storages.values())
    recorded = {k: frozenset(steps) for k, steps in probe.steps.items()}
    return MemoryEstimate(reduced=reduced, raw=raw, state=state, recorded_steps=recorded)


def check_raw_budget(
    model: torch.nn.Module, spec: ProbeSpec, batch: int, pre: int, aft: int, budget: int | None
) -> MemoryEstimate | None:
    """Raise :class:`MemoryBudgetError` when kept raw tensors plus the state exceed ``budget`` bytes."""
    if not spec.keep_raw or budget is None or upper_bound(model, spec, batch, pre, aft) <= budget:
        return None
    sizes = estimate(model, spec, batch, pre, aft)
    if sizes.raw_and_state > budget:
        arch = model.config.arch
        recall = " incl. E3D-LSTM's recall history" if arch == "e3d_lstm" else ""
        raise MemoryBudgetError(
            f"keeping raw tensors of {arch} for {batch} sequence(s) x {pre + aft - 1} steps needs "
            f"{sizes.raw / MIB:.0f} MiB + {sizes.state / MIB:.0f} MiB of rollout state{recall}, over the "
            f"{budget / MIB:.0f} MiB budget: record fewer quantities or layers, use fewer sequences or "
            f"steps, or keep reductions only"
        )
    return sizes


def fits_budget(model: torch.nn.Module, spec: ProbeSpec, batch: int, pre: int, aft: int, budget: int) -> bool:
    """Whether kept raw tensors plus the state fit ``budget`` (the bound first, exact sizes if needed)."""
    if upper_bound(model, spec, batch, pre, aft) <= budget:
        return True
    return estimate(model, spec, batch, pre, aft).raw_and_state <= budget
