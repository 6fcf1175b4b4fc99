"""Gate variants: peephole ConvLSTM (Shi et al. 2015) and LSTM/LSTMP peephole, CIFG, layer norm.

Each variant's step is written out by hand from the papers in numpy (float64); the default
options must leave every existing model computing exactly what it computed before.
"""

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from nets_by_hand import DictProbe, conv, loud
from safetensors.torch import load_file

from mimviewer.errors import ConfigError
from mimviewer.inference import rollout
from mimviewer.nets import create_model
from mimviewer.trace import NO_PROBE, ProbeSpec

FIXTURE = Path(__file__).parents[1] / "fixtures" / "default_outputs" / "outputs.safetensors"
FIXTURE_CONFIGS = {  # as in tests/fixtures/default_outputs/make.py
    "convlstm": dict(num_hidden=(3, 4), filter_size=3, patch_size=2, height=8, width=8),
    "lstm": dict(num_hidden=(5, 4), patch_size=2, height=4, width=4),
    "lstmp": dict(num_hidden=(5, 4), patch_size=2, height=4, width=4, options={"proj": 3}),
}


@pytest.mark.parametrize("arch", sorted(FIXTURE_CONFIGS))
def test_default_options_compute_what_the_cells_computed_before_the_variants(arch):
    """Outputs saved by the code before the variants existed (commit b1577df), in float64.

    Same weights, same input: equal to the last float64 rounding (1e-12 leaves room only for
    a CPU whose kernels sum in another order; on the machine that wrote the file they are equal).
    """
    saved = load_file(FIXTURE)
    model = create_model(arch, pre=3, aft=3, **FIXTURE_CONFIGS[arch]).double()
    prefix = f"{arch}/weights/"
    model.load_state_dict({k[len(prefix) :]: v for k, v in saved.items() if k.startswith(prefix)})
    with torch.no_grad():
        out = model(saved[f"{arch}/frames"])
    assert (out - saved[f"{arch}/outputs"]).abs().max().item() <= 1e-12


# -- ConvLSTM with peepholes -------------------------------------------------------------------


@torch.no_grad()
def test_peephole_convlstm_step_follows_shi_et_al():
    """Shi et al. (2015) eq. 3: i, f read W_c o C_(t-1); o reads W_co o C_t; Hadamard weights."""
    model = loud(
        create_model(
            "convlstm",
            num_hidden=(4,),
            filter_size=3,
            patch_size=2,
            height=8,
            width=12,
            options={"peephole": True},
        )
    ).double()
    cell = model.cell_list[0]
    x = torch.rand(2, 4, 4, 6, dtype=torch.float64)
    h, c = torch.randn(2, 4, 4, 6, dtype=torch.float64), torch.randn(2, 4, 4, 6, dtype=torch.float64)
    probe = DictProbe()
    h_new, c_new = cell(x, h, c, probe, 0)
    xi, xf, xg, xo = conv(x, cell.conv_x).split(4, 1)
    hi, hf, hg, ho = conv(h, cell.conv_h).split(4, 1)
    i = torch.sigmoid(xi + hi + cell.w_ci * c)
    f = torch.sigmoid(xf + hf + cell.w_cf * c)
    c_ref = f * c + i * torch.tanh(xg + hg)
    o = torch.sigmoid(xo + ho + cell.w_co * c_ref)
    torch.testing.assert_close(c_new, c_ref)
    torch.testing.assert_close(h_new, o * torch.tanh(c_ref))
    for name, value in (("i", i), ("f", f), ("o", o)):
        torch.testing.assert_close(probe.values[name], value)


def test_peephole_weights_have_the_states_shape_and_start_at_zero():
    model = create_model(
        "convlstm",
        num_hidden=(3, 5),
        filter_size=3,
        patch_size=4,
        height=8,
        width=16,
        options={"peephole": True},
    )
    plain = create_model("convlstm", num_hidden=(3, 5), filter_size=3, patch_size=4, height=8, width=16)
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra == {f"cell_list.{i}.w_c{g}" for i in (0, 1) for g in "ifo"}
    assert model.state_dict()["cell_list.1.w_co"].shape == (5, 2, 4)
    assert all(not model.state_dict()[k].any() for k in extra)


# -- LSTM / LSTMP variants ---------------------------------------------------------------------

VARIANTS = [dict(peephole=p, cifg=c, layer_norm=n) for p, c, n in itertools.product((False, True), repeat=3)]


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_of(t):
    return t.detach().numpy().astype(np.float64)


def layer_norm(z, gamma, beta, eps=1e-5):
    """Ba et al. (2016) over the units of one gate: gamma (z - mean) / std + beta."""
    mean = z.mean(-1, keepdims=True)
    var = ((z - mean) ** 2).mean(-1, keepdims=True)
    return gamma * (z - mean) / np.sqrt(var + eps) + beta


