"""What a trace records, without torch: the quantities' names and kinds, the reductions kept,
and the probe settings (:class:`ProbeSpec`). :mod:`mimviewer.trace` re-exports all of it; the
window's view model reads it from here, so that the window is drawn before torch is imported.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from mimviewer.errors import ConfigError

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
# Scalar statistics over channels and space, per step: (B,) each. frac_still: dH only (NaN elsewhere).
STAT_NAMES: tuple[str, ...] = ("mean", "min", "max", "frac_low", "frac_high", "frac_still")

KINDS: tuple[str, ...] = ("gate", "state", "change")
# What "low" / "high" mean for each kind (the window and the exports say this).
KIND_MEASURES: dict[str, str] = {
    "gate": "saturated: below lo / above hi",
    "state": "large: below -a / above +a (|x| > a)",
    "change": "changing: below -eps / above +eps (the rest is still, |dH| < eps)",
}
_GATE_SUFFIXES = frozenset({"i", "f", "o", "r", "u"})  # sigmoid gates, whatever module they belong to


def quantity_kind(name: str) -> str:
    """``"gate"`` for sigmoid gates (i, f, o, r, u and their primed / MIM-N / MIM-S / GHU
    versions), ``"change"`` for dH, ``"state"`` for everything else."""
    if name == "dH":
        return "change"
    return "gate" if name.split(".")[-1].rstrip("'") in _GATE_SUFFIXES else "state"


@dataclass(frozen=True)
class ProbeSpec:
    """What to record and how to reduce it (thresholds checked: lo < hi, eps and a > 0)."""

    quantities: frozenset[str] | None = None  # None: every quantity the model has
    layers: frozenset[int] | None = None  # None: every layer
    lo: float = 0.1  # a gate value below lo counts as saturated low (gates are in [0, 1])
    hi: float = 0.9  # a gate value above hi counts as saturated high
    channel: int = 0  # the channel kept whole for the "channel" map
    eps: float = 1e-3  # |dH| < eps counts as "still" (no temporal change)
    state_bound: float = 0.9  # a state value with |x| > state_bound counts as large
    keep_raw: bool = False  # also keep every raw tensor (memory hungry; for re-reduction/exports)

    def __post_init__(self) -> None:
        for name in ("lo", "hi", "eps", "state_bound"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"probe setting {name} must be a finite number, got {value!r}")
        if not self.lo < self.hi:
            raise ConfigError(f"saturation thresholds need lo < hi, got lo={self.lo:g}, hi={self.hi:g}")
        if self.eps <= 0:
            raise ConfigError(f"the dH epsilon must be > 0, got {self.eps:g}")
        if self.state_bound <= 0:
            raise ConfigError(f"the state bound a must be > 0, got {self.state_bound:g}")
        if isinstance(self.channel, bool) or not isinstance(self.channel, int) or self.channel < 0:
            raise ConfigError(f"the channel must be an integer >= 0, got {self.channel!r}")

    def wants(self, layer: int, name: str) -> bool:
        return (self.quantities is None or name in self.quantities) and (
            self.layers is None or layer in self.layers
        )

    def bounds(self, kind: str) -> tuple[float, float]:
        """The (low, high) thresholds that apply to a quantity of this kind (see the module doc)."""
        if kind == "gate":
            return self.lo, self.hi
        if kind == "change":
            return -self.eps, self.eps
        return -self.state_bound, self.state_bound

    def replace(self, **changes: object) -> ProbeSpec:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def key(layer: int, name: str) -> str:
    """The Trace key of one quantity of one layer, e.g. ``"0/f"``."""
    return f"{layer}/{name}"


def split_key(k: str) -> tuple[int, str]:
    layer, name = k.split("/", 1)
    return int(layer), name
