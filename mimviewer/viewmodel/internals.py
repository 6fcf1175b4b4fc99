"""The internals part of the view model: which quantities are shown, under which reduction and
probe settings (gate thresholds lo < hi, state bound a, dH epsilon, channel), and the heatmaps,
curves and per-location series that follow (maths in :mod:`.readout` and :mod:`mimviewer.trace`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.trace_spec import KIND_MEASURES, ProbeSpec, key, quantity_kind, split_key
from mimviewer.viewmodel import readout
from mimviewer.viewmodel.readout import REDUCTIONS

if TYPE_CHECKING:
    from mimviewer.trace import Trace
    from mimviewer.viewmodel.events import SessionEvents
    from mimviewer.viewmodel.results import ModelSlot

# Quantities shown first when a model has them (the ones DESIGN.md's window lists).
PREFERRED_QUANTITIES: tuple[str, ...] = ("f", "f'", "i", "o", "D", "N", "S", "C", "M", "H")
SETTINGS = ("lo", "hi", "channel", "eps", "state_bound")  # the ProbeSpec fields the panel sets


def _trace():
    """mimviewer.trace (the Trace itself), imported where first needed: it imports torch."""
    import mimviewer.trace as trace

    return trace


class InternalsState:
    """Mixed into :class:`~mimviewer.viewmodel.session.Session`: the internals panel's state."""

    events: SessionEvents
    slots: list[ModelSlot | None]
    needs_rerun: bool
    step_of_frame: Callable[..., int]  # the session's

    def _init_internals(self) -> None:
        self._quantities: list[str] = []
        self._reduction = "mean"
        self._settings = ProbeSpec()

    @property
    def models(self) -> list[tuple[int, ModelSlot]]:
        return [(i, s) for i, s in enumerate(self.slots) if s is not None]

    def available_quantities(self, slot: int | None = 0) -> list[str]:
        """Every quantity a layer of the model records (plus dH), in the model's order;
        ``slot=None``: of every loaded model (the compared one's too)."""
        slots = [s for _, s in self.models] if slot is None else [self.slots[slot]]
        names: list[str] = []
        for s in slots:
            if s is None:
                continue
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
        available = self.available_quantities(None)  # any loaded model's: MIM's D/N/S beside PredRNN
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

    # -- probe settings ------------------------------------------------------------------------
    @property
    def probe_settings(self) -> ProbeSpec:
        """lo, hi, channel, eps and the state bound the panel set (every quantity, no raw values)."""
        return self._settings

    def same_settings(self, spec: ProbeSpec) -> bool:
        return all(getattr(spec, name) == getattr(self._settings, name) for name in SETTINGS)

    def update_settings(self, **changes: float | int) -> None:
        """New probe settings: checked (a ConfigError leaves everything as it was, e.g. lo >= hi),
        then the kept raw values are re-reduced, or a re-run is flagged when none were kept."""
        self._settings = self._settings.replace(**changes)
        self._rereduce()

    @property
    def thresholds(self) -> tuple[float, float]:
        return self._settings.lo, self._settings.hi

    def set_thresholds(self, lo: float, hi: float) -> None:
        self.update_settings(lo=float(lo), hi=float(hi))

    @property
    def channel(self) -> int:
        return self._settings.channel

    @channel.setter
    def channel(self, value: int) -> None:
        self.update_settings(channel=max(0, int(value)))

    @property
    def eps(self) -> float:
        return self._settings.eps

    @property
    def state_bound(self) -> float:
        return self._settings.state_bound

    def _rereduce(self) -> None:
        """Apply the settings to every finished trace that kept its raw values (the engine's
        re-reduction: exactly what a fresh run with these settings records)."""
        for _, slot in self.models:
            trace = slot.trace
            if trace is None or not trace.raw:
                self.needs_rerun = self.needs_rerun or bool(slot.done_steps)
                continue
            if self.same_settings(trace.spec):
                continue
            trace = trace.rereduce(self._settings.replace(keep_raw=True))
            slot.trace = trace
            for k in trace.maps:
                slot.maps[k] = trace.maps[k][:, :, 0].copy()  # batch item 0
                slot.stats[k] = trace.stats[k][:, 0].copy()
        self.events.internals.emit()

    # -- what a quantity is ----------------------------------------------------------------------
    def kind(self, name: str, slot: int = 0) -> str:
        """ "gate", "state" or "change" (the model's override first: PredRNN++'s tanh o is a state)."""
        s = self.slots[slot]
        overrides = {} if s is None else type(s.model).quantity_kinds
        return overrides.get(name) or quantity_kind(name)

    def measure(self, name: str, slot: int = 0) -> str:
        """What "below" / "above" mean for ``name``, with the current numbers."""
        kind = self.kind(name, slot)
        low, high = self._settings.bounds(kind)
        return f"{KIND_MEASURES[kind].split(':')[0]}: below {low:g} / above {high:g}"

    def num_layers(self, slot: int = 0) -> int:
        s = self.slots[slot]
        return 0 if s is None else s.model.config.num_layers

    def has(self, layer: int, name: str, slot: int = 0) -> bool:
        s = self.slots[slot]
        return s is not None and name in (*s.model.quantities(layer), "dH")

    def computed(self, layer: int, name: str, step: int, slot: int = 0) -> bool:
        """Whether step ``step`` computed the quantity (False: MIM-N at step 0, E3D resting, not yet)."""
        s = self.slots[slot]
        valid = None if s is None else s.valid.get(key(layer, name))
        return valid is not None and step < len(valid) and bool(valid[step])

    # -- heatmaps and curves ------------------------------------------------------------------------
    def heatmap(self, layer: int, name: str, step: int | None = None, slot: int = 0) -> np.ndarray | None:
        """The map of one quantity at one step under the chosen reduction (None: not there yet;
        NaN: the step computes nothing; "split": RGB)."""
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
        done = 0 if s is None else s.done_steps
        return readout.heatmap_levels(maps, done, self._reduction, self.kind(name, slot))

    def saturation_curves(self, name: str, slot: int = 0) -> dict[int, np.ndarray]:
        """Per layer: share below + above of ``name`` per finished step (NaN: not computed)."""
        s = self.slots[slot]
        return {} if s is None else readout.saturation_curves(s.stats, s.done_steps, name)

    def split_curves(self, name: str, slot: int = 0) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Per layer: (share below, share above) of ``name`` per finished step."""
        s = self.slots[slot]
        return {} if s is None else readout.split_curves(s.stats, s.done_steps, name)

    # -- one location over time -------------------------------------------------------------------
    def location_reduction(self) -> str:
        """The value a per-location series shows: the chosen channel under "one channel", else
        the mean over channels (values, so that the thresholds can be drawn against them)."""
        return "channel" if self._reduction == "channel" else "mean"

    def location_reduction_label(self) -> str:
        return f"channel {self.channel}" if self.location_reduction() == "channel" else "mean over channels"

    def location_series(self, row: int, col: int, slot: int = 0) -> dict[tuple[int, str], np.ndarray]:
        """Every quantity of every layer at grid cell (row, col), per step: (layer, name) -> (steps,)."""
        s = self.slots[slot]
        if s is None:
            return {}
        reduction = self.location_reduction()
        out = {}
        for k, maps in s.maps.items():
            spatial = maps.shape[2:]
            if row < spatial[0] and (len(spatial) == 1 or col < spatial[1]):
                out[split_key(k)] = readout.location_series(maps, reduction, row, col, s.done_steps)
        return out

    def location_bounds(self, name: str, slot: int = 0) -> tuple[float, float]:
        """The thresholds drawn on a per-location plot of ``name`` (by its kind)."""
        return self._settings.bounds(self.kind(name, slot))

    def trace(self, slot: int = 0) -> Trace | None:
        """The finished trace with the current settings applied (for exports)."""
        s = self.slots[slot]
        if s is None or s.trace is None:
            return None
        t = s.trace
        maps = {k: v[:, :, None] for k, v in s.maps.items()}
        stats = {k: v[:, None] for k, v in s.stats.items()}
        return _trace().Trace(
            maps=maps,
            stats=stats,
            spec=self._settings,
            pre=t.pre,
            aft=t.aft,
            valid={k: v.copy() for k, v in s.valid.items()},
            kinds=dict(t.kinds),
        )
