"""Probes and the Trace: what every gate and memory of every layer did, step by step.

Cells call ``probe.record(layer, name, value)`` with each internal tensor. The default
probe (:data:`NO_PROBE`) does nothing, so a rollout without probes costs nothing. A
:class:`TraceRecorder` reduces each tensor *on its device* into one preallocated buffer
(the "arena": one row per step holding every quantity's maps and statistics), so a step's
reductions reach the host in one copy and raw tensors never travel unless
``ProbeSpec.keep_raw`` asks for them.

Shapes: a recorded value is ``(B, C, *S)`` — C channels (units for the 1-D family, which
record ``(B, 1, U)`` so that the "map" is the unit vector) and spatial dims ``S``.

Step semantics: a quantity that a step does not compute (MIM-N at step 0, E3D-LSTM's
resting steps) is NaN in its maps, statistics and raw values at that step, and
``Trace.valid[key][t]`` is False there; never 0.

Measures by kind (:func:`quantity_kind`): every map and statistic keeps the share of values
below a low threshold and above a high one apart ("low", "high"; their sum is the
headline number). Which thresholds apply depends on what the quantity is:

* ``gate`` (sigmoid gates, values in [0, 1]): saturated, ``x < lo`` / ``x > hi``;
* ``state`` (memories, candidates, hidden states, differences): large, ``x < -a`` / ``x > a``
  with ``a = ProbeSpec.state_bound`` (saturation means nothing for an unbounded memory);
* ``change`` (dH, the step-to-step change of H): changing, ``x <= -eps`` / ``x >= eps``; the rest
  is still (``|dH| < eps``: the temporal sparsity a delta-update scheme could skip), which is
  the statistic ``frac_still``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mimviewer.atomic import atomic_file
from mimviewer.errors import DataError, MimviewerError

# The names (what each means: the GUI's tooltips), kinds and probe settings live in a torch-free
# module (the window reads them before torch is imported); re-exported here, where they have
# always been imported from.
from mimviewer.trace_spec import KIND_MEASURES as KIND_MEASURES
from mimviewer.trace_spec import KINDS as KINDS
from mimviewer.trace_spec import MAP_REDUCTIONS as MAP_REDUCTIONS
from mimviewer.trace_spec import QUANTITIES as QUANTITIES
from mimviewer.trace_spec import STAT_NAMES as STAT_NAMES
from mimviewer.trace_spec import ProbeSpec as ProbeSpec
from mimviewer.trace_spec import key as key
from mimviewer.trace_spec import quantity_kind as quantity_kind
from mimviewer.trace_spec import split_key as split_key


class Probe:
    """The do-nothing probe: cells may always call it."""

    enabled: bool = False

    def begin_step(self, t: int) -> None:
        pass

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        pass


NO_PROBE = Probe()


# -- the reduction (one function for the recorder and for re-reduction) -------------------------
# Rows of the device-side statistics: the three that are means of the maps first, so that
# one reduction writes them; PUBLIC_ROWS reorders them into STAT_NAMES on the host.
_MEAN, _LOW, _HIGH, _MIN, _MAX, _STILL = range(len(STAT_NAMES))
PUBLIC_ROWS: tuple[int, ...] = (_MEAN, _MIN, _MAX, _LOW, _HIGH, _STILL)  # STAT_NAMES order


def reduce_into(
    value: torch.Tensor,
    kind: str,
    spec: ProbeSpec,
    maps: torch.Tensor,
    stats: torch.Tensor,
    scratch: torch.Tensor,
) -> None:
    """Reduce ``value`` (B, C, *S) float32 into ``maps`` (4, B, *S) and ``stats`` (6, B).

    ``stats`` rows are (mean, frac_low, frac_high, min, max, frac_still) (see PUBLIC_ROWS);
    ``scratch`` is a float (2, B, C, *S) buffer. Eight passes of plain ops, each writing
    into the arena (measured in benchmarks/bench_probes.py; ``torch.compile`` of the same
    function was no faster on CPU and took 45 s to compile). The fractions of the maps are
    exact (a count over channels / C); the whole-tensor statistics are means of the maps.
    """
    low, high = spec.bounds(kind)
    inclusive = kind == "change"  # changing: |x| >= eps, so still is |x| < eps
    torch.mean(value, 1, out=maps[0])
    (torch.le if inclusive else torch.lt)(value, low, out=scratch[0])
    (torch.ge if inclusive else torch.gt)(value, high, out=scratch[1])
    torch.mean(scratch, 2, out=maps[1:3])  # (2, B, *S): share of channels below / above
    maps[3].copy_(value[:, min(spec.channel, value.shape[1] - 1)])
    flat = value.flatten(1)
    torch.amin(flat, 1, out=stats[_MIN])
    torch.amax(flat, 1, out=stats[_MAX])
    torch.mean(maps[:3].flatten(2), 2, out=stats[:3])  # (3, B): mean, share low, share high
    if inclusive:
        torch.add(stats[_LOW], stats[_HIGH], out=stats[_STILL])
        stats[_STILL].neg_().add_(1.0)  # still: 1 - changing


@dataclass(frozen=True)
class _Slot:
    """Where one quantity lives in a row of the arena: maps (4, B, *S) then stats (6, B)."""

    offset: int
    batch: int
    spatial: tuple[int, ...]
    channels: int

    @property
    def map_size(self) -> int:
        return len(MAP_REDUCTIONS) * self.batch * math.prod(self.spatial)

    @property
    def size(self) -> int:
        return self.map_size + len(STAT_NAMES) * self.batch

    def views(self, row: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(maps (4, B, *S), stats (6, B)) of this quantity in one arena row (or rows: leading dims)."""
        lead = row.shape[:-1]
        maps = row[..., self.offset : self.offset + self.map_size]
        stats = row[..., self.offset + self.map_size : self.offset + self.size]
        return (
            maps.reshape(*lead, len(MAP_REDUCTIONS), self.batch, *self.spatial),
            stats.reshape(*lead, len(STAT_NAMES), self.batch),
        )


