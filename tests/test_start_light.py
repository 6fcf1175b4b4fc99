"""The window is drawn before torch is imported (issue 12, start-up): the view model and the UI
import without torch; torch and the engine load in the background after the first paint."""

from __future__ import annotations

import os
import subprocess
import sys

SHOW_WINDOW = """
import sys
import mimviewer.cli
mimviewer.cli.build_parser()  # every command's parser is built at start-up
from mimviewer.ui.app import application
from mimviewer.ui.main_window import MainWindow
app = application()
window = MainWindow()
window.show()
app.processEvents()
print("torch imported before the window was shown:", "torch" in sys.modules)
window.close()
"""


def test_the_window_is_shown_before_torch_is_imported(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MIMVIEWER_CONFIG_DIR=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", SHOW_WINDOW], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    assert "torch imported before the window was shown: False" in done.stdout, done.stdout + done.stderr


def test_the_trace_re_exports_its_torch_free_names():
    from mimviewer import trace, trace_spec

    for name in ("QUANTITIES", "MAP_REDUCTIONS", "STAT_NAMES", "KINDS", "KIND_MEASURES", "ProbeSpec", "key"):
        assert getattr(trace, name) is getattr(trace_spec, name)
    assert trace.split_key(trace.key(3, "f'")) == (3, "f'")
