"""The Trace's exact semantics (issue 11): steps that compute nothing are NaN + masked, raw values
are indexed by step, re-reduction with new settings equals a fresh run, for every architecture."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mimviewer import export
from mimviewer.errors import ConfigError, DataError, MimviewerError
from mimviewer.inference import iter_rollout, rollout
from mimviewer.nets import create_model, list_models
from mimviewer.trace import STAT_NAMES, ProbeSpec, Trace, split_key

# E3D-LSTM with a window rebuilt every 2 steps: the layers rest (compute nothing) in between
RESTING_E3D = {"window_length": 3, "window_stride": 1, "temporal_filter_size": 2}


def tiny(arch: str, **overrides):
    torch.manual_seed(0)
    hidden = (4, 4, 4) if arch == "predrnn_pp" else (4, 4)
    fields = dict(num_hidden=hidden, filter_size=3, patch_size=2, height=8, width=12, channels=2)
    return create_model(arch, **{**fields, **overrides})


CASES = [(arch, {}) for arch in list_models()] + [("e3d_lstm", {"options": RESTING_E3D})]
IDS = [arch if not options else f"{arch}-resting" for arch, options in CASES]
FRAMES = torch.rand(2, 7, 2, 8, 12, generator=torch.Generator().manual_seed(1))


def run(arch: str, options: dict, spec: ProbeSpec) -> Trace:
    model = tiny(arch, **options)
    return rollout(model, FRAMES, pre=4, aft=3, probes=spec).trace


def assert_same_trace(a: Trace, b: Trace) -> None:
    assert a.maps.keys() == b.maps.keys()
    for k in a.maps:
        np.testing.assert_array_equal(a.maps[k], b.maps[k], err_msg=k)  # NaN where NaN, bit for bit
        np.testing.assert_array_equal(a.stats[k], b.stats[k], err_msg=k)
        np.testing.assert_array_equal(a.valid[k], b.valid[k], err_msg=k)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=IDS)
def test_rereduction_with_new_settings_equals_a_fresh_run(arch, options):
    first = run(arch, options, ProbeSpec(keep_raw=True))
    new = ProbeSpec(lo=0.35, hi=0.6, channel=3, eps=0.02, state_bound=0.25, keep_raw=True)
    fresh = run(arch, options, new)
    assert_same_trace(first.rereduce(new), fresh)
    # and back again
    assert_same_trace(fresh.rereduce(ProbeSpec(keep_raw=True)), first)


@pytest.mark.parametrize(("arch", "options"), CASES, ids=IDS)
def test_raw_values_are_indexed_by_step_and_nan_where_not_computed(arch, options):
    trace = run(arch, options, ProbeSpec(keep_raw=True))
    for k, raw in trace.raw.items():
        assert raw.shape[0] == trace.steps == len(trace.maps[k])
        valid = trace.valid[k]
        assert np.isnan(raw[~valid]).all() and np.isfinite(raw[valid]).all(), k
        assert np.isnan(trace.maps[k][~valid]).all() and np.isfinite(trace.maps[k][valid]).all(), k
        assert np.isnan(trace.stats[k][~valid]).all(), k


@pytest.mark.parametrize(("arch", "options"), CASES, ids=IDS)
def test_gates_are_in_unit_range_so_their_kind_is_right(arch, options):
    trace = run(arch, options, ProbeSpec())
    kinds = {trace.kind(*split_key(k)) for k in trace.maps}
    assert "gate" in kinds and "state" in kinds and "change" in kinds
    for k in trace.maps:
        if trace.kind(*split_key(k)) == "gate":
            valid = trace.valid[k]
            assert trace.stats[k][valid, :, 1].min() >= 0 and trace.stats[k][valid, :, 2].max() <= 1, k


def test_mim_n_is_not_computed_at_step_0_and_e3d_rests_between_rebuilds():
    mim = run("mim", {}, ProbeSpec())
    for name in ("D", "N.i", "N.f", "N.g", "N.o", "N", "Dn"):
        assert mim.valid_steps(1, name).tolist() == [False] + [True] * 5
    assert mim.valid_steps(0, "f").all() and mim.valid_steps(1, "S.f").all()
    e3d = run("e3d_lstm", {"options": RESTING_E3D}, ProbeSpec())
    for k in e3d.maps:
        assert e3d.valid[k].tolist() == [True, False, True, False, True, False], k


def test_not_computed_steps_are_empty_in_csv_and_null_in_json(tmp_path):
    for arch, options, layer, name, missing in (
        ("mim", {}, 1, "N.f", {0}),
        ("e3d_lstm", {"options": RESTING_E3D}, 0, "f'", {1, 3, 5}),
    ):
        trace = run(arch, options, ProbeSpec())
        export.write_trace_stats(tmp_path / "s.csv", trace)
        export.write_trace_stats(tmp_path / "s.json", trace)
        with open(tmp_path / "s.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["layer"] == str(layer) and r["quantity"] == name]
        document = json.loads((tmp_path / "s.json").read_text())
        json_rows = [r for r in document["rows"] if r["layer"] == layer and r["quantity"] == name]
        assert len(rows) == len(json_rows) == trace.steps * 2  # steps x samples
        for row, json_row in zip(rows, json_rows, strict=True):
            step = int(row["step"])
            assert json_row["step"] == step
            if step in missing:
                assert all(row[s] == "" for s in STAT_NAMES), row
                assert all(json_row[s] is None for s in STAT_NAMES), json_row
            else:
                assert float(row["frac_low"]) == trace.stat(layer, name, "frac_low")[step, int(row["sample"])]
                assert json_row["mean"] is not None and row["frac_still"] == ""  # still: dH only


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lo=st.floats(-1.5, 1.5),
    width=st.floats(1e-3, 2.0),
    channel=st.integers(0, 9),
    eps=st.floats(1e-6, 0.5),
    bound=st.floats(1e-3, 2.0),
)
def test_any_thresholds_rereduce_to_what_a_fresh_run_records(lo, width, channel, eps, bound):
    spec = ProbeSpec(lo=lo, hi=lo + width, channel=channel, eps=eps, state_bound=bound, keep_raw=True)
    recorded = _mim_trace()
    fresh = run("mim", {}, spec)
    assert_same_trace(recorded.rereduce(spec), fresh)


_CACHE: dict[str, Trace] = {}


def _mim_trace() -> Trace:
    if "mim" not in _CACHE:
        _CACHE["mim"] = run("mim", {}, ProbeSpec(keep_raw=True))
    return _CACHE["mim"]


@pytest.mark.parametrize(
    "settings_",
    [
        {"lo": 0.5, "hi": 0.5},
        {"lo": 0.9, "hi": 0.1},
        {"eps": 0.0},
        {"state_bound": -1.0},
        {"channel": -1},
        {"lo": float("nan")},
    ],
)
def test_impossible_settings_are_refused(settings_):
    with pytest.raises(ConfigError):
        ProbeSpec(**settings_)


def test_rereduction_needs_the_raw_values():
    trace = run("convlstm", {}, ProbeSpec())
    with pytest.raises(MimviewerError, match="no raw values"):
        trace.rereduce(ProbeSpec(lo=0.2))


def test_dh_stillness_uses_the_epsilon_asked_for():
    spec = ProbeSpec(eps=0.01, keep_raw=True)
    trace = run("predrnn", {}, spec)
    for layer in (0, 1):
        h = trace.raw[f"{layer}/H"].astype(np.float64)
        dh = np.diff(h, axis=0, prepend=0.0)  # H starts at zero
        still = (np.abs(dh) < 0.01).mean(axis=(2, 3, 4))  # (steps, B)
        np.testing.assert_allclose(trace.stat(layer, "dH", "frac_still"), still, atol=1e-6)
        np.testing.assert_allclose(
            trace.stat(layer, "dH", "frac_low") + trace.stat(layer, "dH", "frac_high"), 1 - still, atol=1e-6
        )


def test_one_packed_host_copy_gives_every_quantity_of_a_step():
    model = tiny("mim")
    steps = list(iter_rollout(model, FRAMES, 4, 3, probes=ProbeSpec()))
    for step in steps:
        host = step.host_probes(sample=1)
        assert host.maps.keys() == host.stats.keys() == host.valid.keys()
        for k, (maps, stats) in step.probes.items():
            np.testing.assert_array_equal(host.maps[k], maps[:, 1].numpy())
            np.testing.assert_array_equal(host.stats[k], stats[1].numpy())
            assert host.valid[k] == (not np.isnan(host.maps[k]).all())
    assert not steps[0].host_probes().valid["1/N.f"] and steps[1].host_probes().valid["1/N.f"]


def test_trace_file_keeps_the_mask_and_a_bad_file_is_named(tmp_path):
    trace = run("mim", {}, ProbeSpec(lo=0.2, hi=0.7, eps=0.05, state_bound=0.5))
    trace.save(tmp_path / "t.npz")
    back = Trace.load(tmp_path / "t.npz")
    assert_same_trace(back, trace)
    assert back.spec == trace.spec
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"bad\.npz"):
        Trace.load(tmp_path / "bad.npz")


def test_cli_defaults_equal_the_probe_spec_defaults():
    from mimviewer.commands.probe_options import DEFAULTS

    spec = ProbeSpec()
    assert {
        "lo": spec.lo,
        "hi": spec.hi,
        "state_bound": spec.state_bound,
        "eps": spec.eps,
        "channel": spec.channel,
    } == DEFAULTS


def test_packed_copy_on_a_gpu_equals_the_device_values():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU on this machine (the pinned, non-blocking copy runs on CUDA only)")
    model = tiny("mim").cuda()
    for step in iter_rollout(model, FRAMES.cuda(), 4, 3, probes=ProbeSpec()):
        host = step.host_probes()
        for k, (maps, stats) in step.probes.items():
            np.testing.assert_array_equal(host.maps[k], maps.cpu().numpy())
            np.testing.assert_array_equal(host.stats[k], stats.cpu().numpy())


def test_the_exported_heatmap_grid_says_not_computed():
    trace = run("mim", {}, ProbeSpec())
    at_0 = export.render_heatmap_grid(trace, 0, ["N.f", "S.f"], cell=48)
    at_1 = export.render_heatmap_grid(trace, 1, ["N.f", "S.f"], cell=48)
    assert at_0.shape == at_1.shape
    # layer 1's N.f cell: plain grey with a label at step 0, a heatmap at step 1
    top = export.HEADER + export.LABEL + (48 + 2 * export.LABEL)
    left = 34
    cell_0, cell_1 = at_0[top : top + 48, left : left + 48], at_1[top : top + 48, left : left + 48]
    assert (cell_0 == 220).all(axis=2).mean() > 0.5 and not (cell_1 == 220).all(axis=2).any()
    assert (cell_0 < 100).all(axis=2).any()  # the label's dark text