@dataclass
class HostStep:
    """One step's reductions on the host, from one packed copy: key -> arrays of batch item(s).

    ``maps[k]`` is (4, B, *S), ``stats[k]`` (B, 6) in :data:`STAT_NAMES` order, ``valid[k]``
    whether the step computed the quantity (False: the arrays are NaN).
    """

    maps: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    valid: dict[str, bool]


class TraceRecorder(Probe):
    """Reduces recorded tensors on their device into the per-step arena (see the module doc)."""

    enabled = True

    def __init__(self, spec: ProbeSpec, steps: int, kinds: Mapping[str, str] | None = None):
        self.spec = spec
        self.kind_overrides = dict(kinds or {})  # name -> kind where a model differs (PredRNN++'s tanh o)
        self._kinds: dict[str, str] = {}  # key -> kind
        self.steps = steps
        self.t = 0
        self._slots: dict[str, _Slot] = {}
        self._views: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # key -> views of the whole arena
        self._arena: torch.Tensor | None = None  # (steps, capacity) float32, NaN where nothing was written
        self._used = 0
        self._valid: dict[str, np.ndarray] = {}  # key -> (steps,) bool, on the host
        self._scratch: dict[tuple[int, ...], torch.Tensor] = {}  # value shape -> (2, *shape)
        self._previous_h: dict[int, torch.Tensor] = {}  # layer -> copy of H at its last recorded step
        self._dh: dict[int, torch.Tensor] = {}
        self._raw: dict[str, torch.Tensor] = {}  # key -> (steps, B, C, *S), NaN where not computed
        self._host: torch.Tensor | None = None  # pinned host copy of the arena (CUDA)
        self._copied: dict[int, torch.cuda.Event] = {}

    def begin_step(self, t: int) -> None:
        self.t = t

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        if name == "H" and self.spec.wants(layer, "dH"):
            self._record_change(layer, value)
        if self.spec.wants(layer, name):
            self._reduce(key(layer, name), self.kind(name), value.detach().float())

    @torch.no_grad()
    def _record_change(self, layer: int, h: torch.Tensor) -> None:
        """dH = H minus H at the layer's previous computed step (the state starts at zero).

        H is copied, not referenced, so a cell that updates its state in place stays correct.
        """
        h = h.detach().float()
        previous = self._previous_h.get(layer)
        if previous is None:
            self._previous_h[layer] = h.clone()
            self._dh[layer] = torch.empty_like(h)
            self._reduce(key(layer, "dH"), "change", h)
            return
        delta = torch.sub(h, previous, out=self._dh[layer])
        previous.copy_(h)
        self._reduce(key(layer, "dH"), "change", delta)

    def kind(self, name: str) -> str:
        return self.kind_overrides.get(name) or quantity_kind(name)

    def _slot(self, k: str, value: torch.Tensor) -> _Slot:
        slot = self._slots.get(k)
        if slot is not None:
            return slot
        batch, channels, *spatial = value.shape
        slot = _Slot(self._used, batch, tuple(spatial), channels)
        self._slots[k] = slot
        self._valid[k] = np.zeros(self.steps, bool)
        self._used += slot.size
        if self._arena is None or self._used > self._arena.shape[1]:
            capacity = max(self._used, 2 * (0 if self._arena is None else self._arena.shape[1]), 4096)
            arena = value.new_full((self.steps, capacity), math.nan, dtype=torch.float32)
            if self._arena is not None:
                arena[:, : slot.offset] = self._arena[:, : slot.offset]
            self._arena = arena
            self._views.clear()
        if self.spec.keep_raw:
            self._raw[k] = value.new_full((self.steps, *value.shape), math.nan, dtype=torch.float32)
        return slot

    def _reduce(self, k: str, kind: str, value: torch.Tensor) -> None:
        slot = self._slot(k, value)
        self._kinds[k] = kind
        assert self._arena is not None
        shape = tuple(value.shape)
        scratch = self._scratch.get(shape)
        if scratch is None or scratch.device != value.device:
            scratch = self._scratch[shape] = value.new_empty((2, *shape))
        views = self._views.get(k)
        if views is None:
            views = self._views[k] = slot.views(self._arena)
        reduce_into(value, kind, self.spec, views[0][self.t], views[1][self.t], scratch)
        self._valid[k][self.t] = True
        if self.spec.keep_raw:
            self._raw[k][self.t].copy_(value)

    # -- reading back ------------------------------------------------------------------------
    def step_slice(self, t: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Step t on the device: key -> (maps (4,B,*S), stats (B,6) in STAT_NAMES order)."""
        if self._arena is None:
            return {}
        rows = torch.tensor(PUBLIC_ROWS, device=self._arena.device)
        out = {}
        for k, slot in self._slots.items():
            maps, stats = slot.views(self._arena[t])
            out[k] = (maps, stats.index_select(0, rows).T)
        return out

    def start_host_copy(self, t: int) -> None:
        """Start copying step t's row to the host: one non-blocking copy into pinned memory on CUDA."""
        arena = self._arena
        if arena is None or arena.device.type == "cpu":
            return
        if self._host is None or self._host.shape[1] < arena.shape[1]:
            self._host = torch.empty(arena.shape, dtype=torch.float32, pin_memory=True)
        self._host[t, : self._used].copy_(arena[t, : self._used], non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        self._copied[t] = event

    def host_step(self, t: int, sample: slice | int = slice(None)) -> HostStep:
        """Step t's maps and statistics as numpy, from one packed copy of its arena row.

        ``sample`` picks batch items (an int keeps that axis out: maps (4, *S), stats (6,)).
        """
        if self._arena is None:
            return HostStep({}, {}, {})
        if self._arena.device.type == "cpu":
            row = self._arena[t]
        else:
            if t not in self._copied:
                self.start_host_copy(t)
            self._copied.pop(t).synchronize()
            assert self._host is not None
            row = self._host[t]
        maps, stats, valid = {}, {}, {}
        for k, slot in self._slots.items():
            m, s = slot.views(row)
            maps[k] = m[:, sample].numpy()
            stats[k] = s.numpy()[PUBLIC_ROWS, sample].T
            valid[k] = bool(self._valid[k][t])
        return HostStep(maps, stats, valid)

    def finish(self, pre: int, aft: int) -> Trace:
        """Copy the arena to the host (one transfer) and cut it into a :class:`Trace`."""
        maps: dict[str, np.ndarray] = {}
        stats: dict[str, np.ndarray] = {}
        if self._arena is not None:
            arena = self._arena[:, : self._used].cpu()
            for k, slot in self._slots.items():
                m, s = slot.views(arena)
                maps[k] = m.numpy().copy()  # (steps, 4, B, *S)
                stats[k] = np.ascontiguousarray(s.numpy()[:, PUBLIC_ROWS].transpose(0, 2, 1))  # (steps, B, 6)
        raw = {k: v.cpu().numpy() for k, v in self._raw.items()}
        valid = {k: v.copy() for k, v in self._valid.items()}
        kinds = dict(self._kinds)
        return Trace(
            maps=maps, stats=stats, spec=self.spec, pre=pre, aft=aft, raw=raw, valid=valid, kinds=kinds
        )


def reduce_raw(
    raw: np.ndarray, kind: str, spec: ProbeSpec, valid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Maps (steps, 4, B, *S) and stats (steps, B, 6) of kept raw values (steps, B, C, *S).

    Exactly what a :class:`TraceRecorder` with ``spec`` writes (the same :func:`reduce_into`);
    steps that are not ``valid`` stay NaN.
    """
    steps, batch, channels, *spatial = raw.shape
    maps = np.full((steps, len(MAP_REDUCTIONS), batch, *spatial), np.nan, np.float32)
    stats = np.full((steps, len(STAT_NAMES), batch), np.nan, np.float32)
    scratch = torch.empty((2, batch, channels, *spatial))
    with torch.inference_mode():
        for t in np.flatnonzero(valid):
            value = torch.from_numpy(np.ascontiguousarray(raw[t], dtype=np.float32))
            reduce_into(value, kind, spec, torch.from_numpy(maps[t]), torch.from_numpy(stats[t]), scratch)
    return maps, np.ascontiguousarray(stats[:, PUBLIC_ROWS].transpose(0, 2, 1))


@dataclass
class Trace:
    """Host-side record of a rollout's internals.

    ``maps[key]`` is ``(steps, 4, B, *S)`` with reductions :data:`MAP_REDUCTIONS`;
    ``stats[key]`` is ``(steps, B, 6)`` with :data:`STAT_NAMES`; ``valid[key]`` is ``(steps,)``
    bool, False at steps that did not compute the quantity (where maps/stats/raw are NaN);
    ``raw[key]`` (kept on request) is ``(steps, B, C, *S)``, indexed by step like the maps.
    Keys are ``"layer/name"``. Step t is the network step that reads frame t and predicts t+1.
    """

    maps: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    spec: ProbeSpec
    pre: int
    aft: int
    raw: dict[str, np.ndarray] = field(default_factory=dict)
    valid: dict[str, np.ndarray] = field(default_factory=dict)  # missing key: computed at every step
    kinds: dict[str, str] = field(default_factory=dict)  # missing key: quantity_kind(name)

    @property
    def steps(self) -> int:
        return self.pre + self.aft - 1

    @property
    def num_layers(self) -> int:
        return 1 + max((split_key(k)[0] for k in self.maps), default=-1)

    def quantities(self, layer: int | None = None) -> list[str]:
        """Quantity names recorded (for one layer, or for any layer), in recording order."""
        names: list[str] = []
        for k in self.maps:
            l, name = split_key(k)
            if (layer is None or l == layer) and name not in names:
                names.append(name)
        return names

    def has(self, layer: int, name: str) -> bool:
        return key(layer, name) in self.maps

    def valid_steps(self, layer: int, name: str) -> np.ndarray:
        """(steps,) bool: the steps that computed this quantity."""
        k = key(layer, name)
        mask = self.valid.get(k)
        return np.ones(len(self.maps[k]), bool) if mask is None else mask

    def kind(self, layer: int, name: str) -> str:
        """ "gate", "state" or "change": which measure "low"/"high" are (module doc)."""
        return self.kinds.get(key(layer, name)) or quantity_kind(name)

    def map(self, layer: int, name: str, reduction: str = "mean") -> np.ndarray:
        """Per-step map ``(steps, B, *S)``; reduction is one of MAP_REDUCTIONS or "saturated" (low + high)."""
        maps = self.maps[key(layer, name)]
        if reduction == "saturated":
            return maps[:, 1] + maps[:, 2]
        return maps[:, MAP_REDUCTIONS.index(reduction)]

    def stat(self, layer: int, name: str, stat: str) -> np.ndarray:
        """Scalar statistic per step ``(steps, B)``: one of STAT_NAMES, or "frac_saturated" (low + high)."""
        stats = self.stats[key(layer, name)]
        if stat == "frac_saturated":
            return stats[..., 3] + stats[..., 4]
        return stats[..., STAT_NAMES.index(stat)]

    def rereduce(self, spec: ProbeSpec) -> Trace:
        """The same trace under other thresholds / channel / eps, from the kept raw values.

        Equals what a fresh rollout with ``spec`` records (mean, min and max do not depend on
        the settings and are kept as recorded). Raises when raw values were not kept.
        """
        missing = [k for k in self.maps if k not in self.raw]
        if missing:
            raise MimviewerError(
                f"no raw values kept for {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}: "
                "run again with the new settings"
            )
        maps, stats = {}, {}
        for k, raw in self.raw.items():
            valid = self.valid.get(k, np.ones(len(raw), bool))
            new_maps, new_stats = reduce_raw(raw, self.kind(*split_key(k)), spec, valid)
            maps[k] = self.maps[k].copy()
            maps[k][:, 1:] = new_maps[:, 1:]
            stats[k] = self.stats[k].copy()
            for stat in ("frac_low", "frac_high", "frac_still"):
                index = STAT_NAMES.index(stat)
                stats[k][..., index] = new_stats[..., index]
        valid = {k: v.copy() for k, v in self.valid.items()}
        return Trace(
            maps=maps,
            stats=stats,
            spec=spec,
            pre=self.pre,
            aft=self.aft,
            raw=self.raw,
            valid=valid,
            kinds=dict(self.kinds),
        )

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
        arrays: dict[str, np.ndarray] = {}
        for k in self.maps:
            arrays[f"maps:{k}"] = self.maps[k]
            arrays[f"stats:{k}"] = self.stats[k]
            arrays[f"valid:{k}"] = self.valid_steps(*split_key(k))
            arrays[f"kind:{k}"] = np.array(self.kind(*split_key(k)))
        for k, v in self.raw.items():
            arrays[f"raw:{k}"] = v
        meta = {
            "pre": self.pre,
            "aft": self.aft,
            "lo": self.spec.lo,
            "hi": self.spec.hi,
            "channel": self.spec.channel,
            "eps": self.spec.eps,
            "state_bound": self.spec.state_bound,
        }
        arrays["meta"] = np.array(list(meta.items()), dtype=object).astype(str)
        with atomic_file(path, inputs) as f:  # through a file: the name stays exactly ``path``
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace saved by :meth:`save` (no pickles); a bad file is a DataError naming it."""
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = {str(k): float(v) for k, v in f["meta"]}
                parts: dict[str, dict[str, np.ndarray]] = {
                    "maps": {},
                    "stats": {},
                    "raw": {},
                    "valid": {},
                    "kind": {},
                }
                for n in f.files:
                    kind, _, k = n.partition(":")
                    if kind in parts:
                        parts[kind][k] = f[n]
            spec = ProbeSpec(
                lo=meta["lo"],
                hi=meta["hi"],
                channel=int(meta["channel"]),
                eps=meta["eps"],
                state_bound=meta.get("state_bound", ProbeSpec.state_bound),
            )
            valid = {k: v.astype(bool) for k, v in parts["valid"].items()}
            kinds = {k: str(v) for k, v in parts["kind"].items()}
            if set(kinds.values()) - set(KINDS):
                raise ValueError(f"unknown quantity kinds {sorted(set(kinds.values()) - set(KINDS))}")
            return cls(
                maps=parts["maps"],
                stats=parts["stats"],
                spec=spec,
                pre=int(meta["pre"]),
                aft=int(meta["aft"]),
                raw=parts["raw"],
                valid=valid,
                kinds=kinds,
            )
        except (OSError, KeyError, ValueError, EOFError) as error:
            raise DataError(f"{path}: not a mimviewer trace ({error})") from error
