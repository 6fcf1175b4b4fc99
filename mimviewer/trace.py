"""Probes and the Trace: what every gate and memory of every layer did, step by step.

Cells call ``probe.record(layer, name, value)`` with each internal tensor. The default
probe (:data:`NO_PROBE`) does nothing, so a rollout without probes costs nothing. A
:class:`TraceRecorder` reduces each tensor *on its device* into preallocated buffers
(mean over channels, saturated fractions, one channel, scalar statistics), so raw tensors
never travel to the host unless ``ProbeSpec.keep_raw`` asks for them.

Shapes: a recorded value is ``(B, C, *S)`` — C channels (units for the 1-D family, which
record ``(B, 1, U)`` so that the "map" is the unit vector) and spatial dims ``S``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mimviewer.atomic import atomic_file

# What each quantity name means (the GUI shows these as tooltips; cells use these names).
QUANTITIES: dict[str, str] = {
    "i": "input gate",
    "f": "forget gate",
    "g": "input modulation (candidate)",
    "o": "output gate",
    "i'": "spatiotemporal input gate (M path)",
    "f'": "spatiotemporal forget gate (M path)",
    "g'": "spatiotemporal candidate (M path)",
    "C": "cell memory",
    "M": "spatiotemporal (zigzag) memory",
    "H": "hidden state",
    "dH": "temporal change of the hidden state, H_t - H_(t-1)",
    "D": "MIM-N input: difference signal (H_t - H_(t-1) of the layer below, or the MIM-N below's output)",
    "N": "MIM-N cell memory (non-stationary module)",
    "N.i": "MIM-N input gate",
    "N.f": "MIM-N forget gate",
    "N.g": "MIM-N candidate",
    "N.o": "MIM-N output gate",
    "Dn": "MIM-N output (difference features fed to MIM-S and the MIM-N above)",
    "S": "MIM-S cell memory (stationary module)",
    "S.i": "MIM-S input gate",
    "S.f": "MIM-S forget gate",
    "S.g": "MIM-S candidate",
    "S.o": "MIM-S output gate",
    "T": "MIM-S output, replaces the forget path of C",
    "R": "E3D-LSTM recall attention output",
    "r": "SRU reset gate; E3D-LSTM recall gate (the attention query)",
    "P": "LSTMP projected hidden state",
    "Z": "PredRNN++ gradient highway state (GHU output, read by layer 2 instead of layer 1's H)",
    "Z.p": "PredRNN++ gradient highway candidate (tanh)",
    "Z.u": "PredRNN++ gradient highway switch gate (1: take the candidate, 0: keep the highway state)",
}

# Channel reductions kept as maps, per step: (B, *S) each.
MAP_REDUCTIONS: tuple[str, ...] = ("mean", "low", "high", "channel")
# Scalar statistics over channels and space, per step: (B,) each.
STAT_NAMES: tuple[str, ...] = ("mean", "min", "max", "frac_low", "frac_high", "frac_still")


@dataclass(frozen=True)
class ProbeSpec:
    """What to record and how to reduce it."""

    quantities: frozenset[str] | None = None  # None: every quantity the model has
    layers: frozenset[int] | None = None  # None: every layer
    lo: float = 0.1  # a value below lo counts as saturated low (gates are in [0, 1])
    hi: float = 0.9  # a value above hi counts as saturated high
    channel: int = 0  # the channel kept whole for the "channel" map
    eps: float = 1e-3  # |value| < eps counts as "still" (used for dH: no temporal change)
    keep_raw: bool = False  # also keep every raw tensor (memory hungry; for exports/analysis)

    def wants(self, layer: int, name: str) -> bool:
        return (self.quantities is None or name in self.quantities) and (
            self.layers is None or layer in self.layers
        )


class Probe:
    """The do-nothing probe: cells may always call it."""

    enabled: bool = False

    def begin_step(self, t: int) -> None:
        pass

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        pass


NO_PROBE = Probe()


def key(layer: int, name: str) -> str:
    """The Trace key of one quantity of one layer, e.g. ``"0/f"``."""
    return f"{layer}/{name}"


def split_key(k: str) -> tuple[int, str]:
    layer, name = k.split("/", 1)
    return int(layer), name


@dataclass
class _Buffers:
    maps: torch.Tensor  # (steps, 4, B, *S): mean, low, high, channel
    stats: torch.Tensor  # (steps, B, 6)
    scratch: torch.Tensor  # (B, C, *S): room for one comparison at a time
    raw: list[torch.Tensor] = field(default_factory=list)


class TraceRecorder(Probe):
    """Reduces recorded tensors on their device into per-step buffers."""

    enabled = True

    def __init__(self, spec: ProbeSpec, steps: int):
        self.spec = spec
        self.steps = steps
        self.t = 0
        self._buffers: dict[str, _Buffers] = {}
        self._previous_h: dict[int, torch.Tensor] = {}

    def begin_step(self, t: int) -> None:
        self.t = t

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        if name == "H" and self.spec.wants(layer, "dH"):
            previous = self._previous_h.get(layer)
            delta = value if previous is None else value - previous  # state starts at zero
            self._previous_h[layer] = value
            self._reduce(layer, "dH", delta)
        if self.spec.wants(layer, name):
            self._reduce(layer, name, value)

    @torch.no_grad()
    def _reduce(self, layer: int, name: str, value: torch.Tensor) -> None:
        value = value.detach().float()
        k = key(layer, name)
        buffers = self._buffers.get(k)
        if buffers is None:
            batch, spatial = value.shape[0], value.shape[2:]
            buffers = _Buffers(
                maps=value.new_zeros((self.steps, len(MAP_REDUCTIONS), batch, *spatial)),
                stats=value.new_zeros((self.steps, batch, len(STAT_NAMES))),
                scratch=torch.empty_like(value),
            )
            self._buffers[k] = buffers
        spec, t = self.spec, self.t
        scratch = buffers.scratch  # float, like value: comparisons into a float buffer are fast
        maps = buffers.maps[t]  # (4, B, *S), written in place
        torch.mean(value, 1, out=maps[0])
        torch.mean(torch.lt(value, spec.lo, out=scratch), 1, out=maps[1])
        torch.mean(torch.gt(value, spec.hi, out=scratch), 1, out=maps[2])
        maps[3] = value[:, min(spec.channel, value.shape[1] - 1)]
        # Whole-tensor means from the (C times smaller) maps: every map entry averages C values.
        means = maps[:3].flatten(2).mean(2)  # (3, B): mean, frac_low, frac_high
        flat = value.flatten(1)
        still = torch.lt(torch.abs(value, out=scratch), spec.eps, out=scratch).flatten(1)
        stats = buffers.stats[t]  # (B, 6) in STAT_NAMES order
        stats[:, 0] = means[0]
        stats[:, 1] = flat.amin(1)
        stats[:, 2] = flat.amax(1)
        stats[:, 3] = means[1]
        stats[:, 4] = means[2]
        stats[:, 5] = still.mean(1)
        if spec.keep_raw:
            buffers.raw.append(value.clone())

    def step_slice(self, t: int) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Reduced values of step t, still on the device: key -> (maps (4,B,*S), stats (B,6))."""
        return {k: (b.maps[t], b.stats[t]) for k, b in self._buffers.items()}

    def finish(self, pre: int, aft: int) -> Trace:
        """Copy the buffers to the host (one transfer per quantity) as a :class:`Trace`."""
        maps = {k: b.maps.cpu().numpy() for k, b in self._buffers.items()}
        stats = {k: b.stats.cpu().numpy() for k, b in self._buffers.items()}
        raw = (
            {k: torch.stack(b.raw).cpu().numpy() for k, b in self._buffers.items() if b.raw}
            if self.spec.keep_raw
            else {}
        )
        return Trace(maps=maps, stats=stats, spec=self.spec, pre=pre, aft=aft, raw=raw)


