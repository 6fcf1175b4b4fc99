"""`view --fast`: bf16 where the device has it, and the status bar says which mode ran."""

from __future__ import annotations

import torch

from mimviewer.accel import bf16_supported
from tests.ui.conftest import wait_finished


def test_the_status_bar_shows_fast_mode(qtbot, window, tiny_files, monkeypatch):
    sequence, checkpoint = tiny_files
    calls = []
    inference = window.session.inference

    def spy(run, *, device="auto", amp=False):
        calls.append(amp)
        yield from inference(run, device=device, amp=amp)

    monkeypatch.setattr(window.session, "inference", spy)
    window.runner.fast = True
    window.open_paths(sequence=sequence, checkpoint=checkpoint)
    wait_finished(qtbot, window)
    text = window.status_text.text()
    if bf16_supported(torch.device("cpu")):
        assert calls == [True]
        assert text == "inference finished · fast mode: bf16, about 3 significant digits vs float32"
    else:
        assert calls == [False]
        assert text.startswith("inference finished (fast mode off: cpu has no native bf16")
    window.runner.fast = False
    window.runner.start()
    wait_finished(qtbot, window)
    assert window.status_text.text() == "inference finished" and calls[-1] is False
