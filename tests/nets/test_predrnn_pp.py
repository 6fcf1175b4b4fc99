"""PredRNN++: causal LSTM cells and the gradient highway, with every gate on show."""

import copy
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nets_by_hand import conv

from mimviewer.errors import ConfigError
from mimviewer.inference import rollout
from mimviewer.nets import create_model, patchify, unpatchify
from mimviewer.trace import QUANTITIES, ProbeSpec

CELL_QUANTITIES = ["i", "f", "g", "i'", "f'", "g'", "o", "C", "M", "H"]
HIGHWAY_QUANTITIES = ["Z.p", "Z.u", "Z"]


def tiny(**changes):
    cfg = dict(num_hidden=(3, 5, 4), patch_size=2, channels=2, height=8, width=12, filter_size=3)
    return create_model("predrnn_pp", **{**cfg, **changes})


@pytest.mark.parametrize(
    "cfg",
    [
        dict(num_hidden=(4, 4), patch_size=1, channels=1, height=6, width=10, layer_norm=False),
        dict(num_hidden=(3, 5, 4), patch_size=2, channels=3, height=8, width=12, layer_norm=True),
        dict(num_hidden=(4, 2), patch_size=4, channels=1, height=8, width=16, layer_norm=True),
    ],
)
def test_rollout_predicts_aft_frames_and_traces_cells_and_highway(cfg):
    model = create_model("predrnn_pp", filter_size=3, **cfg)
    c, h, w, p = cfg["channels"], cfg["height"], cfg["width"], cfg["patch_size"]
    result = rollout(model, torch.rand(2, 5, c, h, w), pre=3, aft=2, probes=ProbeSpec(keep_raw=True))
    assert result.prediction.shape == (2, 2, c, h, w)
    assert np.isfinite(result.prediction).all()
    trace = result.trace
    for layer, hidden in enumerate(cfg["num_hidden"]):
        expected = CELL_QUANTITIES + (HIGHWAY_QUANTITIES if layer == 0 else [])
        assert set(trace.quantities(layer)) == {*expected, "dH"}
        assert set(model.quantities(layer)) == set(expected)
        for name in expected:
            assert name in QUANTITIES
            assert trace.map(layer, name).shape == (4, 2, h // p, w // p)
            assert trace.raw[f"{layer}/{name}"].shape[2] == hidden
    switch = trace.map(0, "Z.u")
    assert ((switch >= 0) & (switch <= 1)).all()


def causal_lstm_by_hand(cell, x, h, c, m, layer_norm):
    """PredRNN++ eq. (1) as OpenSTL (and the authors' code) computes it.

    C first: i, f, g from x, H_prev and C_prev (forget bias +1); C = f o C_prev + i o g.
    Then M from x, the incoming M and the *new* C: i', f' also read M, g' does not;
    M = f' o tanh(W_mm * M_in) + i' o g'. o = tanh(x, H_prev, C, M terms); H = o o tanh(W_1x1 * [C, M]).
    """
    n = h.shape[1]
    i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = conv(x, cell.conv_x, layer_norm).split(n, 1)
    i_h, f_h, g_h, o_h = conv(h, cell.conv_h, layer_norm).split(n, 1)
    i_c, f_c, g_c = conv(c, cell.conv_c, layer_norm).split(n, 1)
    i_m, f_m, m_m = conv(m, cell.conv_m, layer_norm).split(n, 1)
    out = {}
    out["i"] = torch.sigmoid(i_x + i_h + i_c)
    out["f"] = torch.sigmoid(f_x + f_h + f_c + 1.0)
    out["g"] = torch.tanh(g_x + g_h + g_c)
    out["C"] = out["f"] * c + out["i"] * out["g"]
    i_cm, g_cm, f_cm, o_c = conv(out["C"], cell.conv_c2m, layer_norm).split(n, 1)
    out["i'"] = torch.sigmoid(i_xm + i_m + i_cm)
    out["f'"] = torch.sigmoid(f_xm + f_m + f_cm + 1.0)
    out["g'"] = torch.tanh(g_xm + g_cm)
    out["M"] = out["f'"] * torch.tanh(m_m) + out["i'"] * out["g'"]
    out["o"] = torch.tanh(o_x + o_h + o_c + conv(out["M"], cell.conv_om, layer_norm))
    out["H"] = out["o"] * torch.tanh(F.conv2d(torch.cat([out["C"], out["M"]], 1), cell.conv_last.weight))
    return out


def ghu_by_hand(ghu, x, z, layer_norm):
    """GHU: p = tanh(W_px * x + W_pz * z), u = sigma(W_ux * x + W_uz * z), Z = u o p + (1 - u) o z."""
    n = z.shape[1]
    p_x, u_x = conv(x, ghu.x_concat, layer_norm).split(n, 1)
    p_z, u_z = conv(z, ghu.z_concat, layer_norm).split(n, 1)
    p = torch.tanh(p_x + p_z)
    u = torch.sigmoid(u_x + u_z)
    return {"Z.p": p, "Z.u": u, "Z": u * p + (1 - u) * z}


@pytest.mark.parametrize("layer_norm", [False, True])
def test_one_step_matches_the_causal_lstm_and_ghu_equations(layer_norm):
    model = tiny(layer_norm=layer_norm)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim == 3:  # make the LayerNorm affine parameters matter
                param.add_(0.3 * torch.randn_like(param))
            elif "gradient_highway" in name:  # away from its near-zero initialisation
                param.uniform_(-0.3, 0.3)
    frames = torch.rand(2, 4, 2, 8, 12)
    result = rollout(model, frames, pre=3, aft=1, probes=ProbeSpec(keep_raw=True))
    raw = {k: torch.from_numpy(v) for k, v in result.trace.raw.items()}
    top = model.config.num_layers - 1
    t = 2  # a step whose H, C, M and Z from the previous step are all non-zero
    with torch.no_grad():
        x = patchify(frames[:, t], 2)
        for layer, cell in enumerate(model.cell_list):
            m_in = raw[f"{top}/M"][t - 1] if layer == 0 else raw[f"{layer - 1}/M"][t]
            h, c = raw[f"{layer}/H"][t - 1], raw[f"{layer}/C"][t - 1]
            expected = causal_lstm_by_hand(cell, x, h, c, m_in, layer_norm)
            if layer == 0:  # layer 1 reads the highway state, not layer 0's H
                expected.update(
                    ghu_by_hand(model.gradient_highway, expected["H"], raw["0/Z"][t - 1], layer_norm)
                )
                x = expected["Z"]
            else:
                x = expected["H"]
            for name, value in expected.items():
                torch.testing.assert_close(raw[f"{layer}/{name}"][t], value, atol=1e-5, rtol=1e-4)
        frame = unpatchify(F.conv2d(x, model.conv_last.weight), 2)
    torch.testing.assert_close(torch.from_numpy(result.outputs[:, t]), frame, atol=1e-5, rtol=1e-4)


def test_top_layer_memory_reaches_the_bottom_layer_at_the_next_step():
    model = tiny()
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.cell_list[-1].conv_x[0].weight.mul_(3.0)  # only the top layer differs
    frames = torch.rand(1, 4, 2, 8, 12)
    spec = ProbeSpec(quantities=frozenset({"H", "M"}), keep_raw=True)
    a = rollout(model, frames, pre=4, aft=1, probes=spec).trace.raw  # every step reads a true frame
    b = rollout(changed, frames, pre=4, aft=1, probes=spec).trace.raw
    np.testing.assert_array_equal(a["0/H"][0], b["0/H"][0])
    assert np.abs(a["0/H"][1] - b["0/H"][1]).max() > 1e-6  # arrived through the top layer's M


def test_one_layer_is_refused_because_the_highway_needs_two():
    with pytest.raises(ConfigError, match="at least 2 layers"):
        tiny(num_hidden=(4,))


def test_openstl_checkpoint_keys_and_its_unused_conv_o():
    model = tiny(num_hidden=(4, 4), layer_norm=True)
    keys = set(model.state_dict())
    for name in ("conv_x", "conv_h", "conv_c", "conv_m", "conv_c2m", "conv_om"):
        assert f"cell_list.1.{name}.0.weight" in keys and f"cell_list.1.{name}.1.weight" in keys
    assert {"gradient_highway.z_concat.0.weight", "gradient_highway.x_concat.0.weight"} <= keys
    assert {"cell_list.0.conv_last.weight", "conv_last.weight"} <= keys
    unused = [re.compile(p) for p in model.unused_checkpoint_keys]
    assert any(u.fullmatch("cell_list.3.conv_o.0.weight") for u in unused)
    assert not any(u.fullmatch(k) for u in unused for k in keys)


def test_gradients_reach_every_weight():
    model = tiny(layer_norm=True)
    frames = torch.rand(2, 5, 2, 8, 12)
    outputs = model(frames, pre=3, aft=2)
    F.mse_loss(outputs, frames[:, 1:]).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