@dataclass
class Trace:
    """Host-side record of a rollout's internals.

    ``maps[key]`` is ``(steps, 4, B, *S)`` with reductions :data:`MAP_REDUCTIONS`;
    ``stats[key]`` is ``(steps, B, 6)`` with :data:`STAT_NAMES`; keys are ``"layer/name"``.
    Step t is the network step that reads frame t and predicts frame t+1.
    """

    maps: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    spec: ProbeSpec
    pre: int
    aft: int
    raw: dict[str, np.ndarray] = field(default_factory=dict)

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

    def map(self, layer: int, name: str, reduction: str = "mean") -> np.ndarray:
        """Per-step map ``(steps, B, *S)``; reduction is one of MAP_REDUCTIONS or "saturated"."""
        maps = self.maps[key(layer, name)]
        if reduction == "saturated":
            return maps[:, 1] + maps[:, 2]
        return maps[:, MAP_REDUCTIONS.index(reduction)]

    def stat(self, layer: int, name: str, stat: str) -> np.ndarray:
        """One scalar statistic per step ``(steps, B)``; stat in STAT_NAMES or "frac_saturated"."""
        stats = self.stats[key(layer, name)]
        if stat == "frac_saturated":
            return stats[..., 3] + stats[..., 4]
        return stats[..., STAT_NAMES.index(stat)]

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | Path, inputs: tuple[str | Path, ...] = ()) -> None:
        arrays: dict[str, np.ndarray] = {}
        for k in self.maps:
            arrays[f"maps:{k}"] = self.maps[k]
            arrays[f"stats:{k}"] = self.stats[k]
        for k, v in self.raw.items():
            arrays[f"raw:{k}"] = v
        meta = {
            "pre": self.pre,
            "aft": self.aft,
            "lo": self.spec.lo,
            "hi": self.spec.hi,
            "channel": self.spec.channel,
            "eps": self.spec.eps,
        }
        arrays["meta"] = np.array(list(meta.items()), dtype=object).astype(str)
        with atomic_file(path, inputs) as f:  # through a file: the name stays exactly ``path``
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        with np.load(path, allow_pickle=False) as f:
            meta = {k: float(v) for k, v in f["meta"]}
            maps = {n.split(":", 1)[1]: f[n] for n in f.files if n.startswith("maps:")}
            stats = {n.split(":", 1)[1]: f[n] for n in f.files if n.startswith("stats:")}
            raw = {n.split(":", 1)[1]: f[n] for n in f.files if n.startswith("raw:")}
        spec = ProbeSpec(lo=meta["lo"], hi=meta["hi"], channel=int(meta["channel"]), eps=meta["eps"])
        return cls(maps=maps, stats=stats, spec=spec, pre=int(meta["pre"]), aft=int(meta["aft"]), raw=raw)
