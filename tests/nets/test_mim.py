"""MIM: a researcher opens a MIM model and looks at MIM-N, MIM-S and the blocks' memories."""

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nets_by_hand import DictProbe, conv, loud

from mimviewer.errors import ConfigError
from mimviewer.inference import rollout
from mimviewer.nets import create_model, default_config
from mimviewer.nets.mim import MIM_QUANTITIES, MIMN, ST_LSTM_QUANTITIES, MIMBlock
from mimviewer.trace import QUANTITIES, ProbeSpec


def tiny(**changes):
    fields = dict(num_hidden=(4, 4, 4), filter_size=3, patch_size=2, height=8, width=12, channels=1)
    return {**fields, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        dict(),
        dict(layer_norm=True),
        dict(channels=3, patch_size=1, height=6, width=10, num_hidden=(3, 3)),
        dict(patch_size=4, height=8, width=16, num_hidden=(2, 2, 2, 2)),
        dict(num_hidden=(5,), filter_size=5),
    ],
)
def test_rollout_predicts_aft_frames_for_many_configs(changes):
    cfg = tiny(**changes)
    model = create_model("mim", **cfg)
    frames = torch.rand(2, 7, cfg["channels"], cfg["height"], cfg["width"])
    result = rollout(model, frames, pre=4, aft=3)
    assert result.prediction.shape == (2, 3, cfg["channels"], cfg["height"], cfg["width"])
    assert result.outputs.shape == (2, 6, cfg["channels"], cfg["height"], cfg["width"])
    assert np.isfinite(result.outputs).all()


def test_checkpoint_key_names_follow_openstl():
    model = create_model("mim", **tiny())
    keys = set(model.state_dict())
    for k in ("conv_x", "conv_h", "conv_m", "conv_o"):
        assert f"stlstm_layer.0.{k}.0.weight" in keys
    for layer in (1, 2):
        for k in ("conv_t_cc.0.weight", "conv_s_cc.0.weight", "conv_x_cc.0.weight", "conv_last.weight"):
            assert f"stlstm_layer.{layer}.{k}" in keys
        for owner in (f"stlstm_layer.{layer}", f"stlstm_layer_diff.{layer - 1}"):
            for k in ("ct_weight", "oc_weight", "conv_h_concat.0.weight", "conv_x_concat.0.weight"):
                assert f"{owner}.{k}" in keys
    assert model.state_dict()["stlstm_layer_diff.0.ct_weight"].shape == (8, 4, 6)  # (2*nh, H', W')
    assert "stlstm_layer_diff.2.ct_weight" not in keys and "conv_last.weight" in keys
    # OpenSTL's MIM-N carries a conv_last it never uses: the loader drops it
    assert any(re.fullmatch(p, "stlstm_layer_diff.0.conv_last.weight") for p in model.unused_checkpoint_keys)


def test_different_hidden_sizes_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"same hidden size.*\[4, 8\]"):
        create_model("mim", **tiny(num_hidden=(4, 8)))


def test_trace_has_the_documented_quantities_per_layer():
    model = create_model("mim", **tiny())
    frames = torch.rand(1, 6, 1, 8, 12)
    result = rollout(model, frames, pre=3, aft=3, probes=ProbeSpec())
    trace = result.trace
    assert trace.num_layers == 3
    assert set(trace.quantities(0)) == {*ST_LSTM_QUANTITIES, "dH"}
    for layer in (1, 2):
        assert set(trace.quantities(layer)) == {*MIM_QUANTITIES, "dH"}
        assert model.quantities(layer) == MIM_QUANTITIES
    assert all(name in QUANTITIES for name in MIM_QUANTITIES + ST_LSTM_QUANTITIES)
    for name in MIM_QUANTITIES:
        assert trace.map(2, name).shape == (5, 1, 4, 6)  # (steps, B, H', W')
    gates = trace.stats["1/S.f"][..., :3]  # mean, min, max of a sigmoid gate
    assert (gates >= 0).all() and (gates <= 1).all()
    # step 0: no difference signal, MIM-N not run: "not computed" (NaN, masked), never 0
    for layer in (1, 2):
        for name in ("D", "N.i", "N.f", "N.g", "N.o", "N", "Dn"):
            assert trace.valid_steps(layer, name).tolist() == [False, True, True, True, True]
            assert (
                np.isnan(trace.maps[f"{layer}/{name}"][0]).all()
                and np.isnan(trace.stats[f"{layer}/{name}"][0]).all()
            )
            assert np.isfinite(trace.map(layer, name, "mean")[1:]).all()
        for name in ("S.i", "S.f", "S", "T", "C", "H", "dH"):  # MIM-S and the block run at step 0 too
            assert trace.valid_steps(layer, name).all() and np.isfinite(trace.map(layer, name)).all()
    assert np.any(trace.map(1, "Dn", "mean")[1] != 0)
    # asking for no probes gives the very same frames
    plain = rollout(model, frames, pre=3, aft=3)
    np.testing.assert_array_equal(plain.outputs, result.outputs)


