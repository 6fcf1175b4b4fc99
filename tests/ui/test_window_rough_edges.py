"""The window's rough edges, each as a user meets it: keys in combo boxes, the window start, the
frame views' layout, one heatmap dialog, export Cancel, recent files, closing mid-step,
message boxes, and the out-of-memory path from a real CUDA error to the "Run on CPU" button."""

from __future__ import annotations

import threading
import time
import warnings

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtWidgets import QPushButton

from tests.ui.conftest import wait_finished


def _long_sequence(tmp_path, frames: int = 40):
    from mimviewer.data import synthetic

    path = tmp_path / "long.npy"
    np.save(path, synthetic.bouncing_digits(1, length=frames, size=16, num_digits=1, seed=5)[0])
    return path


def test_the_forecast_spin_boxes_live_in_the_timeline_and_keep_the_context_whole(
    qtbot, window, tiny_files, tmp_path
):
    _, checkpoint = tiny_files
    window.open_paths(sequence=_long_sequence(tmp_path), checkpoint=checkpoint)
    wait_finished(qtbot, window)
    timeline = window.timeline
    for spin in (timeline.context_spin, timeline.horizon_spin, timeline.now_spin):
        assert not spin.isWindow() and spin.isVisible() and timeline.isAncestorOf(spin)  # in the row
    timeline.now_spin.setValue(timeline.now_spin.maximum() + 5)
    wait_finished(qtbot, window)
    assert timeline.now_spin.value() == 39 and window.session.pre == 6  # the whole context, from the data
    assert "not observed" in window.session.frame_note(window.session.timeline_length - 1)


def _bars_inside(panel) -> bool:
    width = panel.graphics.width()
    return all(bar.mapRectToScene(bar.boundingRect()).right() <= width + 1 for bar in panel.bars)


def test_titles_never_push_the_colour_bars_out(qtbot, window, tiny_files, tmp_path):
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.nets import create_model

    sequence, checkpoint = tiny_files
    long_name = tmp_path / ("a-checkpoint-with-a-very-long-descriptive-file-name" * 2 + ".safetensors")
    model = create_model("convlstm", num_hidden=(4,), filter_size=3, patch_size=2, height=16, width=16)
    save_checkpoint(long_name, model)
    window.resize(1400, 900)
    window.open_paths(sequence=sequence, checkpoint=checkpoint, compare=long_name, run=False)
    panel = window.frames_panel
    qtbot.wait(50)
    for width in (1400, 700):  # roomy, and so narrow that even the markers are elided
        window.resize(width, 900)
        qtbot.wait(50)
        for frame in (0, 3, 8):  # frame 0, context and predicted frames, nothing computed yet
            window.session.frame = frame
            qtbot.wait(20)
            assert _bars_inside(panel), (width, frame)
            if frame:  # titles stay; what a view lacks is written inside it
                assert panel.markers["pred0"].textItem.toPlainText() == "not computed yet"
    window.resize(1400, 900)
    window.runner.start()
    qtbot.waitUntil(lambda: window.session.slots[0].done_steps >= 2, timeout=60_000)
    window.runner.cancel()
    QThreadPool.globalInstance().waitForDone(30_000)
    qtbot.wait(50)
    window.session.frame = 9
    qtbot.wait(20)
    assert _bars_inside(panel)
    widths = {round(view.sceneBoundingRect().width()) for view in panel.views.values()}
    assert max(widths) - min(widths) <= 2, widths  # the three columns keep one width


@pytest.mark.parametrize("combo", ["device", "metric"])
def test_keys_in_a_focused_combo_box_drive_the_timeline_not_the_box(qtbot, window, tiny_files, combo):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    box = window.device_choice if combo == "device" else window.timeline.metric
    assert box.count() >= 2
    before, runs = box.currentText(), window.session.run_id
    box.setFocus()
    qtbot.waitUntil(box.hasFocus, timeout=5_000)
    qtbot.keyClick(box, Qt.Key.Key_End)
    assert window.session.frame == window.session.timeline_length - 1
    qtbot.keyClick(box, Qt.Key.Key_Home)
    assert window.session.frame == 0
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Down, Qt.Key.Key_Up, Qt.Key.Key_PageDown):
        qtbot.keyClick(box, key)
    assert window.session.frame == 1
    assert box.currentText() == before and window.session.run_id == runs  # nothing switched or rerun


def test_space_on_an_empty_window_does_nothing(qtbot, window):
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.timeline.playing and not window.timeline.play_button.isChecked()
    assert not window.timeline.play_button.isEnabled()


