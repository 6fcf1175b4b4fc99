"""The window as a user drives it: open files, scrub, look inside, cancel, break things, export."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from mimviewer.commands.demo import load_demo, open_demo
from mimviewer.session import OutOfDeviceMemory
from mimviewer.ui import CONTEXT_COLOUR, PREDICTED_COLOUR
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
        assert shows(panel.images["gt"], session.gt_images[frame])
        if frame >= 1:
            assert shows(panel.images["pred0"], slot.images[frame - 1])
            assert shows(panel.images["diff0"], slot.diff_images[frame - 1])
        step = session.step_of_frame(frame)
        for (layer, name), (_, image) in internals.cells.items():
            assert np.array_equal(image.image, session.heatmap(layer, name, step), equal_nan=True)
        assert internals.curve_cursor.value() == step
        assert f"frame {frame} /" in panel.header.text
        assert ("context" if frame < session.pre else "predicted") in panel.header.text
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
    np.testing.assert_allclose(internals.cells[(1, "f")][1].image, expected, atol=1e-6)

    internals.lo.setValue(0.45)
    internals.hi.setValue(0.55)
    expected = ((raw < 0.45) | (raw > 0.55)).mean(0)
    np.testing.assert_allclose(internals.cells[(1, "f")][1].image, expected, atol=1e-6)
    curve = next(c for c in internals.curves.listDataItems() if c.name() == "layer 1")
    all_raw = session.slots[0].trace.raw["1/f"][:, 0]
    np.testing.assert_allclose(
        curve.yData, ((all_raw < 0.45) | (all_raw > 0.55)).reshape(len(all_raw), -1).mean(1), atol=1e-6
    )

    internals.reduction.setCurrentIndex(internals.reduction.findData("channel"))
    internals.channel.setValue(2)
    np.testing.assert_allclose(internals.cells[(0, "C")][1].image, session.slots[0].trace.raw["0/C"][7, 0, 2])

    # hover text and the enlarged heatmap
    text = internals.describe_cell(0, "C", 1, 2)
    assert "layer 0" in text and "cell memory" in text and "step 7" in text and "x=2, y=1" in text
    dialog = internals.enlarge(0, "C")
    assert np.array_equal(dialog.image.image, internals.cells[(0, "C")][1].image)
    session.frame = 3
    assert np.array_equal(dialog.image.image, session.heatmap(0, "C", 2))
    dialog.close()


def test_cancel_a_running_inference(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    session = window.session

    def cancel_at_step_two(slot, t):
        if t == 2:
            window.runner.cancel()

    session.events.step.connect(cancel_at_step_two)
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    qtbot.waitUntil(lambda: not window.runner.is_running, timeout=60_000)
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone(10_000)
    qtbot.wait(50)  # let queued updates of the cancelled run arrive: they must be ignored
    assert session.slots[0].done_steps == 3 < session.steps
    assert not session.finished
    assert "cancelled" in window.status_text.text()
    # a new request runs to the end
    session.events.step.disconnect(cancel_at_step_two)
    window.runner.start()
    wait_finished(qtbot, window)


def test_broken_checkpoint_shows_an_error_and_the_window_stays_usable(qtbot, window, tiny_files, tmp_path):
    sequence, checkpoint = tiny_files
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00\x01 not a checkpoint at all")
    assert window.open_paths(sequence=sequence)
    assert not window.open_paths(checkpoint=broken)
    assert window.errors and "broken.safetensors" in window.errors[-1]
    box = window.message_box
    assert box is not None and box.isVisible() and not box.isModal()
    qtbot.keyClick(window, Qt.Key.Key_Right)
    assert window.session.frame == 1
    assert window.open_paths(checkpoint=checkpoint)
    wait_finished(qtbot, window)


def test_out_of_memory_offers_the_cpu(qtbot, window, tiny_files, monkeypatch):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)

    def out_of_memory(run, *, device="auto", amp=False):
        raise OutOfDeviceMemory("tiny.safetensors: the cuda:0 device ran out of memory")
        yield

    monkeypatch.setattr(window.session, "inference", out_of_memory)
    window.runner.start()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=10_000)
    buttons = [b.text() for b in window.message_box.buttons()]
    assert "Run on CPU" in buttons


def test_drop_files_recent_files_and_layout_are_remembered(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(checkpoint)), QUrl.fromLocalFile(str(sequence))])
    event = QDropEvent(
        QPoint(10, 10),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    window.dropEvent(event)
    wait_finished(qtbot, window)
    assert window.session.source == str(sequence) and window.session.slots[0].name == "tiny.safetensors"
    from mimviewer.ui.settings import Settings

    window.resize(800, 530)  # within the offscreen screen (800x600)
    window.timeline_dock.hide()
    window.save_layout()
    again = Settings()
    assert again.recent_files("sequence") == [str(sequence.resolve())]
    assert again.recent_files("checkpoint") == [str(checkpoint.resolve())]
    from mimviewer.ui.main_window import MainWindow

    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    assert second.height() == 530
    assert not second.timeline_dock.isVisible() and second.internals_dock.isVisible()
    second.close()


@pytest.mark.parametrize("kind", ["gif", "metrics", "heatmaps", "heatmaps_gif", "gates"])
def test_export_from_the_window(qtbot, window, tiny_files, tmp_path, kind):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    target = (
        tmp_path
        / {
            "gif": "out.gif",
            "metrics": "metrics.csv",
            "heatmaps": "grid.png",
            "heatmaps_gif": "grid.gif",
            "gates": "gates.csv",
        }[kind]
    )
    with qtbot.waitSignal(window.exported, timeout=60_000) as blocker:
        window.export(kind, target)
    assert blocker.args[0] == target
    session = window.session
    if kind == "gif":
        frames = iio.imread(target, index=None)
        assert frames.shape[0] == session.pre + session.aft
        assert frames.std() > 10  # drawn, not blank
    elif kind == "heatmaps_gif":
        frames = iio.imread(target, index=None)
        assert frames.shape[0] == session.steps and frames.std() > 10
    elif kind == "heatmaps":
        grid = iio.imread(target)
        assert grid.ndim == 3 and grid.std() > 10
    elif kind == "gates":
        lines = target.read_text().splitlines()
        trace = session.trace()
        assert len(lines) == 1 + sum(trace.steps for _ in trace.stats)  # one row per quantity and step
    else:
        lines = target.read_text().splitlines()
        assert lines[0].startswith("frame,") and "mse" in lines[0]
        mse_column = lines[0].split(",").index("mse")
        row = lines[7].split(",")
        assert float(row[mse_column]) == pytest.approx(session.slots[0].metrics["mse"][6], rel=1e-5)


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


def test_a_new_request_cancels_the_running_one(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    first_run = window.session.run_id
    window.runner.start()  # e.g. the user pressed F5 again
    assert window.session.run_id > first_run
    wait_finished(qtbot, window)
    slot = window.session.slots[0]
    assert slot.done_steps == window.session.steps and slot.finished
