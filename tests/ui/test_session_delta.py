"""The window's delta row in the view model (no Qt), for every registered architecture.

eps = 0 gives the exact prediction up to float32 rounding, eps > 0 reports exactly the skipped
fractions of the engine (mimviewer.delta.delta_rollout on the same float32 model and frames:
the same kernels on the same machine, so the same thresholding), and turning it off removes it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mimviewer.delta import delta_rollout
from mimviewer.errors import ConfigError, DataError
from mimviewer.nets import list_models
from mimviewer.nets.delta import DeltaModule
from mimviewer.viewmodel import Session
from mimviewer.viewmodel.delta import DELTA, EXACT_MSE_METRIC, SKIPPED_METRIC
from tests.test_delta import smooth_frames, tiny

# float32: eps = 0 differs from exact by rounding only; tests/test_delta.py measured at most
# 1.04e-7 over every registered architecture (3 random models each): 1e-6 is ten times that
EPS0_ATOL = 1e-6
PRE, AFT = 3, 4


def run(session: Session, slots: tuple[int, ...]) -> None:
    run_id = session.start_run(slots or None)
    for update in session.inference(run_id, device="cpu", only=slots or None):
        assert session.accept(update)


def open_session(arch: str) -> tuple[Session, torch.nn.Module, np.ndarray]:
    model = tiny(arch, torch.float32)
    frames = smooth_frames(torch.float32)[0].numpy()  # (7, 1, 8, 12)
    session = Session()
    session.set_sequence(frames)
    session.set_model(model, name=arch)
    session.set_forecast(context=PRE, horizon=AFT)
    return session, model, frames


@pytest.mark.parametrize("arch", list_models())
def test_delta_row_at_zero_is_the_exact_prediction_and_off_removes_it(arch):
    session, model, _ = open_session(arch)
    slots = session.set_delta(0.0)
    assert slots == (0, DELTA)  # the exact prediction is not there yet: both run
    run(session, slots)
    exact, delta = session.slots[0], session.slots[DELTA]
    assert delta.finished and delta.name == "delta (eps=0)" and delta.reference == 0
    np.testing.assert_allclose(delta.outputs, exact.outputs, rtol=0, atol=EPS0_ATOL)
    assert delta.delta.exact_mse is not None and delta.delta.exact_mse.max() < EPS0_ATOL**2
    assert len(delta.diff_images) == session.steps  # delta − exact, drawn per step
    assert np.isnan(delta.metrics[SKIPPED_METRIC][0]) and len(delta.metrics[EXACT_MSE_METRIC]) == PRE + AFT
    np.testing.assert_allclose(delta.metrics["mse"], exact.metrics["mse"], rtol=1e-4, atol=1e-9)
    # the main model was never wrapped: the delta row runs its own copy
    assert not any(isinstance(m, DeltaModule) for m in model.modules())
    assert session.set_delta(None) == () and session.slots[DELTA] is None
    assert [i for i, _ in session.models] == [0]


@pytest.mark.parametrize("arch", list_models())
def test_delta_row_reports_the_engines_skipped_fractions(arch):
    session, model, frames = open_session(arch)
    run(session, ())  # the exact prediction first; then only the delta row runs
    assert session.set_delta(0.05) == (DELTA,)
    run(session, (DELTA,))
    summary = session.slots[DELTA].delta
    engine = delta_rollout(model, torch.from_numpy(frames[None, :PRE]), 0.05, PRE, AFT)
    np.testing.assert_array_equal(summary.skipped, engine.skipped)
    assert summary.fraction == engine.skipped_fraction or (
        np.isnan(summary.fraction) and np.isnan(engine.skipped_fraction)
    )
    np.testing.assert_array_equal(session.slots[DELTA].outputs, engine.outputs[0])
    if arch == "sru":  # elementwise recurrence: nothing to skip, and the status says so
        assert "no recurrent products" in session.delta_status()
        return
    assert 0 < summary.fraction <= 1
    text = session.delta_status()
    assert f"skipped {engine.skipped_fraction:.3f}" in text
    for layer in range(model.config.num_layers):
        if np.isfinite(engine.skipped[layer]).any():
            assert f"layer {layer}: " in text
    # the timeline curve: frame k shows the multiply-add weighted share of step k - 1
    curve = session.slots[DELTA].metrics[SKIPPED_METRIC]
    assert curve.shape == (PRE + AFT,) and np.nanmax(curve) <= 1 and np.nanmin(curve) >= 0
    for layer in range(model.config.num_layers):
        per_layer = session.slots[DELTA].metrics.get(f"{SKIPPED_METRIC} layer {layer}")
        if np.isfinite(engine.skipped[layer]).any():
            np.testing.assert_array_equal(per_layer[1:], engine.skipped[layer])
        else:
            assert per_layer is None


def test_delta_row_follows_the_main_model_and_refuses_bad_thresholds():
    session, _, _ = open_session("convlstm")
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="delta eps"):
            session.set_delta(bad)
    assert session.slots[DELTA] is None
    session.set_delta(0.01)
    other = tiny("predrnn", torch.float32)
    session.set_model(other, name="other")
    assert session.slots[DELTA].model is other and session.delta_eps == 0.01
    empty = Session()
    with pytest.raises(DataError, match="checkpoint"):
        empty.set_delta(0.01)
