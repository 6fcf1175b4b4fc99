"""MIM, Memory In Memory (Wang et al. 2019), as OpenSTL's ``MIM_Model`` / ``mim_modules`` define it.

Layer 0 is an ST-LSTM (PredRNN's cell); layers 1..L-1 are MIM blocks. Between layer l-1 and
layer l sits a MIM-N cell (non-stationary module) that turns the difference signal D into
difference features Dn; the MIM block's stationary module MIM-S reads Dn and replaces the
forget path of the block's C. The paper's equations and its official code differ; OpenSTL
follows the code, and so do we (checkpoint keys and gate orders included):

* ``stlstm_layer.0.*``: the ST-LSTM (``conv_x``, ``conv_h``, ``conv_m``, ``conv_o``, ``conv_last``);
* ``stlstm_layer.{l}.*`` (l >= 1): the MIM block (``conv_x_cc``, ``conv_s_cc``, ``conv_t_cc``,
  ``conv_last``) with its MIM-S weights stored flat on it (``ct_weight``, ``oc_weight``,
  ``conv_h_concat``, ``conv_x_concat``);
* ``stlstm_layer_diff.{l-1}.*``: the MIM-N feeding layer l (same four names; OpenSTL also
  stores an unused ``conv_last`` there, which the loader drops).

What happens at step 0 (OpenSTL's code): there is no previous H, so there is no difference
D; OpenSTL runs MIM-N on zeros and throws every result away, so its state stays empty (zero)
and the MIM block reads Dn = 0. We skip that wasted call, and record nothing of MIM-N at
step 0 (D, its gates, N and Dn are "not computed" there: NaN with a validity mask in the
Trace, never 0). MIM-S does run at step 0 (on Dn = 0 and the zero C_prev; its output feeds
C), in OpenSTL as here, so its quantities are recorded at every step.

Departures from OpenSTL: it keeps MIM-S's cell state S on the module between calls, so one
batch leaks into the next (and a batch of another size fails); here S is ordinary rollout
state that starts at zero for every sequence. OpenSTL also detaches S at every step, which
only that leak makes necessary; here gradients flow through S like through every other
state. On a fresh module the outputs are identical (tools/parity_mim_e3d.py checks both).
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from mimviewer.nets.base import RecurrentModel, conv_block
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.predrnn import SpatioTemporalLSTMCell, memory_update, require_equal_hidden
from mimviewer.nets.registry import register_model
from mimviewer.trace import Probe

ST_LSTM_QUANTITIES = ("i", "f", "g", "i'", "f'", "g'", "o", "C", "M", "H")
MIM_QUANTITIES = (
    # MIM-N below the block (input D, gates, memory N, output Dn)
    "D", "N.i", "N.f", "N.g", "N.o", "N", "Dn",
    # MIM-S inside the block (gates, memory S, output T)
    "S.i", "S.f", "S.g", "S.o", "S", "T",
    # the block itself: C path (i, g; T replaces f o C_prev), M path (i', f', g'), output
    "i", "g", "i'", "f'", "g'", "o", "C", "M", "H",
)  # fmt: skip


class PeepholeOutput(NamedTuple):
    i: torch.Tensor
    f: torch.Tensor
    g: torch.Tensor
    o: torch.Tensor
    c: torch.Tensor  # new cell memory (N for MIM-N, S for MIM-S)
    h: torch.Tensor  # output (Dn for MIM-N, T for MIM-S)


class PeepholeConvLSTM(nn.Module):
    """The peephole ConvLSTM that MIM uses twice: as MIM-N and (weights flat on the block) as MIM-S.

    conv_x_concat(x) and conv_h_concat(h) give blocks in order (i, g, f, o); the peepholes
    ``ct_weight`` (2*nh, H', W') let C_prev into i and f, ``oc_weight`` (nh, H', W') lets
    C_new into o; forget bias +1.
    """

    def __init__(self, hidden: int, config: ModelConfig):
        super().__init__()
        self.hidden = hidden
        k, hp, wp = config.filter_size, config.grid_height, config.grid_width
        self.ct_weight = nn.Parameter(torch.zeros(2 * hidden, hp, wp))  # OpenSTL initialises these at zero
        self.oc_weight = nn.Parameter(torch.zeros(hidden, hp, wp))
        self.conv_h_concat = conv_block(hidden, 4 * hidden, k, config)
        self.conv_x_concat = conv_block(hidden, 4 * hidden, k, config)

    def peephole(self, x: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> PeepholeOutput:
        i_x, g_x, f_x, o_x = torch.split(self.conv_x_concat(x), self.hidden, dim=1)
        i_h, g_h, f_h, o_h = torch.split(self.conv_h_concat(h), self.hidden, dim=1)
        w_ic, w_fc = torch.split(self.ct_weight, self.hidden, dim=0)
        # (terms summed in OpenSTL's order, so that float32 rounding matches it too)
        i, f, g, _, c_new = memory_update(i_h + w_ic * c + i_x, f_h + w_fc * c + f_x, g_h + g_x, c)
        o = torch.sigmoid(o_h + o_x + self.oc_weight * c_new)
        h_new = o * torch.tanh(c_new)
        return PeepholeOutput(i, f, g, o, c_new, h_new)


class MIMN(PeepholeConvLSTM):
    """Non-stationary module: a peephole ConvLSTM over the difference signal D."""

    def forward(
        self, d: torch.Tensor, dn: torch.Tensor, n: torch.Tensor, probe: Probe, layer: int
    ) -> PeepholeOutput:
        out = self.peephole(d, dn, n)
        for name, value in (("D", d), ("N.i", out.i), ("N.f", out.f), ("N.g", out.g), ("N.o", out.o)):
            probe.record(layer, name, value)
        probe.record(layer, "N", out.c)
        probe.record(layer, "Dn", out.h)
        return out


class MIMBlockOutput(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor
    m: torch.Tensor
    s: torch.Tensor  # MIM-S cell memory


class MIMBlock(PeepholeConvLSTM):
    """MIM block; the inherited peephole weights are its stationary module MIM-S.

    conv_x_cc(x) and conv_s_cc(M) give (i, g, f, o), conv_t_cc(H_prev) gives (i, g, o).
    MIM-S runs with input Dn, "hidden" C_prev and its own memory S; its output T replaces
    f o C_prev in the C update.
    """

    def __init__(self, hidden: int, config: ModelConfig):
        super().__init__(hidden, config)
        k = config.filter_size
        self.conv_t_cc = conv_block(hidden, 3 * hidden, k, config)
        self.conv_s_cc = conv_block(hidden, 4 * hidden, k, config)
        self.conv_x_cc = conv_block(hidden, 4 * hidden, k, config)
        self.conv_last = nn.Conv2d(2 * hidden, hidden, 1, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        dn: torch.Tensor,
        h: torch.Tensor,
        c: torch.Tensor,
        m: torch.Tensor,
        s: torch.Tensor,
        probe: Probe,
        layer: int,
    ) -> MIMBlockOutput:
        i_x, g_x, f_x, o_x = torch.split(self.conv_x_cc(x), self.hidden, dim=1)
        i_t, g_t, o_t = torch.split(self.conv_t_cc(h), self.hidden, dim=1)
        i_s, g_s, f_s, o_s = torch.split(self.conv_s_cc(m), self.hidden, dim=1)
        # spatiotemporal memory M (as in ST-LSTM, but gated from x and M only)
        i_prime, f_prime, g_prime, _, m_new = memory_update(i_x + i_s, f_x + f_s, g_x + g_s, m)
        # stationary module: T replaces the forget path f o C_prev
        stationary = self.peephole(dn, c, s)
        i = torch.sigmoid(i_x + i_t)
        g = torch.tanh(g_x + g_t)
        c_new = stationary.h + i * g
        o = torch.sigmoid(o_x + o_t + o_s)
        h_new = o * torch.tanh(self.conv_last(torch.cat((c_new, m_new), 1)))
        for name, value in (
            ("S.i", stationary.i),
            ("S.f", stationary.f),
            ("S.g", stationary.g),
            ("S.o", stationary.o),
            ("S", stationary.c),
            ("T", stationary.h),
            ("i", i),
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
        return MIMBlockOutput(h_new, c_new, m_new, stationary.c)


class MIMState(NamedTuple):
    t: int  # steps taken so far (step 0 has no difference signal)
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (H, C) per layer
    memory: torch.Tensor  # zigzag M leaving the top layer, read by layer 0 at the next step
    diff: list[tuple[torch.Tensor, torch.Tensor]]  # (Dn, N) of MIM-N feeding layer l, for l = 1..L-1
    stationary: list[torch.Tensor]  # MIM-S memory S of block l, for l = 1..L-1


class MIMStack(RecurrentModel):
    """What ``mim`` and ``mim_paper`` share: an ST-LSTM layer 0, MIM blocks above it, a MIM-N
    feeding each block, a 1x1 head; each names its own block and MIM-N types."""

    layer_quantities = ST_LSTM_QUANTITIES
    layer_key_prefix = "stlstm_layer"
    first_conv_key = "stlstm_layer.0.conv_x.0.weight"
    block_type: ClassVar[type[nn.Module]]  # the MIM block of layers 1..L-1
    novelty_type: ClassVar[type[nn.Module]]  # the MIM-N feeding each block
    # the convs that read block l's previous states ("{l}": the block, "{n}": the MIM-N feeding it)
    block_recurrent_keys: ClassVar[tuple[str, ...]]

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        require_equal_hidden(config, type(self).__name__)
        hidden = config.num_hidden
        self.stlstm_layer = nn.ModuleList(
            [SpatioTemporalLSTMCell(config.patch_channels, hidden[0], config)]
            + [self.block_type(hidden[i], config) for i in range(1, config.num_layers)]
        )
        self.stlstm_layer_diff = nn.ModuleList(
            self.novelty_type(hidden[i], config) for i in range(1, config.num_layers)
        )
        self.conv_last = nn.Conv2d(hidden[-1], config.patch_channels, 1, bias=False)

    def quantities(self, layer: int) -> tuple[str, ...]:
        return ST_LSTM_QUANTITIES if layer == 0 else MIM_QUANTITIES

    def recurrent_modules(self) -> dict[str, int]:
        blocks = range(1, self.config.num_layers)
        return {
            "stlstm_layer.0.conv_h.0": 0,  # ST-LSTM: W_h * H_(t-1)
            **{key.format(l=i, n=i - 1): i for key in self.block_recurrent_keys for i in blocks},
        }


@register_model(
    "mim",
    description="MIM: ST-LSTM + Memory-In-Memory blocks (MIM-N, MIM-S)",
    num_hidden=(128, 128, 128, 128),
)
class MIM(MIMStack):
    """ST-LSTM layer, MIM blocks above it, MIM-N cells between them, 1x1 head (OpenSTL's MIM_Model)."""

    block_type = MIMBlock
    novelty_type = MIMN
    block_recurrent_keys = (
        "stlstm_layer.{l}.conv_t_cc.0",  # block: W_t * H_(t-1)
        "stlstm_layer.{l}.conv_h_concat.0",  # MIM-S: W * C_(t-1)
        "stlstm_layer_diff.{n}.conv_h_concat.0",  # MIM-N: W * Dn_(t-1)
    )
    unused_checkpoint_keys = (r"stlstm_layer_diff\.\d+\.conv_last\..*",)
    weights_priority = 100
    hidden_conv_keys = ("stlstm_layer.{i}.conv_h.0.weight", "stlstm_layer.{i}.conv_s_cc.0.weight")

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        return any(k.startswith("stlstm_layer") for k in state_dict)

    def init_state(self, batch: int, like: torch.Tensor) -> MIMState:
        zeros = self.zero_maps(batch, like)
        return MIMState(
            t=0,
            layers=[(z, z) for z in zeros],
            memory=zeros[0],
            diff=[(z, z) for z in zeros[1:]],
            stationary=zeros[1:],
        )

    def step(self, x: torch.Tensor, state: MIMState, probe: Probe) -> tuple[torch.Tensor, MIMState]:
        h_below_prev = state.layers[0][0]
        out = self.stlstm_layer[0](x, *state.layers[0], state.memory, probe, 0)
        layers, m = [(out.h, out.c)], out.m
        diff, stationary = [], []
        d = out.h - h_below_prev  # D for the first MIM-N: H^0_t - H^0_(t-1)
        for layer in range(1, self.config.num_layers):
            if state.t == 0:  # no difference yet: MIM-N computes nothing (not recorded), Dn = 0
                dn, n = state.diff[layer - 1]
            else:
                mimn = self.stlstm_layer_diff[layer - 1](d, *state.diff[layer - 1], probe, layer)
                dn, n = mimn.h, mimn.c
            diff.append((dn, n))
            block = self.stlstm_layer[layer](
                layers[-1][0], dn, *state.layers[layer], m, state.stationary[layer - 1], probe, layer
            )
            layers.append((block.h, block.c))
            m = block.m
            stationary.append(block.s)
            d = dn  # the next MIM-N reads this one's output
        y = self.conv_last(layers[-1][0])
        return y, MIMState(state.t + 1, layers, m, diff, stationary)
