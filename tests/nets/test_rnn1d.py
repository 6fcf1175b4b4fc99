"""The 1-D family (LSTM, LSTMP, SRU): frames as vectors, gates as unit x time heatmaps."""

import numpy as np
import pytest
import torch
from torch import nn

from mimviewer.errors import ConfigError
from mimviewer.inference import rollout
from mimviewer.nets import create_model, patchify
from mimviewer.trace import NO_PROBE, QUANTITIES, ProbeSpec

ARCHS = ("lstm", "lstmp", "sru")


def tiny(arch, **overrides):
    fields = dict(num_hidden=(6, 5), patch_size=2, height=8, width=12, channels=1, pre=3, aft=2)
    fields.update(overrides)
    if arch == "lstmp":
        fields.setdefault("options", {})
        fields["options"] = {"proj": 3, **fields["options"]}
    return create_model(arch, **fields)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize(
    "sizes",
    [
        dict(channels=3, height=8, width=12, patch_size=2),
        dict(channels=1, height=6, width=10, patch_size=1),
        dict(channels=2, height=8, width=16, patch_size=4, options={"embed": 7}),
        dict(channels=1, height=12, width=4, patch_size=2, num_hidden=(9,), options={"embed": 9}),
    ],
)
def test_a_user_predicts_frames_of_any_size(arch, sizes):
    model = tiny(arch, **sizes)
    c, h, w = model.config.channels, model.config.height, model.config.width
    frames = torch.rand(2, 6, c, h, w)
    outputs = model(frames, pre=4, aft=2)
    assert outputs.shape == (2, 5, c, h, w)
    assert torch.isfinite(outputs).all()
    result = rollout(model, frames, pre=4, aft=2)
    assert result.prediction.shape == (2, 2, c, h, w)
    np.testing.assert_allclose(result.prediction, outputs[:, -2:].detach().numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("arch", ARCHS)
def test_gates_become_unit_by_time_heatmaps(arch):
    model = tiny(arch, options={"embed": 10})
    frames = torch.rand(2, 5, 1, 8, 12)
    with_probes = rollout(model, frames, pre=3, aft=2, probes=ProbeSpec(keep_raw=True))
    trace = with_probes.trace
    assert trace.num_layers == 2
    for layer, units in enumerate(model.config.num_hidden):
        recorded = trace.quantities(layer)
        assert set(recorded) == {*model.quantities(layer), "dH"}
        assert all(name in QUANTITIES for name in recorded)
        for name in model.quantities(layer):
            size = 3 if (arch, name) in {("lstmp", "P")} else units
            raw = trace.raw[f"{layer}/{name}"]
            assert raw.shape == (4, 2, 1, size)  # (steps, B, 1, U)
            heatmap = trace.map(layer, name, "mean")
            assert heatmap.shape == (4, 2, size)  # (steps, B, U): the unit vector per step
            # one "channel" only, so its mean and the channel map are the values themselves
            np.testing.assert_allclose(heatmap, raw[:, :, 0], rtol=1e-6)
            np.testing.assert_array_equal(trace.map(layer, name, "channel"), raw[:, :, 0])
            saturated = trace.map(layer, name, "saturated")
            low, high = ProbeSpec().bounds(trace.kind(layer, name))  # gates: lo/hi; states: -a/+a
            np.testing.assert_array_equal(saturated, ((raw[:, :, 0] < low) | (raw[:, :, 0] > high)))
            np.testing.assert_allclose(
                trace.stat(layer, name, "mean"), raw.mean(axis=(2, 3)), rtol=1e-5, atol=1e-7
            )
        h = trace.raw[f"{layer}/H"][:, :, 0]
        np.testing.assert_allclose(trace.map(layer, "dH")[1:], h[1:] - h[:-1], atol=1e-6)
    for gate in ("f", "r", "i", "o"):
        if trace.has(0, gate):
            values = trace.raw[f"0/{gate}"]
            assert ((values > 0) & (values < 1)).all()
    plain = rollout(model, frames, pre=3, aft=2)
    np.testing.assert_array_equal(plain.prediction, with_probes.prediction)


def flat_frames(model, frames):
    """What the cells see: patchified frames, flattened, embedded when configured."""
    v = patchify(frames, model.config.patch_size).flatten(2)  # (B, T, p*p*C*H'*W')
    return v if model.embed is None else model.embed(v)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("arch", ["lstm", "lstmp"])
def test_lstm_and_lstmp_match_torch_nn_lstm(arch):
    """torch.nn.LSTM (with proj_size for LSTMP) is an independent implementation of the same cells."""
    proj = 4 if arch == "lstmp" else 0
    model = create_model(
        arch,
        num_hidden=(7, 7),
        patch_size=2,
        height=4,
        width=6,
        options={"embed": 5, "proj": 4} if proj else {"embed": 5},
    )
    reference = nn.LSTM(5, 7, num_layers=2, batch_first=True, proj_size=proj)
    with torch.no_grad():
        for layer, cell in enumerate(model.cell_list):
            bias = cell.linear_x.bias.clone()
            bias[7:14] += 1.0  # our constant forget bias, folded into b_f
            getattr(reference, f"weight_ih_l{layer}").copy_(cell.linear_x.weight)
            getattr(reference, f"weight_hh_l{layer}").copy_(cell.linear_h.weight)
            getattr(reference, f"bias_ih_l{layer}").copy_(bias)
            getattr(reference, f"bias_hh_l{layer}").zero_()
            if proj:
                getattr(reference, f"weight_hr_l{layer}").copy_(cell.proj.weight)
    frames = torch.rand(3, 6, 1, 4, 6)
    with torch.no_grad():
        ours = model(frames, pre=6, aft=1)  # every step reads a true frame
        top, _ = reference(flat_frames(model, frames))
        expected = model.head(top).view(3, 6, 4, 2, 3)
    torch.testing.assert_close(patchify(ours, 2), expected, rtol=1e-5, atol=1e-6)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def to_numpy(t):
    return t.detach().numpy().astype(np.float64)


@pytest.mark.parametrize("arch", ["lstm", "lstmp"])
def test_lstm_step_follows_the_papers(arch):
    """Hochreiter & Schmidhuber's LSTM with forget bias 1, and Sak et al. 2014's projection
    r = W_rm m feeding back into the gates, written out in numpy for one step from a non-zero state."""
    options = {"embed": 5, "proj": 3} if arch == "lstmp" else {"embed": 5}
    model = create_model(arch, num_hidden=(4, 6), patch_size=2, height=4, width=4, options=options)
    frame = torch.rand(2, 4, 2, 2)  # patchified (B, p*p*C, H', W')
    recurrent = [3, 3] if arch == "lstmp" else [4, 6]
    state = [(torch.randn(2, r), torch.randn(2, u)) for r, u in zip(recurrent, (4, 6), strict=True)]
    with torch.no_grad():
        y, new_state = model.step(frame, state, NO_PROBE)

    x = to_numpy(frame).reshape(2, -1) @ to_numpy(model.embed.weight).T
    for layer, cell in enumerate(model.cell_list):
        u = cell.units
        w_x, b, w_r = (
            to_numpy(cell.linear_x.weight),
            to_numpy(cell.linear_x.bias),
            to_numpy(cell.linear_h.weight),
        )
        r_prev, c_prev = (to_numpy(s) for s in state[layer])

        def pre_activation(k, x=x, w_x=w_x, b=b, w_r=w_r, r_prev=r_prev, u=u):
            block = slice(k * u, (k + 1) * u)
            return x @ w_x[block].T + r_prev @ w_r[block].T + b[block]

        i = sigmoid(pre_activation(0))
        f = sigmoid(pre_activation(1) + 1.0)
        g = np.tanh(pre_activation(2))
        o = sigmoid(pre_activation(3))
        c = f * c_prev + i * g
        m = o * np.tanh(c)
        r = m @ to_numpy(cell.proj.weight).T if arch == "lstmp" else m
        np.testing.assert_allclose(to_numpy(new_state[layer][1]), c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(to_numpy(new_state[layer][0]), r, rtol=1e-5, atol=1e-6)
        x = r
    np.testing.assert_allclose(
        to_numpy(y).reshape(2, -1), x @ to_numpy(model.head.weight).T, rtol=1e-5, atol=1e-6
    )


def test_sru_step_follows_the_paper():
    """Lei et al. 2018 (section 2), written out in numpy for one step from a non-zero state."""
    model = create_model("sru", num_hidden=(5, 4), patch_size=2, height=4, width=4, options={"embed": 5})
    with torch.no_grad():
        for cell in model.cell_list:
            cell.bias.normal_()
    frame = torch.rand(2, 4, 2, 2)  # patchified (B, p*p*C, H', W')
    state = [(torch.randn(2, 5),), (torch.randn(2, 4),)]
    with torch.no_grad():
        y, new_state = model.step(frame, state, NO_PROBE)

    x = to_numpy(frame).reshape(2, -1) @ to_numpy(model.embed.weight).T
    for layer, cell in enumerate(model.cell_list):
        units = cell.units
        weights = to_numpy(cell.linear_x.weight)
        w, w_f, w_r = weights[:units], weights[units : 2 * units], weights[2 * units :]
        v_f, v_r = to_numpy(cell.peephole)
        b_f, b_r = to_numpy(cell.bias)
        c_prev = to_numpy(state[layer][0])
        highway = x if layer == 0 else x @ to_numpy(cell.skip.weight).T  # layer 1 goes from 5 to 4 units
        f = sigmoid(x @ w_f.T + v_f * c_prev + b_f)
        c = f * c_prev + (1 - f) * (x @ w.T)
        r = sigmoid(x @ w_r.T + v_r * c_prev + b_r)
        h = r * c + (1 - r) * highway
        np.testing.assert_allclose(to_numpy(new_state[layer][0]), c, rtol=1e-5, atol=1e-6)
        x = h
    np.testing.assert_allclose(
        to_numpy(y).reshape(2, -1), x @ to_numpy(model.head.weight).T, rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("arch", ARCHS)
def test_training_gradients_reach_every_weight(arch):
    model = tiny(arch, options={"embed": 6})
    frames = torch.rand(2, 5, 1, 8, 12)
    outputs = model(frames, pre=3, aft=2)
    loss = nn.functional.mse_loss(outputs, frames[:, 1:])
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    ("arch", "options", "message"),
    [
        ("lstm", {"embed": 0}, "'embed' must be a positive integer"),
        ("sru", {"embed": "wide"}, "'embed' must be a positive integer"),
        ("lstmp", {"proj": [3, 3, 3]}, "lists 3 sizes for 2 layers"),
        ("lstmp", {"proj": -1}, "'proj' must be a positive integer"),
    ],
)
def test_impossible_options_are_named(arch, options, message):
    with pytest.raises(ConfigError, match=message):
        create_model(arch, num_hidden=(4, 4), patch_size=2, height=4, width=4, options=options)
