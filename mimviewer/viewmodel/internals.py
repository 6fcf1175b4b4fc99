"""The internals part of the view model: which quantities are shown, under which reduction and
saturation thresholds, and the heatmaps / curves that follow (maths in :mod:`.readout`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.trace import ProbeSpec, Trace, key
from mimviewer.viewmodel import readout
from mimviewer.viewmodel.readout import REDUCTIONS

if TYPE_CHECKING:
    from mimviewer.viewmodel.events import SessionEvents
    from mimviewer.viewmodel.results import ModelSlot

# Quantities shown first when a model has them (the ones DESIGN.md's window lists).
PREFERRED_QUANTITIES: tuple[str, ...] = ("f", "f'", "i", "o", "D", "N", "S", "C", "M", "H")


class InternalsState:
    """Mixed into :class:`~mimviewer.viewmodel.session.Session`: the internals panel's state."""

    events: SessionEvents
    slots: list[ModelSlot | None]
    needs_rerun: bool
    _raw: dict[int, dict[str, np.ndarray]]  # slot -> key -> (steps, C, *S) host copies of raw values
    step_of_frame: Callable[..., int]  # the session's

    def _init_internals(self) -> None:
        self._quantities: list[str] = []
        self._reduction = "mean"
        self._lo, self._hi, self._channel = 0.1, 0.9, 0

    @property
    def models(self) -> list[tuple[int, ModelSlot]]:
        return [(i, s) for i, s in enumerate(self.slots) if s is not None]

    def available_quantities(self, slot: int = 0) -> list[str]:
        """Every quantity any layer of the model records (plus dH), in the model's order."""
        s = self.slots[slot]
        if s is None:
            return []
        names: list[str] = []
        for layer in range(s.model.config.num_layers):
            for name in (*s.model.quantities(layer), "dH"):
                if name not in names:
                    names.append(name)
        return names

    def default_quantities(self) -> list[str]:
        available = self.available_quantities()
        chosen = [q for q in PREFERRED_QUANTITIES if q in available][:7]
        return chosen or available[:7]

    @property
    def quantities(self) -> list[str]:
        return list(self._quantities)

    @quantities.setter
    def quantities(self, names: list[str]) -> None:
        available = self.available_quantities()
        self._quantities = [q for q in available if q in names]
        self.events.internals.emit()

    @property
    def reduction(self) -> str:
        return self._reduction

    @reduction.setter
    def reduction(self, name: str) -> None:
        if name not in REDUCTIONS:
            raise ValueError(f"unknown reduction {name!r}; known: {', '.join(REDUCTIONS)}")
        self._reduction = name
        self.events.internals.emit()

    @property
    def thresholds(self) -> tuple[float, float]:
        return self._lo, self._hi

    def set_thresholds(self, lo: float, hi: float) -> None:
        """New saturation thresholds: re-reduce the kept raw values, or flag that a re-run is needed."""
        self._lo, self._hi = float(lo), float(hi)
        self._rereduce()

    @property
    def channel(self) -> int:
        return self._channel

    @channel.setter
    def channel(self, value: int) -> None:
        self._channel = max(0, int(value))
        self._rereduce()

    def _rereduce(self) -> None:
        for index, slot in self.models:
            raw = self._raw.get(index)
            if raw is None:
                self.needs_rerun = self.needs_rerun or bool(slot.done_steps)
                continue
            readout.rereduce(raw, slot.maps, slot.stats, self._lo, self._hi, self._channel)
        self.events.internals.emit()

    def num_layers(self, slot: int = 0) -> int:
        s = self.slots[slot]
        return 0 if s is None else s.model.config.num_layers

    def has(self, layer: int, name: str, slot: int = 0) -> bool:
        s = self.slots[slot]
        return s is not None and name in (*s.model.quantities(layer), "dH")

    def heatmap(self, layer: int, name: str, step: int | None = None, slot: int = 0) -> np.ndarray | None:
        """The 2-D map of one quantity at one step under the chosen reduction (None: not computed)."""
        s = self.slots[slot]
        k = key(layer, name)
        if s is None or k not in s.maps:
            return None
        step = self.step_of_frame() if step is None else step
        return readout.heatmap(s.maps[k], self._reduction, step, s.done_steps)

    def is_vector(self, layer: int, name: str, slot: int = 0) -> bool:
        """True for the 1-D family's unit vectors (their heatmap is units x steps)."""
        s = self.slots[slot]
        maps = None if s is None else s.maps.get(key(layer, name))
        return maps is not None and maps.ndim == 3

    def heatmap_levels(self, layer: int, name: str, slot: int = 0) -> tuple[float, float]:
        s = self.slots[slot]
        maps = None if s is None else s.maps.get(key(layer, name))
        return readout.heatmap_levels(maps, 0 if s is None else s.done_steps, self._reduction, name)

    def saturation_curves(self, name: str, slot: int = 0) -> dict[int, np.ndarray]:
        s = self.slots[slot]
        return {} if s is None else readout.saturation_curves(s.stats, s.done_steps, name)

    def trace(self, slot: int = 0) -> Trace | None:
        """The finished trace with the current thresholds applied (for exports)."""
        s = self.slots[slot]
        if s is None or s.trace is None:
            return None
        t = s.trace
        maps = {k: v[:, :, None] for k, v in s.maps.items()}
        stats = {k: v[:, None] for k, v in s.stats.items()}
        spec = ProbeSpec(lo=self._lo, hi=self._hi, channel=self._channel, eps=t.spec.eps)
        return Trace(maps=maps, stats=stats, spec=spec, pre=t.pre, aft=t.aft)
