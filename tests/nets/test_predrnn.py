"""PredRNN: a researcher opens a PredRNN model and watches its ST-LSTM gates and zigzag memory."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nets_by_hand import conv

from mimviewer.errors import ConfigError
from mimviewer.inference import rollout
from mimviewer.nets import create_model, patchify, unpatchify
from mimviewer.trace import QUANTITIES, ProbeSpec

ST_LSTM_QUANTITIES = ["i", "f", "g", "i'", "f'", "g'", "o", "C", "M", "H"]


def tiny(**changes):
    cfg = dict(num_hidden=(4, 4, 4), patch_size=2, channels=2, height=8, width=12, filter_size=3)
    return create_model("predrnn", **{**cfg, **changes})


@pytest.mark.parametrize(
    "cfg",
    [
        dict(num_hidden=(4, 4), patch_size=1, channels=1, height=6, width=10, layer_norm=False),
        dict(num_hidden=(3, 3, 3), patch_size=2, channels=3, height=8, width=12, layer_norm=True),
        dict(num_hidden=(5,), patch_size=4, channels=1, height=8, width=16, layer_norm=False, filter_size=5),
    ],
)
def test_rollout_predicts_aft_frames_and_traces_every_gate(cfg):
    model = create_model("predrnn", **{"filter_size": 3, **cfg})
    c, h, w, p = cfg["channels"], cfg["height"], cfg["width"], cfg["patch_size"]
    frames = torch.rand(2, 5, c, h, w)
    result = rollout(model, frames, pre=3, aft=2, probes=ProbeSpec(keep_raw=True))
    assert result.prediction.shape == (2, 2, c, h, w)
    assert np.isfinite(result.prediction).all()
    trace = result.trace
    assert trace.num_layers == len(cfg["num_hidden"])
    for layer, hidden in enumerate(cfg["num_hidden"]):
        assert set(trace.quantities(layer)) == {*ST_LSTM_QUANTITIES, "dH"}
        assert set(model.quantities(layer)) == set(ST_LSTM_QUANTITIES)
        for name in ST_LSTM_QUANTITIES:
            assert trace.map(layer, name).shape == (4, 2, h // p, w // p)
            assert trace.raw[f"{layer}/{name}"].shape == (4, 2, hidden, h // p, w // p)
    assert all(name in QUANTITIES for name in ST_LSTM_QUANTITIES)
    # gates are probabilities, candidates lie in [-1, 1]
    for name in ("i", "f", "i'", "f'", "o"):
        assert trace.stat(0, name, "min").min() >= 0 and trace.stat(0, name, "max").max() <= 1
    for name in ("g", "g'", "H"):
        assert trace.stat(0, name, "min").min() >= -1 and trace.stat(0, name, "max").max() <= 1


def st_lstm_by_hand(cell, x, h, c, m, layer_norm):
    """DESIGN.md's ST-LSTM equations, written out independently of the cell's code."""
    n = h.shape[1]
    i_x, f_x, g_x, i_xm, f_xm, g_xm, o_x = conv(x, cell.conv_x, layer_norm).split(n, 1)
    i_h, f_h, g_h, o_h = conv(h, cell.conv_h, layer_norm).split(n, 1)
    i_m, f_m, g_m = conv(m, cell.conv_m, layer_norm).split(n, 1)
    out = {}
    out["i"] = torch.sigmoid(i_x + i_h)
    out["f"] = torch.sigmoid(f_x + f_h + 1.0)
    out["g"] = torch.tanh(g_x + g_h)
    out["C"] = out["f"] * c + out["i"] * out["g"]
    out["i'"] = torch.sigmoid(i_xm + i_m)
    out["f'"] = torch.sigmoid(f_xm + f_m + 1.0)
    out["g'"] = torch.tanh(g_xm + g_m)
    out["M"] = out["f'"] * m + out["i'"] * out["g'"]
    cm = torch.cat([out["C"], out["M"]], 1)
    out["o"] = torch.sigmoid(o_x + o_h + conv(cm, cell.conv_o, layer_norm))
    out["H"] = out["o"] * torch.tanh(F.conv2d(cm, cell.conv_last.weight))
    return out


@pytest.mark.parametrize("layer_norm", [False, True])
def test_one_step_matches_the_design_equations(layer_norm):
    model = tiny(layer_norm=layer_norm)
    if layer_norm:  # make the LayerNorm affine parameters matter
        with torch.no_grad():
            for param in model.parameters():
                if param.ndim == 3:
                    param.add_(0.3 * torch.randn_like(param))
    frames = torch.rand(2, 4, 2, 8, 12)
    result = rollout(model, frames, pre=3, aft=1, probes=ProbeSpec(keep_raw=True))
    raw = {k: torch.from_numpy(v) for k, v in result.trace.raw.items()}
    top = model.config.num_layers - 1
    t = 2  # a step with non-zero H, C and M from the previous step
    with torch.no_grad():
        x = patchify(frames[:, t], 2)
        for layer, cell in enumerate(model.cell_list):
            m_in = raw[f"{top}/M"][t - 1] if layer == 0 else raw[f"{layer - 1}/M"][t]
            expected = st_lstm_by_hand(
                cell, x, raw[f"{layer}/H"][t - 1], raw[f"{layer}/C"][t - 1], m_in, layer_norm
            )
            for name in ST_LSTM_QUANTITIES:
                torch.testing.assert_close(raw[f"{layer}/{name}"][t], expected[name], atol=1e-5, rtol=1e-4)
            x = expected["H"]
        frame = unpatchify(F.conv2d(x, model.conv_last.weight), 2)
    torch.testing.assert_close(torch.from_numpy(result.outputs[:, t]), frame, atol=1e-5, rtol=1e-4)


def test_top_layer_memory_reaches_the_bottom_layer_at_the_next_step():
    model = tiny()
    changed = copy.deepcopy(model)
    with torch.no_grad():
        changed.cell_list[-1].conv_x[0].weight.mul_(3.0)  # only the top layer differs
    frames = torch.rand(1, 4, 2, 8, 12)
    spec = ProbeSpec(quantities=frozenset({"H", "M"}), keep_raw=True)
    # every step reads a true frame, so only the memory M can carry the top layer back down
    a = rollout(model, frames, pre=4, aft=1, probes=spec).trace.raw
    b = rollout(changed, frames, pre=4, aft=1, probes=spec).trace.raw
    np.testing.assert_array_equal(a["0/H"][0], b["0/H"][0])  # step 0: layer 0 has not seen it yet
    assert not np.array_equal(a["2/M"][0], b["2/M"][0])
    assert np.abs(a["0/H"][1] - b["0/H"][1]).max() > 1e-6  # step 1: it arrived through M
    # ... and it is exactly the top layer's M: feed layer 0 its own M instead and the result differs
    full = rollout(model, frames, pre=4, aft=1, probes=ProbeSpec(keep_raw=True)).trace.raw
    raw = {k: torch.from_numpy(v) for k, v in full.items()}
    x = patchify(frames[:, 1], 2)
    with torch.no_grad():
        h0, c0 = raw["0/H"][0], raw["0/C"][0]
        from_top = st_lstm_by_hand(model.cell_list[0], x, h0, c0, raw["2/M"][0], False)
        from_self = st_lstm_by_hand(model.cell_list[0], x, h0, c0, raw["0/M"][0], False)
    torch.testing.assert_close(raw["0/M"][1], from_top["M"], atol=1e-5, rtol=1e-4)
    assert (raw["0/M"][1] - from_self["M"]).abs().max() > 1e-4


def test_unequal_hidden_sizes_are_refused_with_the_reason():
    with pytest.raises(ConfigError, match=r"same hidden size.*\[4, 8\]"):
        tiny(num_hidden=(4, 8))


def test_openstl_key_names():
    keys = set(tiny(num_hidden=(4, 4), layer_norm=True).state_dict())
    for name in ("conv_x", "conv_h", "conv_m", "conv_o"):
        assert f"cell_list.1.{name}.0.weight" in keys and f"cell_list.1.{name}.1.weight" in keys
    assert {"cell_list.0.conv_last.weight", "conv_last.weight"} <= keys


def test_gradients_reach_every_weight():
    model = tiny(layer_norm=True)
    frames = torch.rand(2, 5, 2, 8, 12)
    mask = torch.tensor([[1.0], [0.0]])  # scheduled sampling: sample 0 sees the truth at step 3
    outputs = model(frames, pre=3, aft=2, sampling_mask=mask)
    loss = F.mse_loss(outputs, frames[:, 1:])
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
