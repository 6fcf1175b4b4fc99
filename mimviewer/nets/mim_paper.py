"""MIM as the paper describes it (Wang et al., CVPR 2019), not as the released code computes it.

``mim`` (mimviewer/nets/mim.py) reproduces the official code and OpenSTL; this module writes
the paper's MIM block, MIM-N and MIM-S as equations, so that the two can be run side by side on
the same sequence. The paper's equation text (its Section 3) could not be read for this project:
the equations are reconstructed from its abstract, sentences quoted from its Section 3.1, PredRNN's
ST-LSTM and the LSTM form; docs/mim-paper-vs-code.md tags every equation with what it rests on
and lists every difference, equation next to code line. In short:

* MIM-N has no hidden state of its own: its gates read a convolution of N_(t-1), its output
  gate a convolution of the new N_t (the code: a peephole ConvLSTM over its own previous
  output, with elementwise peephole weights of one fixed frame size);
* every MIM-N reads the difference of the hidden states of *its own* layer below,
  H^(l-1)_t - H^(l-1)_(t-1) (the code: MIM-N 2, 3, ... read the output of the MIM-N below);
* MIM-S's gates read D and C_(t-1) by convolution, its output gate also a convolution of the
  new S_t (the code: elementwise peepholes from S_(t-1) into i, f and from S_t into o);
* the block's output gate reads the new C_t and M_t (W_co * C_t + W_mo * M_t) like the
  ST-LSTM's, where the code reads a convolution of the *incoming* M;
* the block's C path and M path have their own input convolutions (W_xi, W_xg vs W'_xi,
  W'_xg), where the code shares one for i and i', one for g and g';
* at t = 0 the previous states are zero, so D = H^(l-1)_0 (the code sets D = 0 there; the
  paper text read says nothing about t = 0).

Shared with ``mim`` where the equations agree: layer 0 is PredRNN's ST-LSTM in both, the zigzag
memory M flows the same way, and every quantity keeps the name ``mim`` records (D, N, Dn, S, T
and the gates N.*, S.*). Like ``mim`` and OpenSTL, convolutions have no bias and the forget gates
get a constant +1 where the paper writes learned biases b; see the docs page for why.

Checkpoint keys: ``stlstm_layer.0.*`` (ST-LSTM), ``stlstm_layer.{l}.*`` (block: ``conv_x``,
``conv_h``, ``conv_m``, ``conv_o``, ``conv_last``, MIM-S under ``mim_s.*``: ``conv_d``, ``conv_c``,
``conv_so``), ``stlstm_layer_diff.{l-1}.*`` (MIM-N feeding layer l: ``conv_d``, ``conv_n``,
``conv_no``), ``conv_last`` (head).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from mimviewer.nets.base import conv_block
from mimviewer.nets.config import ModelConfig
from mimviewer.nets.mim import MIMStack
from mimviewer.nets.predrnn import SpatioTemporalLSTMCell, memory_update
from mimviewer.nets.registry import register_model
from mimviewer.trace import Probe


class PaperMIMN(nn.Module):
    """Non-stationary module, the paper's MIM-N: an LSTM over D whose gates read conv(N_(t-1)).

    conv_d(D) gives (i, g, f, o); conv_n(N_(t-1)) gives (i, g, f); conv_no(N_t) is W_no * N_t.
    """

    def __init__(self, hidden: int, config: ModelConfig):
        super().__init__()
        self.hidden = hidden
        k = config.filter_size
        self.conv_d = conv_block(hidden, 4 * hidden, k, config)
        self.conv_n = conv_block(hidden, 3 * hidden, k, config)
        self.conv_no = conv_block(hidden, hidden, k, config)

    def forward(
        self, d: torch.Tensor, n: torch.Tensor, probe: Probe, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``d`` = H^(l-1)_t - H^(l-1)_(t-1), ``n`` = N_(t-1); returns (the paper's D^l_t, N_t)."""
        i_d, g_d, f_d, o_d = torch.split(self.conv_d(d), self.hidden, dim=1)
        i_n, g_n, f_n = torch.split(self.conv_n(n), self.hidden, dim=1)
        i, f, g, _, n_new = memory_update(i_d + i_n, f_d + f_n, g_d + g_n, n)
        o = torch.sigmoid(o_d + self.conv_no(n_new))
        dn = o * torch.tanh(n_new)
        for name, value in (
            ("D", d),
            ("N.i", i),
            ("N.f", f),
            ("N.g", g),
            ("N.o", o),
            ("N", n_new),
            ("Dn", dn),
        ):
            probe.record(layer, name, value)
        return dn, n_new


