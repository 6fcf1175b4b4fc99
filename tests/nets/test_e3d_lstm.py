"""E3D-LSTM: a researcher opens an E3D-LSTM and looks at its gates, recall and memories."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from nets_by_hand import DictProbe, loud

from mimviewer.errors import ConfigError
from mimviewer.inference import rollout
from mimviewer.nets import create_model, default_config
from mimviewer.nets.e3d_lstm import Eidetic3DLSTMCell
from mimviewer.trace import QUANTITIES, Probe, ProbeSpec


def tiny(**changes):
    fields = dict(num_hidden=(3, 3), filter_size=3, patch_size=2, height=8, width=12, channels=1)
    return {**fields, **changes}


@pytest.mark.parametrize(
    "changes",
    [
        dict(),
        dict(layer_norm=True, num_hidden=(2, 4)),  # each layer its own width
        dict(channels=3, patch_size=1, height=6, width=10, num_hidden=(2,)),
        dict(patch_size=4, height=8, width=16, filter_size=5),
        dict(options=dict(window_length=3, window_stride=1)),
        dict(options=dict(window_length=3, window_stride=0, temporal_filter_size=1)),
    ],
)
def test_rollout_predicts_aft_frames_for_many_configs(changes):
    cfg = tiny(**changes)
    model = create_model("e3d_lstm", **cfg)
    frames = torch.rand(2, 6, cfg["channels"], cfg["height"], cfg["width"])
    result = rollout(model, frames, pre=3, aft=3)
    assert result.prediction.shape == (2, 3, cfg["channels"], cfg["height"], cfg["width"])
    assert np.isfinite(result.outputs).all()


def test_defaults_and_key_names_follow_openstl():
    cfg = default_config("e3d_lstm")
    assert cfg.options == {"window_length": 2, "window_stride": 1, "temporal_filter_size": 2}
    assert cfg.num_hidden == (128, 128, 128, 128) and cfg.filter_size == 5
    state = create_model("e3d_lstm", **tiny(layer_norm=True)).state_dict()
    assert state["cell_list.0.conv_x.0.conv3d.weight"].shape == (21, 4, 2, 3, 3)  # (7*nh, p*p*C, 2, k, k)
    assert state["cell_list.1.conv_h.1.weight"].shape == (12, 2, 4, 6)  # LayerNorm over (4*nh, W, H', W')
    assert state["cell_list.1._norm_c_t.weight"].shape == (3, 2, 4, 6)
    assert state["cell_list.0.conv_last.conv3d.weight"].shape == (3, 6, 1, 1, 1)
    assert state["conv_last.weight"].shape == (4, 3, 2, 1, 1)
    for name in ("conv_gm", "conv_new_cell", "conv_new_gm"):
        assert f"cell_list.0.{name}.0.conv3d.weight" in state


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(window=3), "unknown option"),
        (dict(window_length=2, window_stride=2), "window_stride"),
        (dict(window_length=2, temporal_filter_size=3), "temporal_filter_size"),
        (dict(window_length=2.5), "integer"),
    ],
)
def test_impossible_window_options_are_refused(options, match):
    with pytest.raises(ConfigError, match=match):
        create_model("e3d_lstm", **tiny(options=options))


def test_trace_quantities_shapes_and_no_probe_equivalence():
    model = create_model("e3d_lstm", **tiny())
    frames = torch.rand(1, 5, 1, 8, 12)
    result = rollout(model, frames, pre=3, aft=2, probes=ProbeSpec(keep_raw=True))
    trace = result.trace
    names = ("i", "r", "g", "R", "i'", "f'", "g'", "o", "C", "M", "H")
    assert all(name in QUANTITIES for name in names)
    for layer in (0, 1):
        assert set(trace.quantities(layer)) == {*names, "dH"}
        assert trace.map(layer, "R").shape == (4, 1, 4, 6)  # (steps, B, H', W')
        assert trace.raw[f"{layer}/C"].shape == (4, 1, 6, 4, 6)  # window folded: (steps, B, nh*W, H', W')
    gates = trace.stats["0/o"][..., 1:3]  # min, max of the output gate sigmoid(tanh(.))
    assert (gates > 0.26).all() and (gates < 0.74).all()
    plain = rollout(model, frames, pre=3, aft=2)
    np.testing.assert_array_equal(plain.outputs, result.outputs)
    again = rollout(model, frames, pre=3, aft=2)
    np.testing.assert_array_equal(plain.outputs, again.outputs)


def test_input_clip_is_the_last_frames_rebuilt_every_length_minus_stride_steps():
    xs = [torch.rand(1, 4, 4, 6) for _ in range(3)]  # patchified frames
    zero = torch.zeros_like(xs[0])
    # stride 2 of 3: a new clip of the last 3 frames at every step (zeros before the start)
    every_step = create_model("e3d_lstm", **tiny(options=dict(window_length=3, window_stride=2)))
    state = every_step.init_state(1, xs[0])
    clips = [[zero, zero, xs[0]], [zero, xs[0], xs[1]], [xs[0], xs[1], xs[2]]]
    for t in range(3):
        _, state = every_step.step(xs[t], state, Probe())
        torch.testing.assert_close(state.window, torch.stack(clips[t], 2))
    # the recall keys hold C_0 = 0 and every later C of the layer: one clip's rows per step
    assert state.history[1].shape == (1, 3 * (3 * 4 * 6), 3)
    # stride 1 of 3: rebuilt every 2 steps; in between the layers rest and the output repeats
    every_other = create_model("e3d_lstm", **tiny(options=dict(window_length=3, window_stride=1)))
    state = every_other.init_state(1, xs[0])
    outputs = []
    for t in range(3):
        y, state = every_other.step(xs[t], state, Probe())
        outputs.append(y)
        torch.testing.assert_close(state.window, torch.stack(clips[0 if t < 2 else 2], 2))
    torch.testing.assert_close(outputs[1], outputs[0])
    assert not torch.allclose(outputs[2], outputs[1])
    assert state.history[1].shape == (1, 2 * (3 * 4 * 6), 3)  # two rebuild steps: C_0 and C_1


# -- one step against the equations, transcribed independently -------------------------------


def conv3d(x, block):
    """OpenSTL's tf_Conv3d: 3-D conv without temporal padding, resized (nearest) back to x's clip size."""
    weight = block[0].conv3d.weight
    k = weight.shape[-1]
    y = F.conv3d(x, weight, padding=(0, k // 2, k // 2))
    return F.interpolate(y, size=x.shape[-3:], mode="nearest")


@torch.no_grad()
def test_cell_one_step_matches_the_equations():
    cfg = default_config("e3d_lstm", **tiny())
    nh, clip = 3, (2, 4, 6)
    cell = loud(Eidetic3DLSTMCell(4, nh, cfg))
    x, h, c, m = (
        torch.randn(2, 4, *clip),
        torch.randn(2, nh, *clip),
        torch.randn(2, nh, *clip),
        torch.randn(2, nh, *clip),
    )
    c0, c1 = torch.zeros_like(c), torch.randn(2, nh, *clip)
    history = torch.cat([c0, c1], 1).reshape(2, -1, nh)  # OpenSTL: past C concatenated on channels
    probe = DictProbe()
    h_new, c_new = cell(x, h, c, m, history, probe, 0)

    xi, xg, xr, xo, xi2, xg2, xf2 = conv3d(x, cell.conv_x).split(nh, 1)
    hi, hg, hr, ho = conv3d(h, cell.conv_h).split(nh, 1)
    mi, mf, mg, mm = conv3d(m, cell.conv_gm).split(nh, 1)
    i, r, g = torch.sigmoid(xi + hi), torch.sigmoid(xr + hr), torch.tanh(xg + hg)
    query = r.reshape(2, -1, nh)
    recalled = (torch.softmax(query @ history.transpose(1, 2), dim=2) @ history).reshape(r.shape)
    c_ref = F.layer_norm(c + recalled, c.shape[1:], cell._norm_c_t.weight, cell._norm_c_t.bias) + i * g
    i2, f2, g2 = torch.sigmoid(xi2 + mi), torch.sigmoid(xf2 + mf + 1.0), torch.tanh(xg2 + mg)
    m_ref = f2 * torch.tanh(mm) + i2 * g2
    o = torch.sigmoid(
        torch.tanh(xo + ho + conv3d(c_ref, cell.conv_new_cell) + conv3d(m_ref, cell.conv_new_gm))
    )
    h_ref = o * torch.tanh(F.conv3d(torch.cat([c_ref, m_ref], 1), cell.conv_last.conv3d.weight))

    torch.testing.assert_close(c_new, c_ref)
    torch.testing.assert_close(h_new, h_ref)
    for name, value in (("i", i), ("r", r), ("g", g), ("R", recalled), ("f'", f2), ("M", m_ref), ("o", o)):
        torch.testing.assert_close(probe.values[name], value.flatten(1, 2))