def test_difference_signal_is_the_change_of_the_layer_below():
    model = loud(create_model("mim", **tiny()))
    result = rollout(model, torch.rand(1, 5, 1, 8, 12), pre=3, aft=2, probes=ProbeSpec(keep_raw=True))
    raw = result.trace.raw  # key -> (steps, B, C, H', W')
    h0 = raw["0/H"]
    np.testing.assert_allclose(raw["1/D"][1:], h0[1:] - h0[:-1], atol=1e-6)
    assert np.isnan(raw["1/D"][0]).all()  # step 0 computes no difference (raw is indexed by step)
    # the upper MIM-N reads the output of the one below at the same step
    np.testing.assert_allclose(raw["2/D"][1:], raw["1/Dn"][1:], atol=1e-7)


def test_no_state_leaks_between_rollouts():
    model = loud(create_model("mim", **tiny()))
    frames = torch.rand(2, 6, 1, 8, 12)
    first = rollout(model, frames, pre=3, aft=3).outputs
    rollout(model, torch.rand(3, 6, 1, 8, 12), pre=3, aft=3)  # another batch, another batch size
    again = rollout(model, frames, pre=3, aft=3).outputs
    np.testing.assert_array_equal(first, again)


# -- one step against DESIGN.md's equations, transcribed independently -----------------------


def peephole_reference(x, h, c, conv_x, conv_h, ct_weight, oc_weight):
    """Peephole ConvLSTM, blocks (i, g, f, o), peepholes ct (i, f from C_prev) and oc (o from C_new)."""
    nh = h.shape[1]
    xi, xg, xf, xo = conv(x, conv_x).split(nh, 1)
    hi, hg, hf, ho = conv(h, conv_h).split(nh, 1)
    i = torch.sigmoid(xi + hi + ct_weight[:nh] * c)
    f = torch.sigmoid(xf + hf + ct_weight[nh:] * c + 1.0)
    g = torch.tanh(xg + hg)
    c_new = f * c + i * g
    o = torch.sigmoid(xo + ho + oc_weight * c_new)
    return dict(i=i, f=f, g=g, o=o, c=c_new, h=o * torch.tanh(c_new))


def randn(nh, *, batch=2, h=4, w=6):
    return torch.randn(batch, nh, h, w)


@torch.no_grad()
def test_mimn_one_step_matches_the_equations():
    cfg = default_config("mim", **tiny())
    cell = loud(MIMN(4, cfg))
    d, dn, n = randn(4), randn(4), randn(4)
    probe = DictProbe()
    out = cell(d, dn, n, probe, 1)
    ref = peephole_reference(d, dn, n, cell.conv_x_concat, cell.conv_h_concat, cell.ct_weight, cell.oc_weight)
    for name in "ifgo":
        torch.testing.assert_close(probe.values[f"N.{name}"], ref[name])
    torch.testing.assert_close(out.c, ref["c"])
    torch.testing.assert_close(out.h, ref["h"])
    torch.testing.assert_close(probe.values["N"], ref["c"])
    torch.testing.assert_close(probe.values["Dn"], ref["h"])
    torch.testing.assert_close(probe.values["D"], d)