def build(arch, variant):
    options = {"peephole": variant["peephole"], "cifg": variant["cifg"], "embed": 5}
    if arch == "lstmp":
        options["proj"] = 3
    model = create_model(
        arch,
        num_hidden=(4, 6),
        patch_size=2,
        height=4,
        width=4,
        layer_norm=variant["layer_norm"],
        options=options,
    )
    return loud(model).double()


@pytest.mark.parametrize("arch", ["lstm", "lstmp"])
@pytest.mark.parametrize(
    "variant", VARIANTS, ids=lambda v: "-".join(k for k, on in v.items() if on) or "plain"
)
@torch.no_grad()
def test_lstm_variant_step_follows_the_equations(arch, variant):
    """One step from a non-zero state, every variant written out in numpy (NNAPI's LSTM:
    peepholes W_ci, W_cf on C_(t-1) and W_co on C_t; CIFG i = 1 - f; per-gate layer norm whose
    beta is the gate bias), with the forget bias +1 of the plain cell."""
    model = build(arch, variant)
    frame = torch.rand(2, 4, 2, 2, dtype=torch.float64)
    recurrent = (3, 3) if arch == "lstmp" else (4, 6)
    state = [
        (torch.randn(2, r, dtype=torch.float64), torch.randn(2, u, dtype=torch.float64))
        for r, u in zip(recurrent, (4, 6), strict=True)
    ]
    y, new_state = model.step(frame, state, NO_PROBE)

    x = numpy_of(frame).reshape(2, -1) @ numpy_of(model.embed.weight).T
    for layer, cell in enumerate(model.cell_list):
        u = cell.units
        gates = "fgo" if variant["cifg"] else "ifgo"
        w_x, w_r = numpy_of(cell.linear_x.weight), numpy_of(cell.linear_h.weight)
        b = np.zeros(len(gates) * u) if variant["layer_norm"] else numpy_of(cell.linear_x.bias)
        r_prev, c_prev = (numpy_of(s) for s in state[layer])

        def z(gate, x=x, w_x=w_x, w_r=w_r, b=b, r_prev=r_prev, u=u, gates=gates):
            k = gates.index(gate)
            rows = slice(k * u, (k + 1) * u)
            return x @ w_x[rows].T + r_prev @ w_r[rows].T + b[rows]

        def peep(gate, c, cell=cell):
            return numpy_of(getattr(cell, f"w_c{gate}")) * c if variant["peephole"] else 0.0

        def norm(gate, v, cell=cell):
            if not variant["layer_norm"]:
                return v
            ln = cell.norms[gate]
            return layer_norm(v, numpy_of(ln.weight), numpy_of(ln.bias))

        f = sigmoid(norm("f", z("f") + peep("f", c_prev)) + 1.0)
        i = 1 - f if variant["cifg"] else sigmoid(norm("i", z("i") + peep("i", c_prev)))
        g = np.tanh(norm("g", z("g")))
        c = f * c_prev + i * g
        o = sigmoid(norm("o", z("o") + peep("o", c)))
        m = o * np.tanh(c)
        r = m @ numpy_of(cell.proj.weight).T if arch == "lstmp" else m
        np.testing.assert_allclose(numpy_of(new_state[layer][1]), c, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(numpy_of(new_state[layer][0]), r, rtol=1e-10, atol=1e-12)
        x = r
    np.testing.assert_allclose(
        numpy_of(y).reshape(2, -1), x @ numpy_of(model.head.weight).T, rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("arch", ["lstm", "lstmp"])
def test_cifg_records_f_and_the_derived_input_gate(arch):
    model = build(arch, dict(peephole=True, cifg=True, layer_norm=False)).float()
    result = rollout(model, torch.rand(2, 5, 1, 4, 4), pre=3, aft=2, probes=ProbeSpec(keep_raw=True))
    for layer in (0, 1):
        i, f = result.trace.raw[f"{layer}/i"], result.trace.raw[f"{layer}/f"]
        np.testing.assert_array_equal(i, 1 - f)
    assert not any("w_ci" in k for k in model.state_dict())  # CIFG has no input gate weights
    assert model.state_dict()["cell_list.0.linear_x.weight"].shape[0] == 3 * 4


@pytest.mark.parametrize("arch", ["lstm", "lstmp"])
@pytest.mark.parametrize("variant", VARIANTS[1:], ids=lambda v: "-".join(k for k, on in v.items() if on))
def test_training_gradients_reach_every_variant_weight(arch, variant):
    model = build(arch, variant).float()
    model(torch.rand(2, 5, 1, 4, 4), 3, 2).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(
    "arch, options, message",
    [
        ("sru", {"peephole": True}, "LSTM variant"),
        ("sru", {"cifg": True}, "LSTM variant"),
        ("lstm", {"cifg": "yes"}, "must be true or false"),
        ("convlstm", {"peephole": 1}, "must be true or false"),
    ],
)
def test_impossible_variant_options_are_named(arch, options, message):
    with pytest.raises(ConfigError, match=message):
        create_model(arch, num_hidden=(4, 4), patch_size=2, height=4, width=4, options=options)
