"""The shared rollout machinery: patchify, the registry, probes and the Trace."""

import numpy as np
import pytest
import torch

from mimviewer.errors import ConfigError, ShapeError
from mimviewer.inference import iter_rollout, rollout
from mimviewer.nets import ModelConfig, create_model, default_config, list_models, patchify, unpatchify
from mimviewer.trace import ProbeSpec, Trace


def test_patchify_matches_openstl_channel_order():
    p, c = 2, 3
    frames = torch.arange(2 * c * 4 * 6, dtype=torch.float32).reshape(2, c, 4, 6)
    patched = patchify(frames, p)
    assert patched.shape == (2, p * p * c, 2, 3)
    for dy in range(p):
        for dx in range(p):
            for ch in range(c):
                np.testing.assert_array_equal(patched[:, (dy * p + dx) * c + ch], frames[:, ch, dy::p, dx::p])
    np.testing.assert_array_equal(unpatchify(patched, p), frames)


def test_unknown_architecture_is_named():
    with pytest.raises(ConfigError, match="unknown architecture 'nope'"):
        create_model("nope")


def test_registry_defaults_and_overrides():
    assert "convlstm" in list_models()
    cfg = default_config("convlstm", num_hidden=(8, 4), patch_size=2, height=8, width=12)
    assert cfg.num_layers == 2 and cfg.grid_height == 4 and cfg.grid_width == 6


@pytest.mark.parametrize("bad", [dict(height=10, patch_size=4), dict(stride=2), dict(filter_size=4)])
def test_config_rejects_impossible_sizes(bad):
    with pytest.raises(ConfigError):
        ModelConfig(arch="convlstm", **bad)


def test_config_round_trips_through_json():
    cfg = ModelConfig(arch="convlstm", num_hidden=(3, 5), options={"x": 1})
    assert ModelConfig.from_json(cfg.to_json()) == cfg


def test_rollout_shapes_trace_and_dh(tmp_path):
    model = create_model(
        "convlstm", num_hidden=(4, 6), patch_size=2, height=8, width=12, channels=3, filter_size=3
    )
    frames = torch.rand(2, 7, 3, 8, 12)
    spec = ProbeSpec(lo=0.2, hi=0.8, channel=1)
    result = rollout(model, frames, pre=4, aft=3, probes=spec)
    assert result.prediction.shape == (2, 3, 3, 8, 12)
    trace = result.trace
    assert trace.steps == 6 and trace.num_layers == 2
    assert trace.quantities(0) == ["i", "f", "g", "o", "C", "dH", "H"]
    assert trace.map(1, "f", "mean").shape == (6, 2, 4, 6)
    sat = trace.map(0, "f", "saturated")
    assert ((sat >= 0) & (sat <= 1)).all()
    np.testing.assert_allclose(
        trace.stat(0, "f", "frac_saturated"), sat.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6
    )
    # dH is H_t - H_(t-1): its mean map is the difference of consecutive H mean maps
    h = trace.map(1, "H", "mean")
    np.testing.assert_allclose(trace.map(1, "dH", "mean")[1:], h[1:] - h[:-1], atol=1e-6)
    # no probes gives the very same frames
    plain = rollout(model, frames, pre=4, aft=3)
    np.testing.assert_array_equal(plain.prediction, result.prediction)
    assert plain.trace is None
    # the trace survives a file round trip
    trace.save(tmp_path / "t.npz")
    back = Trace.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(back.map(0, "C", "channel"), trace.map(0, "C", "channel"))
    assert back.spec.lo == pytest.approx(0.2)


def test_iter_rollout_streams_each_step_and_marks_predictions():
    model = create_model("convlstm", num_hidden=(4,), patch_size=4, height=8, width=8, filter_size=3)
    gen = iter_rollout(model, np.random.rand(5, 8, 8).astype(np.float32), pre=3, aft=2, probes=ProbeSpec())
    steps = list(gen)
    assert [s.t for s in steps] == [0, 1, 2, 3]
    assert [s.is_prediction for s in steps] == [False, False, True, True]
    assert steps[0].frame.shape == (1, 1, 8, 8)
    maps, stats = steps[2].probes["0/f"]
    assert maps.shape == (4, 1, 2, 2) and stats.shape == (1, 6)


def test_wrong_frame_size_names_expected_and_given():
    model = create_model("convlstm", num_hidden=(4,), height=8, width=8, patch_size=2)
    with pytest.raises(ShapeError, match=r"\(1, 8, 8\)"):
        rollout(model, torch.rand(1, 4, 1, 8, 12), pre=2, aft=2)


