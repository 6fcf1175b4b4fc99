"""Screenshots of the internals for docs/: the bundled MIM on synthetic radar storms, 1600x1000.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python tools/internals_screenshots.py docs/

Writes internals-grid.png (every MIM quantity on, grouped by module, one colour scale per
quantity; scrolled to MIM-N and MIM-S), internals-split.png (the two tails apart: blue =
share below, red = share above) and internals-location.png (every gate and memory of every
layer at one grid cell over time).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PySide6.QtCore import QEventLoop, Qt, QTimer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mimviewer.checkpoints import load_checkpoint  # noqa: E402
from mimviewer.data import synthetic, units  # noqa: E402
from mimviewer.ui.app import application, save_screenshot  # noqa: E402
from mimviewer.ui.main_window import MainWindow  # noqa: E402


def wait(window: MainWindow, ms: int = 300) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main(out: Path) -> int:
    application()
    window = MainWindow()
    window.resize(1600, 1000)
    window.location_dock.hide()
    window.show()
    dbz = synthetic.radar_storms(1, length=20, size=64, seed=7)[0]
    session = window.session
    session.set_sequence(
        units.dbz_to_unit(dbz).astype(np.float32),
        units="dBZ",
        source="synthetic storms",
        to_physical=units.unit_to_dbz,
    )
    loaded = load_checkpoint(REPO / "models" / "mim_storms.safetensors")
    session.set_model(loaded.model, name="mim_storms.safetensors", source="models/mim_storms.safetensors")
    window.runner.start()
    while not (session.finished and not window.runner.is_running):
        wait(window, 200)
    session.frame = 13
    session.quantities = session.available_quantities()
    window.resizeDocks([window.internals_dock], [760], Qt.Orientation.Horizontal)
    wait(window)
    grid = window.internals.grid  # scrolled to MIM-N and MIM-S (the whole grid scrolls; none is cut off)
    view = grid.cells[(1, "D")][0]
    grid.verticalScrollBar().setValue(int(view.sceneBoundingRect().top()) - 30)
    wait(window)
    print(save_screenshot(window, out / "internals-grid.png"))
    session.set_thresholds(0.3, 0.7)  # a trained model's gates rarely pass 0.1 / 0.9 on this data
    session.reduction = "split"
    session.quantities = ["f", "f'", "i", "S.f", "N.f", "C", "M", "S", "N", "H", "dH"]
    wait(window)
    grid.verticalScrollBar().setValue(0)
    wait(window)
    print(save_screenshot(window, out / "internals-split.png"))
    session.reduction = "mean"
    # the grid cell (y, x) with the most rain in the frame shown
    frame = session.frames[session.frame, 0].reshape(16, 4, 16, 4).max(axis=(1, 3))
    row, col = np.unravel_index(int(np.argmax(frame)), frame.shape)
    session.set_thresholds(0.1, 0.9)
    window.show_location(0, int(row), int(col))
    window.timeline_dock.hide()  # View menu: the location plot gets the bottom of the window
    window.resizeDocks([window.location_dock], [560], Qt.Orientation.Vertical)
    wait(window)
    print(save_screenshot(window, out / "internals-location.png"))
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs")))
