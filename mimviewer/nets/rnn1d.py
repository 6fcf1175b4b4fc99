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

    Without projection the recurrent state r is H; with projection (Sak et al. 2014, without
    the paper's peepholes, as torch.nn.LSTM's ``proj_size``) it is P = W_rm H, which is also
    what the layer passes on.
    """

    def __init__(self, in_features: int, units: int, proj: int | None = None):
        super().__init__()
        self.units = units
        recurrent = proj or units
        self.linear_x = nn.Linear(in_features, 4 * units)  # W_ix, W_fx, W_gx, W_ox and b_i, b_f, b_g, b_o
        self.linear_h = nn.Linear(recurrent, 4 * units, bias=False)  # W_ir, W_fr, W_gr, W_or
        self.proj = nn.Linear(units, proj, bias=False) if proj else None  # W_rm
        self.state_sizes = (recurrent, units)  # (r, C)
        self.out_features = recurrent

    def forward(self, x: torch.Tensor, state: State, probe: Probe, layer: int) -> tuple[torch.Tensor, State]:
        r, c = state  # (B, P or U), (B, U)
        i_x, f_x, g_x, o_x = torch.split(self.linear_x(x), self.units, dim=1)
        i_r, f_r, g_r, o_r = torch.split(self.linear_h(r), self.units, dim=1)
        i = torch.sigmoid(i_x + i_r)
        f = torch.sigmoid(f_x + f_r + FORGET_BIAS)
        g = torch.tanh(g_x + g_r)
        o = torch.sigmoid(o_x + o_r)
        c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        values = {"i": i, "f": f, "g": g, "o": o, "C": c_new, "H": h_new}
        if self.proj is None:
            record_vectors(probe, layer, values)
            return h_new, (h_new, c_new)
        p_new = self.proj(h_new)
        record_vectors(probe, layer, {**values, "P": p_new})
        return p_new, (p_new, c_new)


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
            "num_hidden": tuple(
                int(state_dict[f"cell_list.{i}.linear_x.weight"].shape[0]) // cls.gate_blocks for i in layers
            ),
        }
        options: dict[str, Any] = {}
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

    def build_cells(self, in_features: int) -> list[nn.Module]:
        cells = []
        for units in self.config.num_hidden:
            cells.append(LSTMCell(in_features, units))
            in_features = units
        return cells


@register_model(
    "lstmp",
    description="LSTM with a recurrent projection layer (Sak et al. 2014) on flattened frames",
    num_hidden=(256, 256),
    options={"proj": 128},
)
class LSTMP(VectorModel):
    weights_priority = 31

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return super().matches_weights(state_dict) and "cell_list.0.proj.weight" in state_dict

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
            cell = LSTMCell(in_features, units, positive_option(cfg, "proj", p))
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
        cells = []
        for units in self.config.num_hidden:
            cells.append(SRUCell(in_features, units))
            in_features = units
        return cells
