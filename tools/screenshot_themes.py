"""Screenshots of the window in both themes and of the help dialog (docs/theme-*.png, docs/help.png).

Run under a display (``xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python tools/screenshot_themes.py``):
opens the bundled demo (PredRNN on bouncing digits) compared with the bundled ConvLSTM, the
difference view in viridis with percentile levels, the Display dock's histogram, once light and
once dark, then the help dialog. Uses a fresh settings folder (no remembered layout).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from window_wait import wait  # tools/, beside this script


def main(out: str = "docs") -> int:
    from mimviewer.checkpoints import load_checkpoint
    from mimviewer.commands.demo import load_demo, show_demo
    from mimviewer.paths import bundled_models_dir
    from mimviewer.ui.app import SCREENSHOT_SIZE, application, save_screenshot
    from mimviewer.ui.main_window import MainWindow

    os.environ["MIMVIEWER_CONFIG_DIR"] = tempfile.mkdtemp(prefix="mimviewer-shots-")
    app = application()
    window = MainWindow()
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    session = window.session
    show_demo(session, load_demo())
    convlstm = load_checkpoint(bundled_models_dir() / "convlstm_digits.safetensors").model
    session.set_model(convlstm, name="convlstm_digits.safetensors", slot=1)
    window.runner.start()
    wait(app, lambda: session.finished and not window.runner.is_running)
    session.frame = session.pre + 3
    window.display_dock.raise_()
    session.set_display("diff0", colour_map="viridis", levels="percentile", percentile=1.0)
    window.display.select("diff0")
    written = []
    for theme in ("light", "dark"):
        session.theme = theme
        wait(app, lambda: True)
        written.append(save_screenshot(window, Path(out) / f"theme-{theme}.png"))
    session.theme = "light"
    dialog = window.show_help()
    dialog.resize(760, 900)
    wait(app, lambda: True)
    path = Path(out) / "help.png"
    if not dialog.grab().save(str(path)):
        raise OSError(f"could not write {path}")
    written.append(path)
    dialog.close()
    window.close()
    print("wrote " + ", ".join(map(str, written)))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
