"""The delta row in the window: toggle on (eps = 0: the exact prediction), change eps (the
engine's skipped fraction in the toolbar and status bar), toggle off (the row goes); the
command line's --delta-eps."""

from __future__ import annotations

import numpy as np
import torch

from mimviewer.cli import main
from mimviewer.delta import delta_rollout
from mimviewer.viewmodel.delta import DELTA, SKIPPED_METRIC
from tests.ui.conftest import wait_finished
from tests.ui.test_screenshot import assert_not_blank
from tests.ui.test_session_delta import EPS0_ATOL


def test_toggle_delta_row_at_zero_then_change_eps_then_off(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert not window.delta.action.isEnabled()  # no model yet: nothing to run in delta mode
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    assert window.delta.action.isEnabled()
    session, controls, panel = window.session, window.delta, window.frames_panel
    assert not controls.action.isChecked() and "pred3" not in panel.views

    controls.eps.setValue(0.0)  # off: changing the threshold runs nothing
    assert not window.runner.is_running and session.slots[DELTA] is None
    controls.action.setChecked(True)
    wait_finished(qtbot, window)
    exact, delta = session.slots[0], session.slots[DELTA]
    assert delta is not None and delta.delta.eps == 0.0
    np.testing.assert_allclose(delta.outputs, exact.outputs, rtol=0, atol=EPS0_ATOL)
    # the extra row beside the exact one: delta prediction | delta − exact, and its own curve
    assert {"pred3", "diff3"} <= set(panel.views) and panel.place("pred3") == (1, 1)
    titles = dict(panel.columns())  # as the views show them (elided where the column is narrow)
    assert titles["pred3"] == "delta (eps=0)" and titles["diff3"] == "delta (eps=0) − exact"
    session.frame = session.pre + 1
    assert np.array_equal(panel.images["pred3"].image, delta.images[session.pre])
    expected = session.renderer.differences(delta.outputs[session.pre], exact.outputs[session.pre])
    assert np.array_equal(panel.images["diff3"].image, expected)
    assert set(window.timeline.curves) == {0, DELTA}
    assert session.delta_status() == window.status_text.text()

    controls.eps.setValue(0.05)  # only the delta row runs again
    qtbot.waitUntil(lambda: session.slots[DELTA].name == "delta (eps=0.05)")
    wait_finished(qtbot, window)
    summary = session.slots[DELTA].delta
    frames = torch.from_numpy(np.load(sequence)[None, : session.pre]).float()
    engine = delta_rollout(exact.model, frames, 0.05, session.pre, session.aft)
    np.testing.assert_array_equal(summary.skipped, engine.skipped)
    assert summary.fraction == engine.skipped_fraction and 0 < summary.fraction <= 1
    assert f"skipped {engine.skipped_fraction:.3f}" in window.status_text.text()
    assert f"{engine.skipped_fraction:.1%}" in controls.summary.text()
    window.timeline.metric.setCurrentText(SKIPPED_METRIC)  # the skipped fraction over the timeline
    assert set(window.timeline.curves) == {DELTA}
    choice = window.internals.model_choice
    choices = [choice.itemData(i) for i in range(choice.count())]
    assert DELTA in choices  # its internals too

    controls.action.setChecked(False)
    assert session.slots[DELTA] is None and not {"pred3", "diff3"} & set(panel.views)
    assert controls.summary.text() == "" and not window.runner.is_running


def test_view_with_delta_eps_shows_the_row_in_the_screenshot(qtbot, tiny_files, tmp_path):
    sequence, checkpoint = tiny_files
    png = tmp_path / "delta.png"
    args = ["view", str(sequence), "-c", str(checkpoint), "--device", "cpu", "--screenshot", str(png)]
    assert main([*args, "--delta-eps", "0.01"]) == 0
    assert_not_blank(png)


def test_view_refuses_a_bad_delta_eps_in_one_line(tiny_files, tmp_path, capsys):
    sequence, checkpoint = tiny_files
    png = str(tmp_path / "x.png")
    assert main(["view", str(sequence), "-c", str(checkpoint), "--delta-eps", "-1", "--screenshot", png]) == 2
    assert main(["view", str(sequence), "--delta-eps", "0.01", "--screenshot", png]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and ">= 0" in err[0] and "--checkpoint" in err[1]


def test_cancel_the_delta_row_part_way_then_run_it_again(qtbot, window, tiny_files):
    from PySide6.QtCore import QThreadPool

    from mimviewer.nets.delta import DeltaModule

    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session = window.session

    def cancel_at_step_two(slot, t):
        if slot == DELTA and t == 2:
            window.runner.cancel()

    session.events.step.connect(cancel_at_step_two)
    window.delta.action.setChecked(True)  # only the delta row runs: the exact one is there
    qtbot.waitUntil(lambda: not window.runner.is_running, timeout=60_000)
    QThreadPool.globalInstance().waitForDone(10_000)
    qtbot.wait(50)  # queued updates of the cancelled run must be ignored
    assert session.slots[DELTA].done_steps == 3 < session.steps and not session.slots[DELTA].finished
    assert session.slots[0].finished and "cancelled" in window.status_text.text()
    assert not any(isinstance(m, DeltaModule) for m in session.slots[0].model.modules())
    session.events.step.disconnect(cancel_at_step_two)
    window.runner.start()
    wait_finished(qtbot, window)
    assert session.slots[DELTA].delta is not None and "delta eps 0.01" in window.status_text.text()