@torch.no_grad()
def test_mim_block_one_step_matches_the_equations():
    cfg = default_config("mim", **tiny())
    block = loud(MIMBlock(4, cfg))
    x, dn, h, c, m, s = (randn(4) for _ in range(6))
    probe = DictProbe()
    out = block(x, dn, h, c, m, s, probe, 1)
    # MIM-S: input Dn, "hidden" C_prev, memory S; its output T replaces f o C_prev
    stat = peephole_reference(
        dn, c, s, block.conv_x_concat, block.conv_h_concat, block.ct_weight, block.oc_weight
    )
    for name in "ifgo":
        torch.testing.assert_close(probe.values[f"S.{name}"], stat[name])
    torch.testing.assert_close(probe.values["S"], stat["c"])
    torch.testing.assert_close(out.s, stat["c"])
    torch.testing.assert_close(probe.values["T"], stat["h"])
    # the block: conv_x_cc(x), conv_s_cc(M) give (i, g, f, o); conv_t_cc(H_prev) gives (i, g, o)
    xi, xg, xf, xo = conv(x, block.conv_x_cc).split(4, 1)
    si, sg, sf, so = conv(m, block.conv_s_cc).split(4, 1)
    ti, tg, to = conv(h, block.conv_t_cc).split(4, 1)
    c_new = stat["h"] + torch.sigmoid(xi + ti) * torch.tanh(xg + tg)
    m_new = torch.sigmoid(xf + sf + 1.0) * m + torch.sigmoid(xi + si) * torch.tanh(xg + sg)
    o = torch.sigmoid(xo + to + so)
    h_new = o * torch.tanh(F.conv2d(torch.cat([c_new, m_new], 1), block.conv_last.weight))
    torch.testing.assert_close(out.c, c_new)
    torch.testing.assert_close(out.m, m_new)
    torch.testing.assert_close(out.h, h_new)
    torch.testing.assert_close(probe.values["f'"], torch.sigmoid(xf + sf + 1.0))
    torch.testing.assert_close(probe.values["o"], o)
    for name, value in (("C", c_new), ("M", m_new), ("H", h_new), ("i", torch.sigmoid(xi + ti))):
        torch.testing.assert_close(probe.values[name], value)


@torch.no_grad()
def test_model_step_wires_layers_as_designed():
    """Two steps of a 2-layer MIM by hand: ST-LSTM, then MIM-N on H^0_t - H^0_(t-1), then the block."""
    model = loud(create_model("mim", **tiny(num_hidden=(4, 4))))
    x0, x1 = torch.rand(2, 4, 4, 6), torch.rand(2, 4, 4, 6)  # patchified frames (B, p*p*C, H', W')
    state = model.init_state(2, x0)
    y0, state = model.step(x0, state, DictProbe())
    probe = DictProbe()
    y1, state = model.step(x1, state, probe)
    st, block, mimn = model.stlstm_layer[0], model.stlstm_layer[1], model.stlstm_layer_diff[0]
    # replay with the modules' own pieces, starting from zeros
    z = torch.zeros(2, 4, 4, 6)
    a0 = st(x0, z, z, z, DictProbe(), 0)
    b0 = block(a0.h, z, z, z, a0.m, z, DictProbe(), 1)  # step 0: Dn = 0, MIM-N not run
    a1 = st(x1, a0.h, a0.c, b0.m, DictProbe(), 0)
    n1 = peephole_reference(
        a1.h - a0.h, z, z, mimn.conv_x_concat, mimn.conv_h_concat, mimn.ct_weight, mimn.oc_weight
    )
    b1 = block(a1.h, n1["h"], b0.h, b0.c, a1.m, b0.s, DictProbe(), 1)
    torch.testing.assert_close(y0, model.conv_last(b0.h))
    torch.testing.assert_close(y1, F.conv2d(b1.h, model.conv_last.weight))
    torch.testing.assert_close(probe.values["Dn"], n1["h"])
    torch.testing.assert_close(state.memory, b1.m)
