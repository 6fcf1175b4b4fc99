"""ConvLSTM (Shi et al. 2015), as OpenSTL >= 1.0 defines it, optionally with the paper's peepholes.

OpenSTL omits the peepholes of Shi et al.'s equations (3); ``options["peephole"] = True`` adds
them: Hadamard weights W_ci, W_cf (C_(t-1) into i and f) and W_co (C_t into o), each of shape
(hidden, H', W') as in the paper (so they fix the frame size). They start at zero, so a fresh
peephole model computes what the plain one does until training moves them.
"""

from __future__ import annotations

import torch
from torch import nn

from mimviewer.nets.base import RecurrentModel, conv_block
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.registry import register_model
from mimviewer.trace import Probe


class ConvLSTMCell(nn.Module):
    """Gates (i, f, g, o) from conv_x(x) + conv_h(h); no forget bias (OpenSTL); optional peepholes."""

    def __init__(self, in_channels: int, hidden: int, config: ModelConfig):
        super().__init__()
        self.hidden = hidden
        k = config.filter_size
        self.conv_x = conv_block(in_channels, 4 * hidden, k, config)
        self.conv_h = conv_block(hidden, 4 * hidden, k, config)
        self.peephole = config.flag("peephole")
        if self.peephole:  # Shi et al. (2015) eq. 3: W_ci o C_(t-1), W_cf o C_(t-1), W_co o C_t
            grid = (hidden, config.grid_height, config.grid_width)
            self.w_ci = nn.Parameter(torch.zeros(grid))
            self.w_cf = nn.Parameter(torch.zeros(grid))
            self.w_co = nn.Parameter(torch.zeros(grid))

    def forward(
        self, x: torch.Tensor, h: torch.Tensor | None, c: torch.Tensor, probe: Probe, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``h=None`` is the zero state without LayerNorm: conv_h(0) = 0, so it is not computed."""
        x_gates = self.conv_x(x)
        h_gates = torch.zeros_like(x_gates) if h is None else self.conv_h(h)
        i_x, f_x, g_x, o_x = torch.split(x_gates, self.hidden, dim=1)
        i_h, f_h, g_h, o_h = torch.split(h_gates, self.hidden, dim=1)
        if self.peephole:
            i = torch.sigmoid(i_x + i_h + self.w_ci * c)
            f = torch.sigmoid(f_x + f_h + self.w_cf * c)
            g = torch.tanh(g_x + g_h)
            c_new = f * c + i * g
            o = torch.sigmoid(o_x + o_h + self.w_co * c_new)
        else:
            i = torch.sigmoid(i_x + i_h)
            f = torch.sigmoid(f_x + f_h)
            g = torch.tanh(g_x + g_h)
            o = torch.sigmoid(o_x + o_h)
            c_new = f * c + i * g
        h_new = o * torch.tanh(c_new)
        for name, value in (("i", i), ("f", f), ("g", g), ("o", o), ("C", c_new), ("H", h_new)):
            probe.record(layer, name, value)
        return h_new, c_new


@register_model(
    "convlstm", description="ConvLSTM: stacked convolutional LSTM cells", num_hidden=(64, 64, 64, 64)
)
class ConvLSTM(RecurrentModel):
    """Stacked ConvLSTM cells with a 1x1 output head (OpenSTL's ConvLSTM_Model)."""

    layer_quantities = ("i", "f", "g", "o", "C", "H")
    unused_checkpoint_keys = (r"cell_list\.\d+\.conv_o\..*", r"cell_list\.\d+\.conv_last\..*")
    weights_priority = 50

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        conv_x = state_dict.get("cell_list.0.conv_x.0.weight")
        conv_h = state_dict.get("cell_list.0.conv_h.0.weight")
        return conv_x is not None and conv_h is not None and conv_x.shape[0] == 4 * conv_h.shape[1]

    @classmethod
    def config_from_weights(cls, state_dict, **hints) -> dict:
        """OpenSTL's fields, plus ``peephole`` when the Hadamard weights W_ci, W_cf, W_co are there."""
        fields = super().config_from_weights(state_dict, **hints)
        if "cell_list.0.w_ci" in state_dict:
            fields["options"] = {"peephole": True}
        return fields

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        hidden = config.num_hidden
        self.cell_list = nn.ModuleList(
            ConvLSTMCell(config.patch_channels if i == 0 else hidden[i - 1], hidden[i], config)
            for i in range(config.num_layers)
        )
        self.conv_last = nn.Conv2d(hidden[-1], config.patch_channels, 1, bias=False)

    def recurrent_modules(self) -> dict[str, int]:
        return {f"cell_list.{i}.conv_h.0": i for i in range(self.config.num_layers)}  # W_h * H_(t-1)

    def init_state(self, batch: int, like: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor]]:
        """Per layer (H, C), all zeros. Without LayerNorm H is None: conv_h of a zero H is zero
        (the convs have no bias), so the first step skips it; OpenSTL computes it."""
        zeros = self.zero_maps(batch, like)
        return [(z if self.config.layer_norm else None, z) for z in zeros]

    def step(self, x: torch.Tensor, state: list, probe: Probe) -> tuple[torch.Tensor, list]:
        new_state = []
        for layer, cell in enumerate(self.cell_list):
            h, c = cell(x, *state[layer], probe, layer)
            new_state.append((h, c))
            x = h
        return self.conv_last(x), new_state