class PaperMIMS(nn.Module):
    """Stationary module, the paper's MIM-S: an LSTM over Dn whose gates read conv(C_(t-1)).

    conv_d(Dn) and conv_c(C_(t-1)) give (i, g, f, o); conv_so(S_t) is W_so * S_t.
    """

    def __init__(self, hidden: int, config: ModelConfig):
        super().__init__()
        self.hidden = hidden
        k = config.filter_size
        self.conv_d = conv_block(hidden, 4 * hidden, k, config)
        self.conv_c = conv_block(hidden, 4 * hidden, k, config)
        self.conv_so = conv_block(hidden, hidden, k, config)

    def forward(
        self, dn: torch.Tensor, c: torch.Tensor, s: torch.Tensor, probe: Probe, layer: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (T_t, S_t): T replaces f o C_(t-1) in the block's C update."""
        i_d, g_d, f_d, o_d = torch.split(self.conv_d(dn), self.hidden, dim=1)
        i_c, g_c, f_c, o_c = torch.split(self.conv_c(c), self.hidden, dim=1)
        i, f, g, _, s_new = memory_update(i_d + i_c, f_d + f_c, g_d + g_c, s)
        o = torch.sigmoid(o_d + o_c + self.conv_so(s_new))
        t = o * torch.tanh(s_new)
        for name, value in (("S.i", i), ("S.f", f), ("S.g", g), ("S.o", o), ("S", s_new), ("T", t)):
            probe.record(layer, name, value)
        return t, s_new


class PaperMIMBlockOutput(NamedTuple):
    h: torch.Tensor
    c: torch.Tensor
    m: torch.Tensor
    s: torch.Tensor  # MIM-S memory


class PaperMIMBlock(SpatioTemporalLSTMCell):
    """The paper's MIM block: an ST-LSTM with MIM-S's T in place of the forget path of C.

    conv_x(H^(l-1)_t) gives (i, g, i', g', f', o); conv_h(H^l_(t-1)) gives (i, g, o);
    conv_m(M^(l-1)_t) gives (i', g', f'); conv_o([C_t, M_t]) is W_co * C_t + W_mo * M_t;
    conv_last (1x1) maps [C_t, M_t] to H's pre-activation.
    """

    x_blocks = 6  # no f: T replaces the forget path of C
    h_blocks = 3

    def __init__(self, hidden: int, config: ModelConfig):
        super().__init__(hidden, hidden, config)
        self.mim_s = PaperMIMS(hidden, config)

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
    ) -> PaperMIMBlockOutput:
        i_x, g_x, i_x_m, g_x_m, f_x_m, o_x = torch.split(self.conv_x(x), self.hidden, dim=1)
        i_h, g_h, o_h = torch.split(self.conv_h(h), self.hidden, dim=1)
        i_m, g_m, f_m = torch.split(self.conv_m(m), self.hidden, dim=1)
        # temporal memory C: MIM-S's output T replaces f o C_(t-1)
        i = torch.sigmoid(i_x + i_h)
        g = torch.tanh(g_x + g_h)
        t, s_new = self.mim_s(dn, c, s, probe, layer)
        c_new = t + i * g
        # spatiotemporal memory M (as in the ST-LSTM)
        i_prime, f_prime, g_prime, _, m_new = memory_update(i_x_m + i_m, f_x_m + f_m, g_x_m + g_m, m)
        # output: reads the new memories C_t and M_t (as in the ST-LSTM)
        o, h_new = self.output(o_x + o_h, c_new, m_new)
        for name, value in (
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
        return PaperMIMBlockOutput(h_new, c_new, m_new, s_new)


class PaperMIMState(NamedTuple):
    layers: list[tuple[torch.Tensor, torch.Tensor]]  # (H, C) per layer
    memory: torch.Tensor  # zigzag M leaving the top layer, read by layer 0 at the next step
    novelty: list[torch.Tensor]  # MIM-N memory N of the MIM-N feeding layer l, for l = 1..L-1
    stationary: list[torch.Tensor]  # MIM-S memory S of block l, for l = 1..L-1


@register_model(
    "mim_paper",
    description="MIM as in the paper's equations (CVPR 2019), beside mim (the released code)",
    num_hidden=(128, 128, 128, 128),
)
class MIMPaper(MIMStack):
    """ST-LSTM layer, paper MIM blocks above it, a paper MIM-N below each block, 1x1 head."""

    block_type = PaperMIMBlock
    novelty_type = PaperMIMN
    block_recurrent_keys = (
        "stlstm_layer.{l}.conv_h.0",  # block: W_h * H_(t-1)
        "stlstm_layer.{l}.mim_s.conv_c.0",  # MIM-S: W_c * C_(t-1)
        "stlstm_layer_diff.{n}.conv_n.0",  # MIM-N: W_n * N_(t-1)
    )
    weights_priority = 110  # asked before mim: both keep their layers under stlstm_layer
    hidden_conv_keys = ("stlstm_layer.{i}.conv_h.0.weight",)

    @classmethod
    def matches_weights(cls, state_dict) -> bool:
        """The paper's MIM-S (``mim_s.*``) or MIM-N (``conv_n``); with one layer both are an ST-LSTM."""
        return any(
            ".mim_s." in k or (k.startswith("stlstm_layer_diff.") and ".conv_n." in k) for k in state_dict
        )

    def init_state(self, batch: int, like: torch.Tensor) -> PaperMIMState:
        zeros = self.zero_maps(batch, like)
        return PaperMIMState(
            layers=[(z, z) for z in zeros], memory=zeros[0], novelty=zeros[1:], stationary=zeros[1:]
        )

    def step(self, x: torch.Tensor, state: PaperMIMState, probe: Probe) -> tuple[torch.Tensor, PaperMIMState]:
        out = self.stlstm_layer[0](x, *state.layers[0], state.memory, probe, 0)
        layers, m = [(out.h, out.c)], out.m
        novelty, stationary = [], []
        for layer in range(1, self.config.num_layers):
            below_now, below_before = layers[layer - 1][0], state.layers[layer - 1][0]
            d = below_now - below_before  # H^(l-1)_t - H^(l-1)_(t-1), for every MIM-N
            dn, n = self.stlstm_layer_diff[layer - 1](d, state.novelty[layer - 1], probe, layer)
            block = self.stlstm_layer[layer](
                below_now, dn, *state.layers[layer], m, state.stationary[layer - 1], probe, layer
            )
            layers.append((block.h, block.c))
            m = block.m
            novelty.append(n)
            stationary.append(block.s)
        return self.conv_last(layers[-1][0]), PaperMIMState(layers, m, novelty, stationary)
