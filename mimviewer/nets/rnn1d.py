"""The 1-D family: LSTM, LSTMP (Sak et al. 2014) and SRU (Lei et al. 2018) on whole frames.

Each patchified frame ``(B, p*p*C, H', W')`` is flattened to one vector (optionally a linear
"patch embedding" to ``options["embed"]`` units), run through stacked vector cells with
``num_hidden[l]`` units each, and mapped back by a linear head to the flattened frame.
Gates are vectors, recorded as ``(B, 1, U)`` so that the Trace's maps are unit x time heatmaps.

The patch size only reorders the flattened vector, so weights fit the p they were trained
with, and p cannot be read from the weights (a checkpoint without config needs it given).

Options (``ModelConfig.options``):
  embed: int | None   linear embedding of the flattened frame (None: raw flatten)
  proj: int | list    LSTMP projection units, one for all layers or one per layer
  peephole: bool      lstm/lstmp: peephole connections from C into i, f, o
  cifg: bool          lstm/lstmp: coupled input and forget gate, i = 1 - f
``layer_norm`` (a ModelConfig field) layer-normalises lstm/lstmp gate pre-activations.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from mimviewer.errors import ConfigError
from mimviewer.nets.base import RecurrentModel
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.registry import register_model
from mimviewer.nets.weights import layer_indices
from mimviewer.trace import Probe

FORGET_BIAS = 1.0  # added to the LSTM forget gate's pre-activation (keeps memory early in training)

State = tuple[torch.Tensor, ...]


def record_vectors(probe: Probe, layer: int, values: dict[str, torch.Tensor]) -> None:
    """Record (B, U) vectors as (B, 1, U): one "channel", the units as the map axis."""
    if probe.enabled:
        for name, value in values.items():
            probe.record(layer, name, value[:, None])


def positive_option(config: ModelConfig, name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{config.arch}: option {name!r} must be a positive integer, got {value!r}")
    return value


class LSTMCell(nn.Module):
    """LSTM with gates (i, f, g, o) from linear_x(x) + linear_h(r); with ``proj``, LSTMP.

    Without projection the recurrent state r is H; with projection (Sak et al. 2014, as
    torch.nn.LSTM's ``proj_size``) it is P = W_rm H, which is also what the layer passes on.

    The variants mobile LSTM runtimes support (Android NNAPI's LSTM op), in any combination:

    * ``peephole``: W_ci o C_(t-1) into i, W_cf o C_(t-1) into f, W_co o C_t into o (vectors,
      start at zero);
    * ``cifg`` (coupled input and forget gate): no input gate weights, i = 1 - f; linear_x and
      linear_h give (f, g, o);
    * ``layer_norm``: each gate's pre-activation (without bias) is layer-normalised over the
      units, LN_k(z) = gamma_k (z - mean z) / std z + beta_k, and beta_k is the gate's bias
      (linear_x then has none).
    """

    def __init__(
        self,
        in_features: int,
        units: int,
        proj: int | None = None,
        *,
        peephole: bool = False,
        cifg: bool = False,
        layer_norm: bool = False,
    ):
        super().__init__()
        self.units = units
        self.peephole, self.cifg, self.layer_norm = peephole, cifg, layer_norm
        self.gates = ("f", "g", "o") if cifg else ("i", "f", "g", "o")
        recurrent = proj or units
        n = len(self.gates)
        self.linear_x = nn.Linear(in_features, n * units, bias=not layer_norm)  # W_*x (and b_*)
        self.linear_h = nn.Linear(recurrent, n * units, bias=False)  # W_*r
        self.proj = nn.Linear(units, proj, bias=False) if proj else None  # W_rm
        if peephole:
            if not cifg:
                self.w_ci = nn.Parameter(torch.zeros(units))
            self.w_cf = nn.Parameter(torch.zeros(units))
            self.w_co = nn.Parameter(torch.zeros(units))
        if layer_norm:  # LN_k per gate k; its beta is the gate bias b_k
            self.norms = nn.ModuleDict({k: nn.LayerNorm(units) for k in self.gates})
        self.state_sizes = (recurrent, units)  # (r, C)
        self.out_features = recurrent

    def gate(self, k: str, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The pre-activation of gate k: z (+ W_ck o c with peepholes), then LN_k with layer norm."""
        if self.peephole and c is not None:
            z = z + getattr(self, f"w_c{k}") * c
        return self.norms[k](z) if self.layer_norm else z

    def forward(self, x: torch.Tensor, state: State, probe: Probe, layer: int) -> tuple[torch.Tensor, State]:
        r, c = state  # (B, P or U), (B, U)
        x_parts = torch.split(self.linear_x(x), self.units, dim=1)
        r_parts = torch.split(self.linear_h(r), self.units, dim=1)
        z = {
            k: zx + zr for k, zx, zr in zip(self.gates, x_parts, r_parts, strict=True)
        }  # W_kx x + W_kr r (+ b_k)
        f = torch.sigmoid(self.gate("f", z["f"], c) + FORGET_BIAS)
        i = 1 - f if self.cifg else torch.sigmoid(self.gate("i", z["i"], c))
        g = torch.tanh(self.gate("g", z["g"]))
        c_new = f * c + i * g
        o = torch.sigmoid(self.gate("o", z["o"], c_new))
        h_new = o * torch.tanh(c_new)
        values = {"i": i, "f": f, "g": g, "o": o, "C": c_new, "H": h_new}
        if self.proj is None:
            record_vectors(probe, layer, values)
            return h_new, (h_new, c_new)
        p_new = self.proj(h_new)
        record_vectors(probe, layer, {**values, "P": p_new})
        return p_new, (p_new, c_new)


def lstm_variant(config: ModelConfig) -> dict[str, bool]:
    """The LSTM variant a config asks for: ``options`` peephole / cifg, and ``layer_norm``."""
    return {"peephole": config.flag("peephole"), "cifg": config.flag("cifg"), "layer_norm": config.layer_norm}


class SRUCell(nn.Module):
    """Simple Recurrent Unit (Lei et al. 2018, section 2): only elementwise recurrence.

    The highway term reads x itself when its size equals the units, otherwise a linear
    projection of it (``skip``), as the paper does when the sizes differ.
    """

    def __init__(self, in_features: int, units: int):
        super().__init__()
        self.units = units
        self.linear_x = nn.Linear(in_features, 3 * units, bias=False)  # W, W_f, W_r
        self.peephole = nn.Parameter(torch.empty(2, units))  # v_f, v_r
        self.bias = nn.Parameter(torch.zeros(2, units))  # b_f, b_r
        self.skip = nn.Identity() if in_features == units else nn.Linear(in_features, units, bias=False)
        self.state_sizes = (units,)  # (C,)
        self.out_features = units
        bound = 1.0 / math.sqrt(units)
        nn.init.uniform_(self.peephole, -bound, bound)

    def forward(self, x: torch.Tensor, state: State, probe: Probe, layer: int) -> tuple[torch.Tensor, State]:
        (c,) = state  # (B, U)
        g, f_x, r_x = torch.split(self.linear_x(x), self.units, dim=1)  # g = W x is the candidate
        v_f, v_r = self.peephole
        b_f, b_r = self.bias
        f = torch.sigmoid(f_x + v_f * c + b_f)
        c_new = f * c + (1 - f) * g
        r = torch.sigmoid(r_x + v_r * c + b_r)
        h_new = r * c_new + (1 - r) * self.skip(x)
        record_vectors(probe, layer, {"f": f, "r": r, "g": g, "C": c_new, "H": h_new})
        return h_new, (c_new,)


class VectorModel(RecurrentModel):
    """Flatten (or embed) each frame, run stacked vector cells, map back with a linear head."""

    gate_blocks = 4  # linear_x stacks this many gate blocks of num_hidden rows each

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return "cell_list.0.linear_x.weight" in state_dict

    @classmethod
    def config_from_weights(cls, state_dict, *, channels=None, patch_size=None, frame_size=None) -> dict:
        """The head's outputs are C*H*W: H and W from ``frame_size`` when C*H*W matches, else a
        square frame; the patch size only reorders the vector, so the weights cannot tell it."""
        layers = layer_indices(state_dict, "cell_list")
        fields: dict[str, Any] = {
            "arch": cls.arch,
            "num_hidden": tuple(cls.units_from_weights(state_dict, i) for i in layers),
        }
        options: dict[str, Any] = cls.variant_from_weights(state_dict, fields["num_hidden"][0])
        if options.pop("layer_norm", False):
            fields["layer_norm"] = True
        if "embed.weight" in state_dict:
            options["embed"] = int(state_dict["embed.weight"].shape[0])
        if "cell_list.0.proj.weight" in state_dict:
            options["proj"] = [int(state_dict[f"cell_list.{i}.proj.weight"].shape[0]) for i in layers]
        if options:
            fields["options"] = options
        frame = int(state_dict["head.weight"].shape[0])  # C*H*W
        c = channels or 1
        if frame_size is not None and c * frame_size[0] * frame_size[1] == frame:
            fields.update(channels=c, height=int(frame_size[0]), width=int(frame_size[1]))
        elif frame % c == 0 and math.isqrt(frame // c) ** 2 == frame // c:
            side = math.isqrt(frame // c)
            fields.update(channels=c, height=side, width=side)
        else:
            raise ConfigError(
                f"the {cls.arch} head writes {frame} values per frame, which is not C*H*W for "
                f"C={c} and a square frame; give the frame's channels and size"
            )
        return fields

    @classmethod
    def units_from_weights(cls, state_dict, layer: int) -> int:
        """Layer ``layer``'s units: linear_x stacks ``gate_blocks`` blocks of that many rows."""
        return int(state_dict[f"cell_list.{layer}.linear_x.weight"].shape[0]) // cls.gate_blocks

    @classmethod
    def variant_from_weights(cls, state_dict, units: int) -> dict[str, Any]:
        """Options (and ``layer_norm``) the weights of layer 0 tell; the SRU has none."""
        return {}

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        frame = config.patch_channels * config.grid_height * config.grid_width
        embed = config.options.get("embed")
        if embed is not None:
            embed = positive_option(config, "embed", embed)
        self.embed = nn.Linear(frame, embed, bias=False) if embed else None
        self.cell_list = nn.ModuleList(self.build_cells(embed or frame))
        self.head = nn.Linear(self.cell_list[-1].out_features, frame, bias=False)

    def build_cells(self, in_features: int) -> list[nn.Module]:
        raise NotImplementedError

    def recurrent_modules(self) -> dict[str, int]:
        """LSTM/LSTMP: W_r r_(t-1); the SRU has none (its recurrence is elementwise)."""
        return {
            f"cell_list.{i}.linear_h": i for i, cell in enumerate(self.cell_list) if hasattr(cell, "linear_h")
        }

    def init_state(self, batch: int, like: torch.Tensor) -> list[State]:
        return [tuple(like.new_zeros(batch, n) for n in cell.state_sizes) for cell in self.cell_list]

    def step(self, x: torch.Tensor, state: list[State], probe: Probe) -> tuple[torch.Tensor, list[State]]:
        v = x.flatten(1)  # (B, p*p*C*H'*W')
        if self.embed is not None:
            v = self.embed(v)  # (B, E)
        new_state = []
        for layer, cell in enumerate(self.cell_list):
            v, layer_state = cell(v, state[layer], probe, layer)
            new_state.append(layer_state)
        return self.head(v).view(x.shape), new_state  # (B, p*p*C, H', W')


@register_model(
    "lstm", description="LSTM on flattened frames (gates as unit x time heatmaps)", num_hidden=(256, 256)
)
class LSTM(VectorModel):
    weights_priority = 30
    layer_quantities = ("i", "f", "g", "o", "C", "H")

    @classmethod
    def units_from_weights(cls, state_dict, layer: int) -> int:
        """linear_h reads H, which has the units (CIFG stacks 3 gate blocks, not 4)."""
        return int(state_dict[f"cell_list.{layer}.linear_h.weight"].shape[1])

    @classmethod
    def variant_from_weights(cls, state_dict, units: int) -> dict[str, Any]:
        """Peepholes (w_cf), CIFG (3 gate blocks), layer-normalised gates (norms.f)."""
        blocks = int(state_dict["cell_list.0.linear_x.weight"].shape[0]) // units
        variant = {
            "peephole": "cell_list.0.w_cf" in state_dict,
            "cifg": blocks == 3,
            "layer_norm": "cell_list.0.norms.f.weight" in state_dict,
        }
        return {k: True for k, on in variant.items() if on}

    def build_cells(self, in_features: int) -> list[nn.Module]:
        cells = []
        for units in self.config.num_hidden:
            cells.append(LSTMCell(in_features, units, **lstm_variant(self.config)))
            in_features = units
        return cells


@register_model(
    "lstmp",
    description="LSTM with a recurrent projection layer (Sak et al. 2014) on flattened frames",
    num_hidden=(256, 256),
    options={"proj": 128},
)
class LSTMP(LSTM):
    weights_priority = 31

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return super().matches_weights(state_dict) and "cell_list.0.proj.weight" in state_dict

    @classmethod
    def units_from_weights(cls, state_dict, layer: int) -> int:
        """The projection W_rm reads H, which has the units."""
        return int(state_dict[f"cell_list.{layer}.proj.weight"].shape[1])

    layer_quantities = ("i", "f", "g", "o", "C", "H", "P")

    def build_cells(self, in_features: int) -> list[nn.Module]:
        cfg = self.config
        proj = cfg.options.get("proj", 128)
        per_layer = list(proj) if isinstance(proj, (list, tuple)) else [proj] * cfg.num_layers
        if len(per_layer) != cfg.num_layers:
            raise ConfigError(
                f"lstmp: option 'proj' lists {len(per_layer)} sizes for {cfg.num_layers} layers"
            )
        cells = []
        for units, p in zip(cfg.num_hidden, per_layer, strict=True):
            cell = LSTMCell(in_features, units, positive_option(cfg, "proj", p), **lstm_variant(cfg))
            cells.append(cell)
            in_features = cell.out_features
        return cells


@register_model(
    "sru", description="Simple Recurrent Units (Lei et al. 2018) on flattened frames", num_hidden=(256, 256)
)
class SRU(VectorModel):
    weights_priority = 32
    gate_blocks = 3

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return super().matches_weights(state_dict) and "cell_list.0.peephole" in state_dict

    layer_quantities = ("f", "r", "g", "C", "H")

    def build_cells(self, in_features: int) -> list[nn.Module]:
        for name in ("peephole", "cifg"):
            if self.config.flag(name):
                raise ConfigError(f"sru: option {name!r} is an LSTM variant; the SRU has no such gate")
        cells = []
        for units in self.config.num_hidden:
            cells.append(SRUCell(in_features, units))
            in_features = units
        return cells
