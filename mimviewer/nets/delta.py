"""Delta inference: every recurrent product W·h_(t-1) computed as W·h_(t-2) + W·Δh with small Δh dropped.

The recurrent convolutions and matmuls have no bias, so they are linear: W·h = W·ref + W·(h - ref).
A delta network (Neil et al. 2017, "Delta Networks for Optimized Recurrent Network
Computation") keeps, per recurrent module, a reference input ``ref`` and the cached product
``W·ref``; each step it forms Δ = h - ref, sets the entries with |Δ| < eps to zero, adds
W·Δ to the cache and moves ``ref`` by the Δ it used (so dropped changes accumulate until they
exceed eps, and the error does not drift). Hardware that skips zero operands saves the
multiply-adds of the zeroed entries; :class:`DeltaModule` counts them.

With eps = 0 nothing is dropped and the result is the exact product up to float rounding.
Nothing here knows an architecture: each model names its recurrent modules
(:meth:`RecurrentModel.recurrent_modules`) and :func:`delta_mode` swaps them for wrappers
while a rollout runs, then puts the originals back.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import nn

from mimviewer.errors import ConfigError
from mimviewer.nets.base import RecurrentModel


@dataclass
class DeltaStats:
    """What one recurrent module skipped: per call, the step and the counts."""

    layer: int
    macs_per_entry: int  # multiply-adds one input entry costs (output channels x kernel size)
    steps: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)  # input entries whose Δ was zero after thresholding
    entries: list[int] = field(default_factory=list)  # input entries in total


class DeltaModule(nn.Module):
    """Wraps a bias-free linear module (Conv2d, Conv3d, Linear): y = y_prev + W·(Δ with |Δ| < eps zeroed)."""

    def __init__(self, inner: nn.Module, eps: float, stats: DeltaStats, clock: list[int]):
        super().__init__()
        if getattr(inner, "bias", None) is not None:
            raise ConfigError(f"delta inference needs a bias-free linear module, got {inner}")
        self.inner = inner
        self.eps = eps
        self.stats = stats
        self.clock = clock  # [current step], shared by all wrappers of one model
        self.reference: torch.Tensor | None = None  # the input the cache was computed from
        self.cached: torch.Tensor | None = None  # W·reference

    def reset(self) -> None:
        self.reference = self.cached = None

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if self.reference is None or self.reference.shape != h.shape:
            self.reference = torch.zeros_like(h)  # W·0 = 0: the zero state needs no product
        delta = h - self.reference
        kept = torch.where(delta.abs() >= self.eps, delta, torch.zeros_like(delta))  # eps = 0 keeps all
        product = self.inner(kept)
        self.cached = product if self.cached is None else self.cached + product
        self.reference = self.reference + kept
        self.stats.steps.append(self.clock[0])
        self.stats.skipped.append(int((kept == 0).sum()))
        self.stats.entries.append(kept.numel())
        return self.cached


class DeltaSession:
    """The wrappers of one model under :func:`delta_mode` and what they counted."""

    def __init__(self, model: RecurrentModel, eps: float):
        if not eps >= 0:
            raise ConfigError(f"delta eps must be >= 0, got {eps}")
        self.model = model
        self.eps = float(eps)
        self.clock = [0]
        self.stats: dict[str, DeltaStats] = {}
        self.wrappers: dict[str, DeltaModule] = {}
        for name, layer in model.recurrent_modules().items():
            inner = model.get_submodule(name)
            weight = inner.weight
            stats = DeltaStats(layer, weight.numel() // weight.shape[1])
            self.stats[name] = stats
            self.wrappers[name] = DeltaModule(inner, self.eps, stats, self.clock)

    def reset(self) -> None:
        """Forget caches and counts: a new rollout starts from the zero state."""
        self.clock[0] = 0
        for name, wrapper in self.wrappers.items():
            wrapper.reset()
            layer, macs = self.stats[name].layer, self.stats[name].macs_per_entry
            self.stats[name] = wrapper.stats = DeltaStats(layer, macs)


def _swap(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


@contextmanager
def delta_mode(model: RecurrentModel, eps: float) -> Iterator[DeltaSession]:
    """Run ``model`` in delta mode inside the block; every rollout (``generate``) starts afresh.

    The model's ``init_state`` and ``step`` are shadowed on the instance to reset the caches
    per rollout and to know the step each product belongs to; all is undone on exit.
    """
    session = DeltaSession(model, eps)
    init_state, step = model.init_state, model.step

    def counted_init_state(*args, **kwargs):
        session.reset()
        return init_state(*args, **kwargs)

    def counted_step(*args, **kwargs):
        try:
            return step(*args, **kwargs)
        finally:
            session.clock[0] += 1

    for name, wrapper in session.wrappers.items():
        _swap(model, name, wrapper)
    model.init_state, model.step = counted_init_state, counted_step  # type: ignore[method-assign]
    try:
        yield session
    finally:
        del model.init_state, model.step
        for name, wrapper in session.wrappers.items():
            _swap(model, name, wrapper.inner)
