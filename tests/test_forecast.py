"""Forecast past the last frame: the plan, the run, and the truth that does not exist yet."""

from datetime import datetime

import numpy as np
import pytest
import torch

from mimviewer.errors import ShapeError
from mimviewer.forecast import (
    default_now,
    forecast_metrics,
    lead_label,
    metric_names,
    plan_forecast,
    run_forecast,
)
from mimviewer.inference import rollout
from mimviewer.metrics import frame_metrics
from mimviewer.nets import create_model, list_models
from mimviewer.trace import ProbeSpec


def tiny(arch: str = "convlstm", pre: int = 3, aft: int = 3):
    torch.manual_seed(0)
    hidden = (4, 4, 4) if arch == "predrnn_pp" else (4, 4)
    return create_model(
        arch, num_hidden=hidden, filter_size=3, patch_size=2, height=8, width=8, pre=pre, aft=aft
    )


def test_a_sequence_of_exactly_the_context_is_forecast_past_its_end():
    plan = plan_forecast(10, 10, 10, trained_aft=10, frame_interval_s=360)

    assert plan.now == 9 and plan.first == 0
    assert plan.observed_count == 0 and plan.is_forecast
    assert [plan.sequence_index(k) for k in (0, 9, 10, 19)] == [0, 9, 10, 19]
    assert not plan.beyond_trained.any()
    assert plan.lead_labels()[:2] == ["+6 min", "+12 min"]
    assert "not observed yet" in plan.frame_note(10) and "context" in plan.frame_note(9)


def test_default_now_compares_with_the_truth_when_it_is_all_there():
    assert default_now(20, 10, 10) == 9  # a comparison, as before
    assert default_now(25, 10, 10, start=5) == 14
    assert default_now(15, 10, 10) == 14  # not enough truth: forecast from the last frame
    plan = plan_forecast(15, 10, 10, now=9)  # the user's choice: compare the first 5 leads
    np.testing.assert_array_equal(plan.observed, [True] * 5 + [False] * 5)


def test_now_counts_from_the_end_and_is_checked():
    assert plan_forecast(12, 4, 2, now=-1).now == 11
    with pytest.raises(ShapeError, match=r"4 context frames need now in 3\.\.11"):
        plan_forecast(12, 4, 2, now=2)
    with pytest.raises(ShapeError, match="fewer than the 4 context frames"):
        plan_forecast(3, 4, 2)


def test_valid_times_and_labels():
    plan = plan_forecast(
        5, 3, 4, now=-1, trained_aft=2, frame_interval_s=600, now_time=datetime(2024, 6, 1, 12, 30)
    )
    assert plan.valid_time(2) == datetime(2024, 6, 1, 12, 50)
    assert "valid 12:40" in plan.frame_note(3)
    np.testing.assert_array_equal(plan.beyond_trained, [False, False, True, True])
    assert "past the trained horizon (2)" in plan.frame_note(6)
    assert "2 past the trained horizon" in plan.describe()
    assert lead_label(3, None) == "+3 frames" and lead_label(1, None) == "+1 frame"
    assert lead_label(1, 30) == "+30 s" and lead_label(13, 600) == "+2 h 10 min"
    assert lead_label(13, 600, short=True) == "+2h10m" and lead_label(2, 360, short=True) == "+12m"
    assert lead_label(4, None, short=True) == "+4"


@pytest.mark.parametrize("arch", list_models())
def test_every_architecture_forecasts_past_the_end_and_runs_on(arch):
    """A 10-frame input, a model trained 3 -> 3, asked for 5: predictions past the end, no truth."""
    model = tiny(arch)
    frames = np.random.default_rng(1).random((10, 1, 8, 8), dtype=np.float32)
    plan = plan_forecast(10, 3, 5, now=-1, trained_aft=3)

    forecast = run_forecast(model, frames, plan, probes=ProbeSpec())

    assert forecast.prediction.shape == (5, 1, 8, 8) and np.isfinite(forecast.prediction).all()
    assert np.isnan(forecast.truth).all()  # not observed yet: NaN, never a zero frame
    np.testing.assert_array_equal(forecast.context, frames[7:])
    expected = rollout(model, frames[None, 7:], 3, 5).prediction[0]
    np.testing.assert_array_equal(forecast.prediction, expected)
    # Running on past the trained horizon leaves the trained horizon's frames as they were.
    trained = run_forecast(model, frames, plan_forecast(10, 3, 3, now=-1, trained_aft=3))
    np.testing.assert_array_equal(forecast.prediction[:3], trained.prediction)
    np.testing.assert_array_equal(plan.beyond_trained, [False, False, False, True, True])
    assert forecast.trace is not None and forecast.trace.steps == 3 + 5 - 1
    metrics = forecast.metrics()
    assert set(metrics) == set(metric_names("intensity"))
    assert all(np.isnan(values).all() for values in metrics.values())  # absent, not zero


def test_metrics_exist_exactly_where_the_truth_does():
    model = tiny()
    frames = np.random.default_rng(2).random((8, 1, 8, 8), dtype=np.float32)
    plan = plan_forecast(8, 3, 4, now=5)  # leads 1, 2 observed (frames 6, 7); 3, 4 not

    forecast = run_forecast(model, frames, plan)
    metrics = forecast.metrics(units="dBZ")

    np.testing.assert_array_equal(forecast.truth[:2], frames[6:8])
    assert np.isnan(forecast.truth[2:]).all()
    expected = frame_metrics(frames[6:8], forecast.prediction[:2], units="dBZ")
    for name, values in expected.items():
        np.testing.assert_array_equal(metrics[name][:2], values)
        assert np.isnan(metrics[name][2:]).all()
    assert "csi@10" in metrics


def test_forecast_metrics_with_no_truth_has_every_key():
    truth = np.full((2, 1, 8, 8), np.nan, np.float32)
    table = forecast_metrics(truth, np.zeros_like(truth), np.zeros(2, bool), units="mm/h", thresholds=(1.0,))
    assert set(table) == {*metric_names("mm/h", (1.0,))}
    assert "far@1" in table and all(np.isnan(v).all() for v in table.values())


def test_the_study_runs_on_past_the_trained_horizon(tmp_path):
    from mimviewer.checkpoints import load_checkpoint, save_checkpoint
    from mimviewer.study import study_model

    save_checkpoint(tmp_path / "m.safetensors", tiny("predrnn"))
    loaded = load_checkpoint(tmp_path / "m.safetensors")
    frames = np.random.default_rng(3).random((2, 9, 1, 8, 8), dtype=np.float32)

    longer = study_model("m", loaded, frames, aft=6)  # trained 3 -> 3, run on to 6
    trained = study_model("m", loaded, frames[:, :6])

    assert longer.aft == 6 and longer.saturated["L0 f"].shape == (3 + 6 - 1,)
    np.testing.assert_array_equal(longer.saturated["L0 f"][:5], trained.saturated["L0 f"])
