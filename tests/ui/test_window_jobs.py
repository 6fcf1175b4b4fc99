"""The window at work: inference cancelled or replaced, broken files, dropped files, settings."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent

from mimviewer.viewmodel import OutOfDeviceMemory
from tests.ui.conftest import wait_finished


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


def test_a_new_request_cancels_the_running_one(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    first_run = window.session.run_id
    window.runner.start()  # e.g. the user pressed F5 again
    assert window.session.run_id > first_run
    wait_finished(qtbot, window)
    slot = window.session.slots[0]
    assert slot.done_steps == window.session.steps and slot.finished


def test_moving_now_along_a_long_sequence_reruns(qtbot, window, tiny_files):
    sequence, checkpoint = tiny_files  # 12 frames, the model uses 6 + 6
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    session = window.session
    assert window.timeline.now_spin.isVisibleTo(window) and session.start == 0
    window.timeline.now_spin.setValue(7)  # "now" = frame 7: the context is frames 2..7
    assert session.start == 2
    wait_finished(qtbot, window)
    session.frame = 3
    expected = session.renderer.frames(session.all_frames[5])
    assert np.array_equal(window.frames_panel.images["gt"].image, expected)
    assert "sequence frame 5" in window.frames_panel.header.text()


def test_a_sequence_of_another_size_is_resized_to_the_model_and_the_user_told(qtbot, window, tmp_path):
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.data import synthetic
    from mimviewer.nets import create_model

    # LayerNorm over (C, H', W') fixes the frame size in the weights: 16x16 frames
    model = create_model(
        "convlstm",
        num_hidden=(4,),
        filter_size=3,
        patch_size=2,
        height=16,
        width=16,
        layer_norm=True,
        pre=6,
        aft=6,
    )
    checkpoint = tmp_path / "ln.safetensors"
    save_checkpoint(checkpoint, model)
    big = tmp_path / "big.npy"
    np.save(big, synthetic.bouncing_digits(1, length=12, size=24, num_digits=1, seed=4)[0])
    assert window.open_paths(sequence=big, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    assert window.session.frames.shape[2:] == (16, 16)
    assert "resized 24x24 -> 16x16" in window.frames_panel.readout.text()


def test_compare_two_checkpoints_then_close_the_second(qtbot, window, tiny_files, tmp_path):
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.nets import create_model

    sequence, checkpoint = tiny_files
    other = tmp_path / "other.safetensors"
    small = {"filter_size": 3, "patch_size": 2, "height": 16, "width": 16, "pre": 6, "aft": 6}
    save_checkpoint(other, create_model("predrnn", num_hidden=(4, 4), **small))
    window.open_paths(sequence=sequence, checkpoint=checkpoint, compare=other)
    wait_finished(qtbot, window)
    session, panel = window.session, window.frames_panel
    assert set(panel.images) == {"gt", "pred0", "diff0", "pred1", "diff1"}
    session.frame = 8
    assert np.array_equal(panel.images["pred1"].image, session.slots[1].images[7])
    assert not np.array_equal(session.slots[0].outputs, session.slots[1].outputs)
    assert len(window.timeline.curves) == 2
    assert window.internals.model_choice.count() == 2
    window.close_compared()
    wait_finished(qtbot, window)
    assert set(panel.images) == {"gt", "pred0", "diff0"} and len(window.timeline.curves) == 1


def test_a_layout_saved_with_other_docks_is_not_restored(qtbot, window):
    """An upgrade adds docks: the old saved layout would stack them and outgrow the screen."""
    from mimviewer.ui.main_window import MainWindow
    from mimviewer.ui.settings import Settings

    window.resize(800, 530)
    window.timeline_dock.hide()
    window.save_layout()
    Settings().set_value("window/layout_version", "1")  # as written by a window with other docks
    second = MainWindow()
    qtbot.addWidget(second)
    second.show()
    assert second.timeline_dock.isVisible()  # the default layout, not the saved one
    assert second.height() != 530
    second.close()