@pytest.mark.parametrize(
    ("name", "below", "above"),
    [
        ("f", lambda v: v < 0.2, lambda v: v > 0.7),  # gate: saturated below lo / above hi
        ("C", lambda v: v < -0.6, lambda v: v > 0.6),  # state: large, |x| > a
        ("dH", lambda v: v <= -0.05, lambda v: v >= 0.05),  # change: the rest is still, |x| < eps
    ],
)
def test_recorder_reductions_equal_the_direct_formulas(name, below, above):
    from mimviewer.trace import MAP_REDUCTIONS, STAT_NAMES, TraceRecorder, quantity_kind

    spec = ProbeSpec(lo=0.2, hi=0.7, channel=2, eps=0.05, state_bound=0.6)
    recorder = TraceRecorder(spec, steps=2)
    values = [torch.rand(3, 5, 4, 6) * 2 - 0.5 for _ in range(2)]
    for t, value in enumerate(values):
        recorder.begin_step(t)
        recorder._reduce(f"1/{name}", quantity_kind(name), value)
    trace = recorder.finish(pre=2, aft=1)
    for t, v in enumerate(values):
        expected_maps = {
            "mean": v.mean(1),
            "low": below(v).float().mean(1),
            "high": above(v).float().mean(1),
            "channel": v[:, 2],
        }
        for reduction in MAP_REDUCTIONS:
            np.testing.assert_allclose(trace.map(1, name, reduction)[t], expected_maps[reduction], atol=1e-6)
        flat = v.flatten(1)
        still = (
            (flat.abs() < 0.05).float().mean(1)
            if quantity_kind(name) == "change"
            else torch.full((3,), np.nan)
        )
        expected_stats = {
            "mean": flat.mean(1),
            "min": flat.amin(1),
            "max": flat.amax(1),
            "frac_low": below(flat).float().mean(1),
            "frac_high": above(flat).float().mean(1),
            "frac_still": still,  # dH only
        }
        for stat in STAT_NAMES:
            np.testing.assert_allclose(trace.stat(1, name, stat)[t], expected_stats[stat], atol=1e-6)


def test_bf16_rollout_is_close_to_float32_where_the_hardware_has_bf16():
    from mimviewer.inference import bf16_supported

    if not bf16_supported(torch.device("cpu")):
        pytest.skip("this CPU has no fast bf16 (AVX512-BF16/AMX)")
    model = create_model("convlstm", num_hidden=(8, 8), patch_size=2, height=8, width=8, filter_size=3)
    frames = torch.rand(2, 6, 1, 8, 8)
    exact = rollout(model, frames, pre=3, aft=3, probes=ProbeSpec())
    fast = rollout(model, frames, pre=3, aft=3, probes=ProbeSpec(), amp=True)
    assert fast.prediction.dtype == np.float32
    difference = np.abs(fast.prediction - exact.prediction).max()
    assert 0 < difference < 0.02  # really ran in bf16, and stayed close
    np.testing.assert_allclose(fast.trace.map(0, "f"), exact.trace.map(0, "f"), atol=0.02)


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_predicts_the_same_with_and_without_probes(arch):
    hidden = (4, 4) if arch != "predrnn_pp" else (4, 4, 4)
    model = create_model(arch, num_hidden=hidden, filter_size=3, patch_size=2, height=8, width=12, channels=2)
    frames = torch.rand(2, 6, 2, 8, 12)
    plain = rollout(model, frames, pre=3, aft=3)
    probed = rollout(model, frames, pre=3, aft=3, probes=ProbeSpec(keep_raw=True))
    np.testing.assert_array_equal(plain.outputs, probed.outputs)
    assert set(probed.trace.quantities()) >= {"H", "dH"}


def test_a_wide_model_traces_reductions_not_raw_tensors():
    """Issue criterion: a 20-step rollout of a 4-layer 128-channel model keeps only reductions."""
    model = create_model("convlstm", num_hidden=(128,) * 4, filter_size=3, patch_size=4, height=32, width=32)
    frames = torch.rand(1, 10, 1, 32, 32)
    result = rollout(model, frames, pre=10, aft=11, probes=ProbeSpec())
    trace = result.trace
    assert trace.steps == 20 and trace.raw == {}
    raw_bytes = 20 * 128 * 8 * 8 * 4  # one quantity of one layer, all channels, float32
    for key in trace.maps:
        assert trace.maps[key].nbytes == 20 * 4 * 1 * 8 * 8 * 4  # (steps, 4 reductions, B, H', W')
        assert trace.maps[key].nbytes * 32 == raw_bytes
