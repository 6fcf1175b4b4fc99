"""mim_paper: MIM as the CVPR 2019 paper describes it, checked by hand against the equations of
docs/mim-paper-vs-code.md (reconstructed: the paper's equation text could not be read; the doc
tags each equation with what it rests on)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nets_by_hand import DictProbe, loud

from mimviewer.inference import rollout
from mimviewer.nets import create_model
from mimviewer.nets.mim import MIM_QUANTITIES, ST_LSTM_QUANTITIES
from mimviewer.trace import QUANTITIES, ProbeSpec


def tiny(**changes):
    fields = dict(num_hidden=(4, 4, 4), filter_size=3, patch_size=2, height=8, width=12, channels=1)
    return {**fields, **changes}


@pytest.mark.parametrize(
    "changes",
    [dict(), dict(layer_norm=True), dict(num_hidden=(3, 3), channels=3, patch_size=1), dict(num_hidden=(5,))],
)
def test_rollout_predicts_aft_frames_and_records_the_papers_quantities(changes):
    fields = tiny(**changes)
    model = create_model("mim_paper", **fields)
    frames = torch.rand(2, 6, fields["channels"], fields["height"], fields["width"])
    result = rollout(model, frames, pre=3, aft=3, probes=ProbeSpec())
    assert result.prediction.shape == (2, 3, fields["channels"], fields["height"], fields["width"])
    for layer in range(len(fields["num_hidden"])):
        names = ST_LSTM_QUANTITIES if layer == 0 else MIM_QUANTITIES
        assert model.quantities(layer) == names
        for name in names:
            assert name in QUANTITIES
            assert result.trace.stats[f"{layer}/{name}"].shape[0] == 5


def test_weights_differ_from_the_released_code_only_where_the_equations_do():
    paper = set(create_model("mim_paper", **tiny()).state_dict())
    code = set(create_model("mim", **tiny()).state_dict())
    shared = paper & code
    # layer 0, the head and each block's 1x1 conv over [C, M] (H = o * tanh(W_1x1 * [C, M]) in both)
    assert all(k.startswith("stlstm_layer.0.") or k.endswith("conv_last.weight") for k in shared)
    assert {k for k in code if k.startswith("stlstm_layer.0.")} <= shared  # layer 0: the same ST-LSTM
    assert not any("ct_weight" in k or "oc_weight" in k for k in paper)  # no fixed-size peepholes


def sigmoid(z):
    return torch.sigmoid(z)


def w(block):
    """The kernel of one conv block (the paper's W * is a 'same' convolution)."""
    return block[0].weight


def star(weight, x):
    """W * X: convolution with 'same' padding (the paper's *)."""
    return F.conv2d(x, weight, padding=weight.shape[-1] // 2)


def rows(weight, n):
    """The stacked kernels W_a, W_b, ... of one conv, each n output channels."""
    return weight.split(n, 0)


@torch.no_grad()
def test_one_step_follows_the_papers_equations():
    """The MIM block, MIM-N and MIM-S equations (docs/mim-paper-vs-code.md, in the paper's
    symbols): one step of a 3-layer net from non-zero states, written out in float64; forget
    gates get +1 (no learned biases)."""
    model = loud(create_model("mim_paper", **tiny())).double()
    nh, b, hp, wp = 4, 2, 4, 6

    def rnd():
        return torch.randn(b, nh, hp, wp, dtype=torch.float64)

    x = torch.rand(b, 4, hp, wp, dtype=torch.float64)
    state = model.init_state(b, x)
    state = state._replace(
        layers=[(rnd(), rnd()) for _ in range(3)],
        memory=rnd(),
        novelty=[rnd(), rnd()],
        stationary=[rnd(), rnd()],
    )
    probe = DictProbe()
    y, new = model.step(x, state, probe)

    # layer 0: PredRNN's ST-LSTM (checked in test_predrnn); take its outputs as given
    st = model.stlstm_layer[0]
    h0_prev, c0_prev = state.layers[0]
    first = st(x, h0_prev, c0_prev, state.memory, DictProbe(), 0)
    below_now, below_before, m_in = first.h, h0_prev, first.m
    for layer in (1, 2):
        blk, mim_n = model.stlstm_layer[layer], model.stlstm_layer_diff[layer - 1]
        mim_s = blk.mim_s
        h_prev, c_prev = state.layers[layer]
        n_prev, s_prev = state.novelty[layer - 1], state.stationary[layer - 1]
        # MIM-N: gates from the difference of the layer below and from N_(t-1)
        diff = below_now - below_before
        W_xi, W_xg, W_xf, W_xo = rows(w(mim_n.conv_d), nh)
        W_ni, W_ng, W_nf = rows(w(mim_n.conv_n), nh)
        W_no = w(mim_n.conv_no)
        g_n = torch.tanh(star(W_xg, diff) + star(W_ng, n_prev))
        i_n = sigmoid(star(W_xi, diff) + star(W_ni, n_prev))
        f_n = sigmoid(star(W_xf, diff) + star(W_nf, n_prev) + 1.0)
        N = f_n * n_prev + i_n * g_n
        o_n = sigmoid(star(W_xo, diff) + star(W_no, N))
        D = o_n * torch.tanh(N)
        # MIM-S: gates from D and C_(t-1), output gate also from S_t
        W_di, W_dg, W_df, W_do = rows(w(mim_s.conv_d), nh)
        W_ci, W_cg, W_cf, W_co_s = rows(w(mim_s.conv_c), nh)
        W_so = w(mim_s.conv_so)
        g_s = torch.tanh(star(W_dg, D) + star(W_cg, c_prev))
        i_s = sigmoid(star(W_di, D) + star(W_ci, c_prev))
        f_s = sigmoid(star(W_df, D) + star(W_cf, c_prev) + 1.0)
        S = f_s * s_prev + i_s * g_s
        o_s = sigmoid(star(W_do, D) + star(W_co_s, c_prev) + star(W_so, S))
        T = o_s * torch.tanh(S)
        # MIM block
        W_xi, W_xg, W_xi_, W_xg_, W_xf_, W_xo = rows(w(blk.conv_x), nh)
        W_hi, W_hg, W_ho = rows(w(blk.conv_h), nh)
        W_mi, W_mg, W_mf = rows(w(blk.conv_m), nh)
        W_co, W_mo = w(blk.conv_o).split(nh, 1)  # one conv over [C_t, M_t] = W_co * C_t + W_mo * M_t
        X = below_now
        g = torch.tanh(star(W_xg, X) + star(W_hg, h_prev))
        i = sigmoid(star(W_xi, X) + star(W_hi, h_prev))
        C = T + i * g
        g_ = torch.tanh(star(W_xg_, X) + star(W_mg, m_in))
        i_ = sigmoid(star(W_xi_, X) + star(W_mi, m_in))
        f_ = sigmoid(star(W_xf_, X) + star(W_mf, m_in) + 1.0)
        M = f_ * m_in + i_ * g_
        o = sigmoid(star(W_xo, X) + star(W_ho, h_prev) + star(W_co, C) + star(W_mo, M))
        H = o * torch.tanh(F.conv2d(torch.cat((C, M), 1), blk.conv_last.weight))
        torch.testing.assert_close(new.layers[layer][0], H)
        torch.testing.assert_close(new.layers[layer][1], C)
        torch.testing.assert_close(new.novelty[layer - 1], N)
        torch.testing.assert_close(new.stationary[layer - 1], S)
        below_before, below_now, m_in = h_prev, H, M
    torch.testing.assert_close(new.memory, m_in)
    torch.testing.assert_close(y, F.conv2d(below_now, model.conv_last.weight))
    # the probe holds the top layer's values under the paper's names (D: MIM-N's input; Dn: its output)
    torch.testing.assert_close(probe.values["Dn"], D)
    torch.testing.assert_close(probe.values["T"], T)
    torch.testing.assert_close(probe.values["S.o"], o_s)
    torch.testing.assert_close(probe.values["N.o"], o_n)


@torch.no_grad()
def test_every_mim_n_reads_the_change_of_its_own_layer_below():
    model = loud(create_model("mim_paper", **tiny()))
    frames = torch.rand(1, 5, 1, 8, 12)
    result = rollout(model, frames, pre=3, aft=2, probes=ProbeSpec(keep_raw=True))
    for layer in (1, 2):
        h_below = result.trace.raw[f"{layer - 1}/H"]  # (steps, B, C, H', W')
        d = result.trace.raw[f"{layer}/D"]
        np.testing.assert_allclose(d[0], h_below[0], atol=1e-6)  # zero state before t = 0
        np.testing.assert_allclose(d[1:], h_below[1:] - h_below[:-1], atol=1e-6)


def test_no_state_leaks_between_rollouts_and_gradients_reach_every_weight():
    model = loud(create_model("mim_paper", **tiny()))
    frames = torch.rand(2, 6, 1, 8, 12)
    first = rollout(model, frames, pre=3, aft=3).outputs
    rollout(model, torch.rand(3, 6, 1, 8, 12), pre=3, aft=3)
    np.testing.assert_array_equal(first, rollout(model, frames, pre=3, aft=3).outputs)
    model(frames, 3, 3).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
