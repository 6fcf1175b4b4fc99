"""PredRNN (Wang et al. 2017): stacked spatiotemporal LSTM (ST-LSTM) cells with a zigzag memory.

Follows OpenSTL's ``PredRNN_Model`` / ``SpatioTemporalLSTMCell`` so that its checkpoints load
unchanged (``cell_list.{i}.conv_x.0.weight`` ... ``conv_last.weight``).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from mimviewer.errors import ConfigError
from mimviewer.nets.base import RecurrentModel, conv_block
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.registry import register_model
from mimviewer.trace import Probe

FORGET_BIAS = 1.0  # added to both forget gates before the sigmoid (OpenSTL's _forget_bias)


class MemoryUpdate(NamedTuple):
    i: torch.Tensor  # input gate
    f: torch.Tensor  # forget gate
    g: torch.Tensor  # candidate
    written: torch.Tensor  # i o g: what was written into the memory
    memory: torch.Tensor  # the new memory f o memory_prev + i o g


def memory_update(
    i_in: torch.Tensor, f_in: torch.Tensor, g_in: torch.Tensor, memory: torch.Tensor
) -> MemoryUpdate:
    """One LSTM memory update from summed gate inputs (forget bias +1): the ST-LSTM's C and M
    paths, and the MIM, MIM-paper, PredRNN++ and E3D memories wherever their equations are this one.

    Each caller sums a gate's convolutions in its own order, so float32 rounding stays the caller's.
    """
    i = torch.sigmoid(i_in)
    f = torch.sigmoid(f_in + FORGET_BIAS)
    g = torch.tanh(g_in)
    written = i * g
    return MemoryUpdate(i, f, g, written, f * memory + written)


class STLSTMOutput(NamedTuple):
    h: torch.Tensor  # new hidden state H
    c: torch.Tensor  # new cell memory C (temporal, stays in its layer)
    m: torch.Tensor  # new spatiotemporal memory M (goes to the layer above)
    delta_c: torch.Tensor  # i o g: what was written into C (PredRNN-V2's decoupling loss)
    delta_m: torch.Tensor  # i' o g': what was written into M


class SpatioTemporalLSTMCell(nn.Module):
    """ST-LSTM: a ConvLSTM for C plus a second LSTM path for the zigzag memory M.

    conv_x gives 7 blocks (i, f, g, i', f', g', o); conv_h gives 4 (i, f, g, o);
    conv_m gives 3 (i', f', g'); conv_o reads [C, M]; conv_last (1x1) maps [C, M] to H.
    """

    x_blocks: ClassVar[int] = 7  # gate blocks conv_x gives (a cell built on this one may use fewer)
    h_blocks: ClassVar[int] = 4  # gate blocks conv_h gives

    def __init__(self, in_channels: int, hidden: int, config: ModelConfig):
        super().__init__()
        self.hidden = hidden
        k = config.filter_size
        self.conv_x = conv_block(in_channels, self.x_blocks * hidden, k, config)
        self.conv_h = conv_block(hidden, self.h_blocks * hidden, k, config)
        self.conv_m = conv_block(hidden, 3 * hidden, k, config)
        self.conv_o = conv_block(2 * hidden, hidden, k, config)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, m: torch.Tensor, probe: Probe, layer: int
    ) -> STLSTMOutput:
        i_x, f_x, g_x, i_x_m, f_x_m, g_x_m, o_x = torch.split(self.conv_x(x), self.hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), self.hidden, dim=1)
        i_m, f_m, g_m = torch.split(self.conv_m(m), self.hidden, dim=1)
        # temporal memory C
        i, f, g, delta_c, c_new = memory_update(i_x + i_h, f_x + f_h, g_x + g_h, c)
        # spatiotemporal memory M
        i_prime, f_prime, g_prime, delta_m, m_new = memory_update(i_x_m + i_m, f_x_m + f_m, g_x_m + g_m, m)
        o, h_new = self.output(o_x + o_h, c_new, m_new)
        for name, value in (
            ("i", i),
            ("f", f),
            ("g", g),
            ("i'", i_prime),
            ("f'", f_prime),
            ("g'", g_prime),
            ("o", o),
            ("C", c_new),
            ("M", m_new),
            ("H", h_new),
        ):
            probe.record(layer, name, value)
        return STLSTMOutput(h_new, c_new, m_new, delta_c, delta_m)

    def output(
        self, o_in: torch.Tensor, c: torch.Tensor, m: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(o, H): the output gate reads the new memories C and M; H = o * tanh(W_1x1 * [C, M])."""
        memories = torch.cat((c, m), 1)  # (B, 2*hidden, H', W')
        o = torch.sigmoid(o_in + self.conv_o(memories))
        return o, o * torch.tanh(self.conv_last(memories))


class PredRNNState(NamedTuple):
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (H, C) per layer
    memory: torch.Tensor  # M leaving the top layer, read by layer 0 at the next step


def require_equal_hidden(config: ModelConfig, arch: str) -> None:
    """The zigzag memory M is updated in place by every layer, so all layers must share its size."""
    if len(set(config.num_hidden)) != 1:
        raise ConfigError(
            f"{arch} needs the same hidden size in every layer, got num_hidden={list(config.num_hidden)}: "
            "its memory M (f' o M_prev + i' o g') passes through every layer, so it cannot change size"
        )


@register_model(
    "predrnn",
    description="PredRNN: stacked ST-LSTM cells with a zigzag memory",
    num_hidden=(128, 128, 128, 128),
)
class PredRNN(RecurrentModel):
    """Stacked ST-LSTM cells with a 1x1 output head (OpenSTL's PredRNN_Model)."""

    layer_quantities = ("i", "f", "g", "i'", "f'", "g'", "o", "C", "M", "H")
    weights_priority = 60

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return "cell_list.0.conv_m.0.weight" in state_dict

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        require_equal_hidden(config, type(self).__name__)
        hidden = config.num_hidden
        self.cell_list = nn.ModuleList(
            SpatioTemporalLSTMCell(config.patch_channels if i == 0 else hidden[i - 1], hidden[i], config)
            for i in range(config.num_layers)
        )
        self.conv_last = nn.Conv2d(hidden[-1], config.patch_channels, 1, bias=False)

    def recurrent_modules(self) -> dict[str, int]:
        return {f"cell_list.{i}.conv_h.0": i for i in range(self.config.num_layers)}  # W_h * H_(t-1)

    def init_state(self, batch: int, like: torch.Tensor) -> PredRNNState:
        zeros = self.zero_maps(batch, like)
        return PredRNNState(layers=[(z, z) for z in zeros], memory=zeros[-1])

    def step(self, x: torch.Tensor, state: PredRNNState, probe: Probe) -> tuple[torch.Tensor, PredRNNState]:
        m = state.memory  # zigzag: the top layer's M of the previous step enters layer 0
        layers = []
        for layer, cell in enumerate(self.cell_list):
            out = cell(x, *state.layers[layer], m, probe, layer)
            layers.append((out.h, out.c))
            m = out.m  # ... and flows up through the layers within this step
            x = out.h
        return self.conv_last(x), PredRNNState(layers, m)
