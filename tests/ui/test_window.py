"""The window as a user looks at it: open the demo, scrub with keys, look inside, zoom, click."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from mimviewer.commands.demo import load_demo, open_demo
from mimviewer.ui import CONTEXT_COLOUR, PREDICTED_COLOUR
from tests.ui.cell_colours import assert_cell_shows
from tests.ui.conftest import wait_finished


def shows(item, expected) -> bool:
    return item.image is not None and expected is not None and np.array_equal(item.image, expected)


def test_demo_fills_every_view_and_keys_drive_the_timeline(qtbot, window):
    open_demo(window, load_demo())
    wait_finished(qtbot, window)
    session = window.session
    slot = session.slots[0]
    assert slot.done_steps == session.steps == session.pre + session.aft - 1
    panel, internals = window.frames_panel, window.internals

    def check_frame(frame: int) -> None:
        assert session.frame == frame
        assert window.timeline.slider.value() == frame
        assert window.timeline.cursor.value() == frame
        assert shows(panel.images["gt"], session.gt_image(frame))
        if frame >= 1:
            assert shows(panel.images["pred0"], slot.images[frame - 1])
            assert shows(panel.images["diff0"], slot.diff_images[frame - 1])
        step = session.step_of_frame(frame)
        for layer, name in internals.cells:
            assert_cell_shows(internals, layer, name, session.heatmap(layer, name, step))
        assert internals.curve_cursor.value() == step
        assert f"frame {frame} /" in panel.header.text()
        assert ("context" if frame < session.pre else "predicted") in panel.header.text()
        colour = CONTEXT_COLOUR if frame < session.pre else PREDICTED_COLOUR
        assert panel.borders["pred0"].pen().color().name() == colour

    qtbot.keyClick(window, Qt.Key.Key_End)
    check_frame(session.pre + session.aft - 1)
    qtbot.keyClick(window, Qt.Key.Key_Home)
    check_frame(0)
    for frame in (1, 2, 3):
        qtbot.keyClick(window, Qt.Key.Key_Right)
        check_frame(frame)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    check_frame(2)
    # the readout under the cursor gives the physical values of every view at that pixel
    text = panel.read_value("pred0", 20, 30)
    assert (
        f"gt {session.frames[2, 0, 20, 30]:.4g}" in text and f"pred0 {slot.outputs[1, 0, 20, 30]:.4g}" in text
    )
    assert panel.read_value("gt", -1, 5) == "" and "outside" in panel.readout.text()
    # the metric curve has a point for every predicted frame
    assert np.isfinite(window.timeline.curves[0].yData[1:]).all()
    # Space plays, Space pauses
    window.timeline.fps.setValue(30)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.timeline.playing
    qtbot.waitUntil(lambda: session.frame > 4, timeout=5000)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.timeline.playing
    check_frame(session.frame)


def test_quantities_reductions_and_thresholds(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session, internals = window.session, window.internals
    session.frame = 8
    assert "g" not in session.quantities
    internals.quantity_buttons["g"].click()
    assert "g" in session.quantities and (1, "g") in internals.cells
    internals.quantity_buttons["f"].click()
    assert "f" not in session.quantities and (0, "f") not in internals.cells
    internals.quantity_buttons["f"].click()

    internals.reduction.setCurrentIndex(internals.reduction.findData("saturated"))
    assert session.reduction == "saturated"
    raw = session.slots[0].trace.raw["1/f"][session.step_of_frame(), 0]  # (C, H', W')
    expected = ((raw < 0.1) | (raw > 0.9)).mean(0)
    np.testing.assert_allclose(session.heatmap(1, "f"), expected, atol=1e-6)
    assert_cell_shows(internals, 1, "f", expected)

    internals.lo.setValue(0.45)
    internals.hi.setValue(0.55)
    expected = ((raw < 0.45) | (raw > 0.55)).mean(0)
    np.testing.assert_allclose(session.heatmap(1, "f"), expected, atol=1e-6)
    assert_cell_shows(internals, 1, "f", expected)
    curves = {c.name(): c for c in internals.curves.listDataItems()}
    all_raw = session.slots[0].trace.raw["1/f"][:, 0].reshape(session.steps, -1)
    np.testing.assert_allclose(curves["L1 above"].yData, (all_raw > 0.55).mean(1), atol=1e-6)
    np.testing.assert_allclose(curves["L1 below"].yData, (all_raw < 0.45).mean(1), atol=1e-6)

    internals.reduction.setCurrentIndex(internals.reduction.findData("channel"))
    internals.channel.setValue(2)
    channel = session.slots[0].trace.raw["0/C"][7, 0, 2]
    np.testing.assert_allclose(session.heatmap(0, "C"), channel)
    assert_cell_shows(internals, 0, "C", channel)
    assert internals.grid.bars["C"].levels()[0] < 0 < internals.grid.bars["C"].levels()[1]  # diverging

    # hover text and the enlarged heatmap
    text = internals.describe_cell(0, "C", 1, 2)
    assert "layer 0" in text and "cell memory" in text and "step 7" in text and "x=2, y=1" in text
    dialog = internals.enlarge(0, "C")
    assert np.array_equal(dialog.image.image, session.heatmap(0, "C"))
    assert_cell_shows(internals, 0, "C", dialog.image.image)
    session.frame = 3
    assert np.array_equal(dialog.image.image, session.heatmap(0, "C", 2))
    dialog.close()


def test_click_on_a_metric_curve_jumps_and_zoom_is_linked(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    plot = window.timeline.plot
    view = plot.plotItem.vb
    scene_pos = view.mapViewToScene(QPointF(7, float(np.nanmean(window.timeline.curves[0].yData))))
    qtbot.mouseClick(plot.viewport(), Qt.MouseButton.LeftButton, pos=plot.mapFromScene(scene_pos))
    assert window.session.frame == 7

    views = window.frames_panel.views
    views["gt"].scaleBy((0.5, 0.5))
    views["gt"].sigRangeChangedManually.emit([True, True])  # what a mouse wheel on the view emits
    region = views["gt"].viewRect()
    for name in ("pred0", "diff0"):
        other = views[name].viewRect()
        assert abs(other.center().x() - region.center().x()) < 0.5
        assert abs(other.center().y() - region.center().y()) < 0.5
        assert other.width() < 16 * 0.75  # zoomed in too


def test_thresholds_rerun_inference_when_raw_values_were_too_big_to_keep(
    qtbot, window, tiny_files, monkeypatch
):
    import mimviewer.viewmodel.jobs

    monkeypatch.setattr(mimviewer.viewmodel.jobs, "RAW_BUDGET_BYTES", 0)
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session = window.session
    assert session.slots[0].trace.raw == {}
    high_before = session.slots[0].stats["0/f"][:, 4].copy()  # fraction above 0.9
    run = session.run_id
    window.internals.hi.setValue(0.6)
    assert session.run_id > run  # a new rollout with the new thresholds
    wait_finished(qtbot, window)
    assert session.slots[0].trace.spec.hi == pytest.approx(0.6)
    high_after = session.slots[0].stats["0/f"][:, 4]  # fraction above 0.6
    assert (high_after >= high_before).all() and high_after.sum() > high_before.sum()


def test_models_show_only_the_quantities_they_have(qtbot, window, tiny_files, tmp_path):
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.nets import create_model

    sequence, _ = tiny_files
    small = {"filter_size": 3, "patch_size": 2, "height": 16, "width": 16, "pre": 6, "aft": 6}
    mim = tmp_path / "mim.safetensors"
    save_checkpoint(mim, create_model("mim", num_hidden=(4, 4), **small))
    window.open_paths(sequence=sequence, checkpoint=mim)
    wait_finished(qtbot, window)
    session, internals = window.session, window.internals
    session.quantities = ["f", "D", "S", "H"]
    assert (0, "f") in internals.cells and (0, "H") in internals.cells
    assert (0, "D") not in internals.cells and (0, "S") not in internals.cells  # layer 0 is an ST-LSTM
    assert (1, "D") in internals.cells and (1, "S") in internals.cells  # layer 1 is a MIM block
    assert internals.cells[(1, "S")][1].image is not None

    lstm = tmp_path / "lstm.safetensors"
    save_checkpoint(lstm, create_model("lstm", num_hidden=(8,), **small))
    window.open_paths(checkpoint=lstm)
    wait_finished(qtbot, window)
    session.quantities = ["f", "H"]
    session.frame = 4
    values = session.heatmap(0, "f")  # units x steps, filled up to the current step
    assert values.shape == (8, session.steps)
    assert np.isfinite(values[:, : session.step_of_frame() + 1]).all()
    assert np.isnan(values[:, session.step_of_frame() + 1 :]).all()
    assert_cell_shows(internals, 0, "f", values)  # the steps to come are transparent
