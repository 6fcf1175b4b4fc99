"""Why and what-if in the window: draw a region -> attribution shown; edit -> an extra row."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF, Qt

from mimviewer.attribution import AttributionRequest, attribute
from mimviewer.viewmodel.whatif import EDITED
from mimviewer.whatif import Erase, MoveBlob, Shift
from tests.ui.cell_colours import assert_cell_shows
from tests.ui.conftest import wait_finished


def open_tiny(qtbot, window, tiny_files) -> None:
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)


def test_region_on_the_prediction_then_explain_shows_the_attribution(qtbot, window, tiny_files, tmp_path):
    open_tiny(qtbot, window, tiny_files)
    session, panel = window.session, window.explain.attribution
    session.frame = session.pre + 1  # a predicted frame
    panel.method.setCurrentText("ig")
    panel.steps.setValue(4)
    panel.region_kind.setCurrentIndex(panel.region_kind.findData("rectangle"))  # a rectangle appears ...
    roi = window.frames_panel.region
    assert roi is not None and roi.scene() is window.frames_panel.views["pred0"].scene()
    roi.setPos((2, 3))  # ... and the user drags it
    roi.setSize((6, 5))
    assert session.attribution.region == (2, 3, 8, 8)
    assert window.explain_frame()
    qtbot.waitUntil(
        lambda: session.attribution.view is not None and not panel.runner.is_running, timeout=60_000
    )
    view = session.attribution.view
    result = view.result
    assert result.frame == session.pre + 1 and result.mask.sum() == 30 and result.method == "ig"
    # the same numbers as the engine called directly
    mask = np.zeros((16, 16), bool)
    mask[3:8, 2:8] = True
    expected = attribute(
        session.slots[0].model,
        session.frames[: session.pre],
        AttributionRequest(session.pre + 1, mask, "ig", ig_steps=4),
    )
    np.testing.assert_allclose(result.maps, expected.maps, rtol=1e-5, atol=1e-7)
    # shown: the overlay of the chosen context frame, its colour bar, one bar per context frame, memory paths
    t = session.attribution.context_frame
    assert np.array_equal(panel.image.image, view.overlays[t])
    assert panel.colour is not None
    assert len(panel.bars.opts["height"]) == session.pre
    assert np.array_equal(panel.memory_image.image, view.memory_image) and view.memory_shares.shape[0] >= 2
    panel.slider.setValue(0)  # scrubbing the context frames swaps the overlay
    assert np.array_equal(panel.image.image, view.overlays[0]) and panel.cursor.value() == 0
    assert "completeness gap" in panel.status.text()
    # saved from the window as the command line writes it
    assert window.save_attribution(tmp_path / "attr.npz") == tmp_path / "attr.npz"
    from mimviewer.attribution import Attribution

    np.testing.assert_array_equal(Attribution.load(tmp_path / "attr.npz").maps, result.maps)
    assert (
        window.save_attribution(tmp_path / "attr.png") is not None and (tmp_path / "attr.png").stat().st_size
    )
    assert window.save_attribution(tmp_path / "attr.txt") is None and "attribution" in window.errors[-1]


def test_explain_can_be_cancelled(qtbot, window, tiny_files):
    open_tiny(qtbot, window, tiny_files)
    session, panel = window.session, window.explain.attribution
    session.frame = session.pre
    panel.steps.setValue(400)
    assert window.explain_frame()
    assert panel.cancel_button.isEnabled()
    qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert not panel.runner.is_running and session.attribution.view is None
    assert "cancelled" in panel.status.text()


def test_edit_then_run_whatif_adds_a_row(qtbot, window, tiny_files):
    open_tiny(qtbot, window, tiny_files)
    session, tab = window.session, window.explain.whatif
    frame = session.pre - 2
    tab.frame.setValue(frame)
    tab.tool.setCurrentIndex(tab.tool.findData("erase"))
    tab.radius.setValue(3)
    # a brush stroke (the mouse path is driven in test_mouse_brush_stroke_and_blob_click...)
    assert tab.stroke([(4.0, 4.0), (10.0, 9.0)])
    tab.tool.setCurrentIndex(tab.tool.findData("shift"))
    tab.dx.setValue(2)
    qtbot.mouseClick(tab.apply_button, Qt.MouseButton.LeftButton)
    assert session.whatif.edits.edits == (Erase(frame, ((4.0, 4.0), (10.0, 9.0)), 3.0), Shift(frame, 2, 0))
    assert tab.list.count() == 2
    assert np.array_equal(tab.image.image, session.edited_image(frame))
    session.undo_edit()
    assert tab.list.count() == 1
    session.redo_edit()
    qtbot.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    wait_finished(qtbot, window)
    edited, original = session.slots[EDITED], session.slots[0]
    assert edited is not None and edited.finished
    # frames before the edited one are predicted as before, later ones differ
    np.testing.assert_array_equal(edited.outputs[:frame], original.outputs[:frame])
    assert np.abs(edited.outputs[frame:] - original.outputs[frame:]).max() > 0
    # the extra row: edited | edited - original, and its metric curve beside the original's
    panel = window.frames_panel
    assert {"pred2", "diff2"} <= set(panel.views) and panel.place("pred2") == (1, 1)
    session.frame = session.pre + 1
    assert np.array_equal(panel.images["pred2"].image, edited.images[session.pre])
    assert "original" in panel.titles["diff2"].text
    expected_diff = session.renderer.differences(edited.outputs[session.pre], original.outputs[session.pre])
    assert np.array_equal(panel.images["diff2"].image, expected_diff)
    assert len(window.timeline.curves) == 2
    # the internals of both: the internals panel offers the edited rollout too
    choices = [
        window.internals.model_choice.itemData(i) for i in range(window.internals.model_choice.count())
    ]
    assert EDITED in choices
    window.internals.model_choice.setCurrentIndex(window.internals.model_choice.findData(EDITED))
    step = session.step_of_frame()
    for layer, name in window.internals.cells:
        assert_cell_shows(window.internals, layer, name, session.heatmap(layer, name, step, slot=EDITED))


def test_edits_are_kept_with_the_window_state(qtbot, tiny_files, tmp_path):
    from PySide6.QtCore import QThreadPool

    from mimviewer.ui.main_window import MainWindow

    sequence, checkpoint = tiny_files
    first = MainWindow()
    qtbot.addWidget(first)
    first.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    first.session.push_edit(Erase(1, ((5.0, 5.0),), 2.0))
    first.close()
    QThreadPool.globalInstance().waitForDone(10_000)
    second = MainWindow()
    qtbot.addWidget(second)
    second.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    assert second.session.whatif.edits.edits == (Erase(1, ((5.0, 5.0),), 2.0),)
    second.close()


def test_mouse_brush_stroke_and_blob_click_on_the_edited_frame(qtbot, window, tiny_files):
    from PySide6.QtCore import QPoint

    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    window.explain_dock.show()
    window.explain_dock.raise_()
    window.explain.setCurrentWidget(window.explain.whatif)
    session, tab = window.session, window.explain.whatif
    tab.frame.setValue(1)
    qtbot.waitUntil(lambda: tab.graphics.isVisible())

    def widget_point(x: float, y: float) -> QPoint:
        scene = tab.view.mapViewToScene(QPointF(x, y))
        return tab.graphics.mapFromScene(scene)

    viewport = tab.graphics.viewport()
    tab.tool.setCurrentIndex(tab.tool.findData("erase"))
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=widget_point(3.5, 3.5))
    qtbot.mouseMove(viewport, widget_point(8.5, 6.5))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=widget_point(12.5, 9.5))
    (edit,) = session.whatif.edits.edits
    assert isinstance(edit, Erase) and edit.frame == 1 and len(edit.points) == 3
    assert edit.points[0] == pytest.approx((3.5, 3.5), abs=0.6) and edit.points[-1] == pytest.approx(
        (12.5, 9.5), abs=0.6
    )
    # a click on a blob moves it
    tab.frame.setValue(2)
    frame = session.whatif.edited_context(session)[2, 0]
    ys, xs = np.nonzero(frame >= 0.5 * frame.max())
    assert frame.max() > 0.2  # a digit to click on
    tab.tool.setCurrentIndex(tab.tool.findData("move_blob"))
    tab.dx.setValue(1)
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=widget_point(xs[0] + 0.5, ys[0] + 0.5))
    qtbot.waitUntil(lambda: len(session.whatif.edits) == 2)
    move = session.whatif.edits.edits[1]
    assert isinstance(move, MoveBlob) and (move.frame, move.x, move.y, move.dx) == (2, xs[0], ys[0], 1)


def test_brush_painted_region_is_what_gets_explained(qtbot, window, tiny_files):
    open_tiny(qtbot, window, tiny_files)
    session, panel, frames = window.session, window.explain.attribution, window.frames_panel
    session.frame = session.pre
    panel.method.setCurrentText("ixg")
    panel.region_kind.setCurrentIndex(panel.region_kind.findData("brush"))
    panel.brush_radius.setValue(1.5)
    assert frames.brush_mode
    view = frames.views["pred0"]

    def widget_point(x: float, y: float):
        return frames.graphics.mapFromScene(view.mapViewToScene(QPointF(x, y)))

    viewport = frames.graphics.viewport()
    qtbot.mousePress(viewport, Qt.MouseButton.LeftButton, pos=widget_point(4.5, 4.5))
    qtbot.mouseMove(viewport, widget_point(8.5, 4.5))
    qtbot.mouseRelease(viewport, Qt.MouseButton.LeftButton, pos=widget_point(11.5, 4.5))
    brush = session.attribution.brush
    assert brush is not None and brush[4, 5:11].all() and not brush[12:].any()
    assert frames.brush_overlay.image[4, 6, 3] > 0  # shown in translucent yellow
    assert window.explain_frame()
    qtbot.waitUntil(
        lambda: session.attribution.view is not None and not panel.runner.is_running, timeout=60_000
    )
    np.testing.assert_array_equal(session.attribution.view.result.mask, brush)
    qtbot.mouseClick(panel.clear_brush, Qt.MouseButton.LeftButton)
    assert session.attribution.brush is None and frames.brush_overlay.image is None
    panel.region_kind.setCurrentIndex(panel.region_kind.findData("frame"))
    assert not frames.brush_mode and session.attribution.request(session).mask.all()
