"""Fixtures of the window tests: an isolated settings folder and a window that cleans up."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _own_settings(tmp_path, monkeypatch) -> None:
    """Recent files and layout go to a temporary folder, never the user's."""
    monkeypatch.setenv("MIMVIEWER_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def window(qtbot):
    """The main window; at teardown it is closed and no worker thread may be left running."""
    from PySide6.QtCore import QThreadPool

    from mimviewer.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    yield win
    win.close()
    pool = QThreadPool.globalInstance()
    pool.waitForDone(10_000)
    assert pool.activeThreadCount() == 0, "a worker thread outlived the window"
    assert not win.runner.is_running


@pytest.fixture
def tiny_files(tmp_path):
    """A 12-frame 16x16 sequence (.npy) and a tiny ConvLSTM checkpoint (.safetensors) for it."""
    from mimviewer.checkpoints import save_checkpoint
    from mimviewer.data import synthetic
    from mimviewer.nets import create_model

    frames = synthetic.bouncing_digits(1, length=12, size=16, num_digits=1, seed=3)[0]
    sequence = tmp_path / "digits.npy"
    np.save(sequence, frames)
    model = create_model(
        "convlstm", num_hidden=(4, 4), filter_size=3, patch_size=2, height=16, width=16, pre=6, aft=6
    )
    checkpoint = tmp_path / "tiny.safetensors"
    save_checkpoint(checkpoint, model)
    return sequence, checkpoint


def wait_finished(qtbot, window, timeout: int = 120_000) -> None:
    qtbot.waitUntil(lambda: window.session.finished and not window.runner.is_running, timeout=timeout)