def test_heatmap_clicks_reuse_one_dialog(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    internals = window.internals
    first = internals.enlarge(0, "C")
    second = internals.enlarge(1, "f")
    assert first is second and internals.dialogs == [first]
    assert (first.layer, first.name) == (1, "f") and "layer 1" in first.windowTitle()
    first.close()
    qtbot.waitUntil(lambda: not internals.dialogs, timeout=5_000)
    assert internals.enlarge(0, "i") is not first  # closed: the next click opens a fresh one


def test_export_cancel_stops_the_job_and_keeps_the_previous_file(
    qtbot, window, tiny_files, tmp_path, monkeypatch
):
    import mimviewer.export

    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    target = tmp_path / "grid.gif"
    target.write_bytes(b"the previous export")
    started = threading.Event()
    real = mimviewer.export.render_heatmap_grid

    def slow_grid(*args, **kwargs):
        started.set()
        time.sleep(0.2)
        return real(*args, **kwargs)

    monkeypatch.setattr(mimviewer.export, "render_heatmap_grid", slow_grid)
    with qtbot.waitSignal(window.exported, timeout=60_000) as outcome:
        window.export("heatmaps_gif", target)
        dialog = window._export_dialog
        assert dialog is not None and any(b.text() == "Cancel" for b in dialog.findChildren(QPushButton))
        qtbot.waitUntil(started.is_set, timeout=30_000)
        next(b for b in dialog.findChildren(QPushButton) if b.text() == "Cancel").click()
    from mimviewer.ui.worker import JobCancelled

    assert isinstance(outcome.args[0], JobCancelled)
    assert target.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".grid")) == []
    assert window.status_text.text() == "export cancelled" and not window.errors


def test_recent_files_remember_the_compared_checkpoint(qtbot, window, tiny_files, tmp_path):
    import shutil

    sequence, checkpoint = tiny_files
    other = tmp_path / "other.safetensors"
    shutil.copy(checkpoint, other)
    window.open_paths(sequence=sequence, checkpoint=checkpoint, compare=other, run=False)
    assert window.settings.recent_files("compare") == [str(other.resolve())]
    assert window.settings.recent_files("checkpoint") == [str(checkpoint.resolve())]
    window.session.remove_model(1)
    window._fill_recent()
    action = next(a for a in window.recent_menu.actions() if a.text().startswith("compared checkpoint:"))
    action.trigger()
    assert window.session.slots[1] is not None and window.session.slots[1].source == str(other.resolve())
    window.runner.cancel()


def test_closing_during_a_long_step_returns_at_once_and_warns_nothing(qtbot, tiny_files):
    from mimviewer.ui.main_window import MainWindow

    sequence, checkpoint = tiny_files
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    win.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    model = win.session.slots[0].model
    in_step = threading.Event()
    real_step = model.step

    def long_step(*args, **kwargs):
        in_step.set()
        time.sleep(1.5)
        return real_step(*args, **kwargs)

    model.step = long_step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        win.runner.start()
        qtbot.waitUntil(in_step.is_set, timeout=30_000)
        began = time.perf_counter()
        win.close()
        closing = time.perf_counter() - began
        assert not win.isVisible()
        QThreadPool.globalInstance().waitForDone(30_000)
        qtbot.wait(100)
    assert closing < 1.0  # the step takes 1.5 s: the window did not wait for it
    assert not [w for w in caught if "aborted thread" in str(w.message)]
    assert QThreadPool.globalInstance().activeThreadCount() == 0


def test_message_boxes_are_one_line_naming_the_file(qtbot, window, tiny_files, tmp_path, monkeypatch):
    sequence, _ = tiny_files
    broken = tmp_path / "broken.pth"
    broken.write_bytes(b"PK\x03\x04 a zip that is not")
    assert not window.open_paths(checkpoint=broken)
    assert "\n" not in window.errors[-1] and str(broken) in window.errors[-1]

    def failing(path):
        raise ZeroDivisionError("division by zero\nsecond line of a raw traceback text")

    monkeypatch.setattr(window.session, "open_sequence", failing)
    assert not window.open_paths(sequence=sequence)
    assert window.errors[-1] == f"{sequence}: unexpected ZeroDivisionError (division by zero)"
    assert "Traceback" in window.message_box.detailedText()  # for a bug report, under Show Details


def test_a_real_cuda_out_of_memory_in_forward_offers_the_cpu_and_runs_there(qtbot, window, tiny_files):
    """torch.cuda.OutOfMemoryError raised inside the model's step (on CPU), through the real
    inference path: Session.inference -> OutOfDeviceMemory -> the window's box -> Run on CPU."""
    from PySide6.QtWidgets import QMessageBox

    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    model = window.session.slots[0].model
    real_step = model.step

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    model.step = out_of_memory
    window.runner.start()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=60_000)
    box = window.message_box
    assert box.windowTitle() == "Out of device memory"
    assert "ran out of memory" in window.errors[-1] and "tiny.safetensors" in window.errors[-1]
    assert "\n" not in window.errors[-1] and "Run on the CPU" in box.informativeText()
    cpu = next(b for b in box.buttons() if b.text() == "Run on CPU")
    assert box.buttonRole(cpu) == QMessageBox.ButtonRole.AcceptRole
    model.step = real_step
    cpu.click()
    assert window.device_choice.currentText() == "cpu" and window.runner.device == "cpu"
    wait_finished(qtbot, window)
    assert window.session.finished


def test_a_rollout_too_large_for_the_machine_is_a_message_not_a_crash(qtbot, window, tiny_files, monkeypatch):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint, run=False)
    monkeypatch.setenv("MIMVIEWER_MEMORY_LIMIT", str(4 << 10))  # a machine that holds 4 KiB
    window.runner.start()
    qtbot.waitUntil(lambda: bool(window.errors), timeout=60_000)
    assert "this machine can hold" in window.errors[-1] and "\n" not in window.errors[-1]
    assert window.message_box.windowTitle() == "Inference failed" and not window.runner.is_running
