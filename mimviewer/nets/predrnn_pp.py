"""PredRNN++ (Wang et al. 2018): causal LSTM cells plus a gradient highway unit (GHU).

Follows OpenSTL's ``PredRNNpp_Model`` / ``CausalLSTMCell`` / ``GHU`` so that its checkpoints
load unchanged. The causal cell updates C first and then computes M *from the new C*
(the cascade); the GHU between layers 1 and 2 carries a highway state Z across time that
gives gradients a short path through a deep-in-time network.

Differences from OpenSTL, both only where OpenSTL cannot run at all:

* OpenSTL's GHU LayerNorm normalises ``[hidden, H', W']`` while its convs produce
  ``2 * hidden`` channels, so ``layer_norm=1`` crashes there; ours normalises all
  ``2 * hidden`` channels (as the original TensorFlow code did).
* OpenSTL needs the same hidden size in every layer. Here M may change size between
  layers, because the causal cell reads the incoming M only through ``conv_m``; layer 0's
  ``conv_m`` reads the top layer's M. With equal sizes the weights are OpenSTL's.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from mimviewer.errors import ConfigError
from mimviewer.nets.base import RecurrentModel, conv_block
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.predrnn import memory_update
from mimviewer.nets.registry import register_model
from mimviewer.trace import Probe

GHU_INIT_RANGE = 0.001  # OpenSTL initialises the GHU convs uniformly in [-0.001, 0.001]


class CausalLSTMCell(nn.Module):
    """Causal LSTM: C from (x, H, C_prev); then M from (x, M_in, C_new); o reads C_new and M_new.

    conv_x gives 7 blocks (i, f, g, i', f', g', o); conv_h 4 (i, f, g, o); conv_c 3 (i, f, g)
    from C_prev; conv_m 3 (i', f', m) from the incoming M; conv_c2m 4 (i', g', f', o) from the
    new C — note that order; conv_om 1 (o) from the new M; conv_last (1x1) maps [C, M] to H.
    """

    def __init__(self, in_channels: int, memory_channels: int, hidden: int, config: ModelConfig):
        super().__init__()
        self.hidden = hidden
        k = config.filter_size
        self.conv_x = conv_block(in_channels, 7 * hidden, k, config)
        self.conv_h = conv_block(hidden, 4 * hidden, k, config)
        self.conv_c = conv_block(hidden, 3 * hidden, k, config)
        self.conv_m = conv_block(memory_channels, 3 * hidden, k, config)
        self.conv_c2m = conv_block(hidden, 4 * hidden, k, config)
        self.conv_om = conv_block(hidden, hidden, k, config)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)

    def forward(
        self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor, m: torch.Tensor, probe: Probe, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i_x, f_x, g_x, i_x_m, f_x_m, g_x_m, o_x = torch.split(self.conv_x(x), self.hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(self.conv_h(h), self.hidden, dim=1)
        i_c, f_c, g_c = torch.split(self.conv_c(c), self.hidden, dim=1)
        i_m, f_m, m_m = torch.split(self.conv_m(m), self.hidden, dim=1)
        # first the temporal memory C ...
        i, f, g, _, c_new = memory_update(i_x + i_h + i_c, f_x + f_h + f_c, g_x + g_h + g_c, c)
        # ... then the spatiotemporal memory M, driven by the new C
        i_cm, g_cm, f_cm, o_c = torch.split(self.conv_c2m(c_new), self.hidden, dim=1)
        i_prime, f_prime, g_prime, _, m_new = memory_update(
            i_x_m + i_m + i_cm, f_x_m + f_m + f_cm, g_x_m + g_cm, torch.tanh(m_m)
        )
        # output: tanh, not sigmoid, as in the paper and OpenSTL
        o = torch.tanh(o_x + o_h + o_c + self.conv_om(m_new))
        h_new = o * torch.tanh(self.conv_last(torch.cat((c_new, m_new), 1)))
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
        return h_new, c_new, m_new


class GradientHighwayUnit(nn.Module):
    """GHU: Z = u o p + (1 - u) o Z_prev, with p = tanh(.) and switch u = sigma(.) from (x, Z_prev)."""

    def __init__(self, hidden: int, config: ModelConfig):
        super().__init__()
        self.hidden = hidden
        k = config.filter_size
        self.z_concat = conv_block(hidden, 2 * hidden, k, config)
        self.x_concat = conv_block(hidden, 2 * hidden, k, config)
        for block in (self.z_concat, self.x_concat):
            nn.init.uniform_(block[0].weight, -GHU_INIT_RANGE, GHU_INIT_RANGE)

    def forward(self, x: torch.Tensor, z: torch.Tensor, probe: Probe, layer: int) -> torch.Tensor:
        p_x, u_x = torch.split(self.x_concat(x), self.hidden, dim=1)
        p_z, u_z = torch.split(self.z_concat(z), self.hidden, dim=1)
        p = torch.tanh(p_x + p_z)
        u = torch.sigmoid(u_x + u_z)
        z_new = u * p + (1 - u) * z
        for name, value in (("Z.p", p), ("Z.u", u), ("Z", z_new)):
            probe.record(layer, name, value)
        return z_new


class PredRNNppState(NamedTuple):
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (H, C) per layer
    memory: torch.Tensor  # M leaving the top layer, read by layer 0 at the next step
    highway: torch.Tensor  # the GHU state Z


@register_model(
    "predrnn_pp",
    description="PredRNN++: causal LSTM cells with a gradient highway unit",
    num_hidden=(128, 128, 128, 128),
)
class PredRNNpp(RecurrentModel):
    """Stacked causal LSTM cells; layer 0's H passes through the GHU before layer 1 (OpenSTL's model).

    The GHU's quantities (Z.p, Z.u, Z) are recorded with layer 0, whose H the GHU reads.
    """

    layer_quantities = ("i", "f", "g", "i'", "f'", "g'", "o", "C", "M", "H")
    # the causal LSTM's output "gate" is tanh, in [-1, 1]: a state, not a gate
    quantity_kinds: ClassVar[dict[str, str]] = {"o": "state"}
    highway_quantities = ("Z.p", "Z.u", "Z")
    # OpenSTL builds a conv_o in every causal cell but never uses it.
    unused_checkpoint_keys = (r"cell_list\.\d+\.conv_o\..*",)
    weights_priority = 80

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return any(k.startswith("gradient_highway.") or ".conv_c2m." in k for k in state_dict)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        if config.num_layers < 2:
            raise ConfigError(
                f"PredRNN++ needs at least 2 layers (its gradient highway sits between layers 1 and 2), "
                f"got num_hidden={list(config.num_hidden)}"
            )
        hidden = config.num_hidden
        self.gradient_highway = GradientHighwayUnit(hidden[0], config)
        # M reaches layer i from layer i-1; layer 0 reads the top layer's (hidden[-1]) from the last step
        self.cell_list = nn.ModuleList(
            CausalLSTMCell(
                in_channels=config.patch_channels if i == 0 else hidden[i - 1],
                memory_channels=hidden[i - 1],
                hidden=hidden[i],
                config=config,
            )
            for i in range(config.num_layers)
        )
        self.conv_last = nn.Conv2d(hidden[-1], config.patch_channels, 1, bias=False)

    def quantities(self, layer: int) -> tuple[str, ...]:
        return self.layer_quantities + (self.highway_quantities if layer == 0 else ())

    def recurrent_modules(self) -> dict[str, int]:
        layers = range(self.config.num_layers)
        return {
            **{f"cell_list.{i}.conv_h.0": i for i in layers},  # W_h * H_(t-1)
            **{f"cell_list.{i}.conv_c.0": i for i in layers},  # W_c * C_(t-1)
            "gradient_highway.z_concat.0": 0,  # W_z * Z_(t-1)
        }

    def init_state(self, batch: int, like: torch.Tensor) -> PredRNNppState:
        zeros = self.zero_maps(batch, like)
        return PredRNNppState(layers=[(z, z) for z in zeros], memory=zeros[-1], highway=zeros[0])

    def step(
        self, x: torch.Tensor, state: PredRNNppState, probe: Probe
    ) -> tuple[torch.Tensor, PredRNNppState]:
        m, z = state.memory, state.highway  # M: the top layer's, from the previous step (zigzag)
        layers = []
        for layer, cell in enumerate(self.cell_list):
            h, c, m = cell(x, *state.layers[layer], m, probe, layer)
            layers.append((h, c))
            if layer == 0:
                z = self.gradient_highway(h, z, probe, layer)
                x = z  # layer 1 reads the highway, not H of layer 0
            else:
                x = h
        return self.conv_last(x), PredRNNppState(layers, m, z)
