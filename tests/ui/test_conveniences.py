"""The conveniences of issue 15, as a user meets them: frame box, help, tooltips, colour maps and
levels, view state files, context menus, themes, metric curves that fill in step by step."""

from __future__ import annotations

import json

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractSlider,
    QAbstractSpinBox,
    QApplication,
    QComboBox,
    QLineEdit,
)

from tests.ui.cell_colours import assert_cell_shows
from tests.ui.conftest import wait_finished


def shown_frame(window, frame: int) -> bool:
    """Every view shows ``frame``: the views' images, the heatmaps, the slider, the cursor."""
    session, panel, internals = window.session, window.frames_panel, window.internals
    images = session.images_at(frame)
    step = session.step_of_frame(frame)
    assert session.frame == frame
    assert window.timeline.slider.value() == frame and window.timeline.cursor.value() == frame
    for name, item in panel.images.items():
        expected = images[name]
        assert (expected is None and item.image is None) or np.array_equal(item.image, expected), name
    for layer, name in internals.cells:
        assert_cell_shows(internals, layer, name, session.heatmap(layer, name, step, slot=internals.slot))
    return True


def test_typing_a_frame_number_moves_every_view(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    box = window.timeline.frame_box
    for frame in (7, 2, 11):
        box.setFocus()
        box.setText(str(frame))
        qtbot.keyClick(box, Qt.Key.Key_Return)
        assert shown_frame(window, frame)
        assert box.text() == str(frame)
    box.setText("99")  # outside the timeline: refused, the frame stays
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert window.session.frame == 11 and "outside the timeline" in box.toolTip()
    box.setText("90 s")  # this sequence has no times
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert window.session.frame == 11 and "no times" in box.toolTip()


def test_a_time_is_typed_where_the_data_has_times(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    window.session.frame_interval_s = 30.0  # as a reader sets it for timed scans
    box = window.timeline.frame_box
    box.setFocus()
    box.setText("2:30")  # 150 s at 30 s per frame
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert shown_frame(window, 5)
    assert box.text() == "5 (2:30)"


def test_the_help_lists_every_shortcut_of_the_actions(qtbot, window):
    dialog = window.show_help()
    qtbot.addWidget(dialog)
    listed = dialog.rows(dialog.keys)
    registered = [a for a in window.findChildren(QAction) if a.shortcuts()]
    assert len(registered) >= 15
    native = QKeySequence.SequenceFormat.NativeText
    for action in registered:
        keys = [k.toString(native) for k in action.shortcuts()]
        text = action.text().replace("&", "")
        assert any(row[1] == text and all(k in row[2] for k in keys) for row in listed), (text, keys)
    for required in ("Space", "Right", "Left", "Home", "End", "F1", "?"):
        assert any(required in row[2].split(", ") for row in listed), required
    mouse = dialog.rows(dialog.mouse)
    assert mouse == [tuple(row) for row in window.mouse_actions()] and len(mouse) >= 6
    # and the keys do what the help says: F1 opens it, Home/End move the timeline
    dialog.close()
    window.help_dialog = None
    qtbot.keyClick(window, Qt.Key.Key_F1)
    assert window.help_dialog is not None and window.help_dialog.isVisible()
    window.help_dialog.close()


def test_every_control_has_a_tooltip(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    interactive = (QAbstractButton, QComboBox, QAbstractSpinBox, QAbstractSlider, QLineEdit)
    missing: list[str] = []
    for kind in interactive:
        for widget in window.findChildren(kind):
            if isinstance(widget, QLineEdit) and isinstance(widget.parent(), QAbstractSpinBox | QComboBox):
                continue  # the text field inside a spin box or combo box: the box has the tooltip
            if widget.parent() is not None and type(widget.parent()).__name__ == "QScrollBar":
                continue
            if type(widget).__name__ == "QScrollBar" or type(widget.parent()).__name__ == "QTabBar":
                continue  # scroll bars, and Qt's arrows of a tab bar too narrow for its tabs
            if not widget.toolTip().strip():
                label = widget.text() if hasattr(widget, "text") else widget.objectName()
                missing.append(f"{type(widget).__name__} {label!r} in {type(widget.parent()).__name__}")
    assert not missing, "\n".join(missing)


def test_colour_map_and_levels_apply_to_the_views_they_target(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session, panel = window.session, window.frames_panel
    session.frame = 8
    before = {name: item.image.copy() for name, item in panel.images.items()}
    display = window.display
    display.select("pred0")
    display.colour_map.setCurrentIndex(display.colour_map.findData("viridis"))
    assert session.display("pred0").colour_map == "viridis"
    assert not np.array_equal(panel.images["pred0"].image, before["pred0"])
    assert np.array_equal(panel.images["gt"].image, before["gt"])  # not targeted
    assert np.array_equal(panel.images["diff0"].image, before["diff0"])
    values = session.slots[0].outputs[7, 0]
    from mimviewer.render import VIRIDIS

    expected = VIRIDIS[np.rint(np.clip(values, 0, 1) * 255).astype(int)]
    assert np.array_equal(panel.images["pred0"].image, expected)
    # percentile levels stretch the map over the middle of the values
    display.levels.setCurrentIndex(display.levels.findData("percentile"))
    lo, hi = session.view_levels("pred0")
    everything = session.view_values("pred0")
    assert lo == pytest.approx(np.percentile(everything, 1)) and hi == pytest.approx(
        np.percentile(everything, 99)
    )
    stretched = VIRIDIS[np.rint(np.clip((values - lo) / (hi - lo), 0, 1) * 255).astype(int)]
    assert np.array_equal(panel.images["pred0"].image, stretched)
    # dragging the histogram's region fixes the levels
    display.levels_region.setRegion((0.2, 0.6))
    display.levels_region.sigRegionChangeFinished.emit(display.levels_region)
    assert session.display("pred0").levels == "fixed"
    assert session.view_levels("pred0") == pytest.approx((0.2, 0.6))
    # linked: the GT view takes the same map and levels, the difference view does not
    display.linked.setChecked(True)
    display.select("gt")
    display.colour_map.setCurrentIndex(display.colour_map.findData("grey"))
    assert session.display("pred0").colour_map == "grey" == session.display("gt").colour_map
    assert session.display("diff0").colour_map == "diverging"
    # the context menu of a view sets its colour map too
    menu = panel.context_menu("diff0", panel.views["diff0"].mapViewToScene(QPointF(3, 3)))
    viridis = next(a for a in menu.findChildren(QAction) if a.text() == "viridis")
    viridis.trigger()
    assert session.display("diff0").colour_map == "viridis"


def test_a_saved_state_reopens_to_the_same_view(qtbot, window, tiny_files, tmp_path):
    from mimviewer.ui.main_window import MainWindow

    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session = window.session
    window.internals.quantity_buttons["g"].click()
    window.internals.reduction.setCurrentIndex(window.internals.reduction.findData("saturated"))
    window.internals.lo.setValue(0.2)
    window.internals.hi.setValue(0.7)
    session.frame = 9
    view = window.frames_panel.views["gt"]
    view.setRange(pg.QtCore.QRectF(2, 3, 8, 8), padding=0)
    view.sigRangeChangedManually.emit([True, True])
    session.set_display("pred0", colour_map="viridis", levels="percentile", percentile=2.0)
    state_file = window.save_state(tmp_path / "here.mimviewer.json")
    assert json.loads(state_file.read_text())["frame"] == 9

    other = MainWindow()
    qtbot.addWidget(other)
    other.show()
    try:
        assert other.open_state(state_file)
        wait_finished(qtbot, other)
        again = other.session
        assert again.frame == 9 and again.quantities == session.quantities and "g" in again.quantities
        assert again.reduction == "saturated" and again.thresholds == pytest.approx((0.2, 0.7))
        assert again.display("pred0") == session.display("pred0")
        # the same region is shown: centred alike, no smaller, at most a few % larger (an aspect-locked
        # view of another size adds room on one side)
        rect = other.frames_panel.views["pred0"].viewRect()
        x, y, w, h = session.zoom
        assert rect.center().x() == pytest.approx(x + w / 2, abs=0.1)
        assert rect.center().y() == pytest.approx(y + h / 2, abs=0.1)
        assert w - 0.05 <= rect.width() <= 1.06 * w and h - 0.05 <= rect.height() <= 1.06 * h
        assert shown_frame(other, 9)
    finally:
        other.close()


def test_a_state_whose_file_moved_says_so_in_one_line(qtbot, window, tiny_files, tmp_path):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    state_file = window.save_state(tmp_path / "s.mimviewer.json")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    sequence.rename(moved / sequence.name)
    assert not window.open_state(state_file)
    message = window.errors[-1]
    assert str(state_file) in message and "sequence" in message and "moved or deleted" in message
    assert "\n" not in message


def test_context_menu_actions_do_what_they_say(qtbot, window, tiny_files, tmp_path):
    from mimviewer.ui import context_menus

    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session, panel = window.session, window.frames_panel
    session.frame = 8
    view = panel.views["pred0"]
    view.scaleBy((0.5, 0.5))
    view.sigRangeChangedManually.emit([True, True])
    menu = panel.context_menu("pred0", view.mapViewToScene(QPointF(5.5, 4.5)))
    actions = {a.text(): a for a in menu.actions()}
    assert set(actions) >= {
        "Reset zoom",
        "Copy image",
        "Export this view…",
        "Copy the value under the cursor",
    }
    actions["Copy the value under the cursor"].trigger()
    value = session.value_at("pred0", 8, 4, 5)
    assert QApplication.clipboard().text() == f"{value:.6g}"
    actions["Copy image"].trigger()
    copied = QApplication.clipboard().image()
    assert (copied.width(), copied.height()) == (16, 16)
    pixel = copied.pixelColor(5, 4)
    assert (pixel.red(), pixel.green(), pixel.blue()) == tuple(panel.images["pred0"].image[4, 5])
    actions["Reset zoom"].trigger()
    assert session.zoom is None and view.viewRect().width() > 16
    panel.export_view("pred0", str(tmp_path / "pred.png"))
    import imageio.v3 as iio

    assert np.array_equal(iio.imread(tmp_path / "pred.png")[..., :3], panel.images["pred0"].image)
    # a heatmap's menu
    layer, name = next(iter(window.internals.cells))
    menu = context_menus.heatmap_menu(window.internals, layer, name, 1, 2)
    actions = {a.text(): a for a in menu.actions()}
    assert set(actions) >= {
        "Reset zoom",
        "Copy image",
        "Export this heatmap…",
        "Copy the value under the cursor",
    }
    actions["Copy the value under the cursor"].trigger()
    expected = session.heatmap(layer, name, session.step_of_frame())[1, 2]
    assert QApplication.clipboard().text() == f"{float(expected):.6g}"
    context_menus.export_cell(window.internals, layer, name, str(tmp_path / "cell.png"))
    drawn = context_menus.drawn_cell(window.internals, layer, name)  # as the grid draws it
    values = session.heatmap(layer, name, session.step_of_frame())
    assert np.array_equal(drawn, window.internals.cells[(layer, name)][1].image)
    assert_cell_shows(window.internals, layer, name, values)
    assert np.array_equal(iio.imread(tmp_path / "cell.png")[..., :3], drawn[..., :3])
    assert len(np.unique(drawn[..., :3].reshape(-1, 3), axis=0)) > 1  # a picture, not one colour


def test_themes_switch_and_toggles_show_their_state(qtbot, window, tiny_files):
    from mimviewer.ui.theme import COLOURS

    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    dark = next(a for a in window.theme_actions.actions() if a.data() == "dark")
    dark.trigger()
    assert window.session.theme == "dark" and window.property("theme") == "dark"
    background = window.timeline.plot.backgroundBrush().color().name()
    assert background == COLOURS["dark"][3]
    checked = window.internals.quantity_buttons["f"]
    unchecked = window.internals.quantity_buttons["g"]
    assert checked.isChecked() and not unchecked.isChecked()
    checked_colour = checked.grab().toImage().pixelColor(3, checked.height() // 2).name()
    unchecked_colour = unchecked.grab().toImage().pixelColor(3, unchecked.height() // 2).name()
    assert checked_colour == COLOURS["dark"][5] and unchecked_colour != checked_colour
    light = next(a for a in window.theme_actions.actions() if a.data() == "light")
    light.trigger()
    assert window.timeline.plot.backgroundBrush().color().name() == COLOURS["light"][3]
    assert window.settings.value("view/theme") == "light"


def test_metric_curves_fill_in_as_steps_finish(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    assert window.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    session = window.session
    seen = []

    def on_step(slot: int, t: int) -> None:
        curve = window.timeline.curves.get(0)
        seen.append((t, None if curve is None else int(np.isfinite(curve.yData).sum())))

    session.events.step.connect(on_step)
    window.runner.start()
    wait_finished(qtbot, window)
    session.events.step.disconnect(on_step)
    assert seen and all(count == t + 1 for t, count in seen if count is not None)
    assert sum(count is not None for _, count in seen) >= len(seen) - 1
    final = window.timeline.curves[0].yData
    from mimviewer.metrics import frame_metrics

    name = window.timeline.metric.currentText()
    direct = frame_metrics(
        session.frames[1 : session.steps + 1], session.slots[0].outputs, units=session.units
    )
    np.testing.assert_allclose(final[1:], direct[name], rtol=1e-5)


def test_play_on_an_empty_window_stays_paused(qtbot, window):
    window.timeline.play_button.click()
    assert not window.timeline.playing and not window.timeline.play_button.isChecked()
