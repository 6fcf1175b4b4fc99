"""Screenshots of "why and what-if" in the window on the bundled models (docs/explain-*.png).

Run under a display (``xvfb-run -s "-screen 0 1600x1000x24" python tools/screenshot_explain.py``):
opens the bundled radar model on generated storms and explains a region of a predicted frame,
then the bundled digits model on bouncing digits with an erased digit, re-run as what-if.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from window_wait import wait  # tools/, beside this script


def main(out: str = "docs") -> int:
    from mimviewer.checkpoints import load_checkpoint
    from mimviewer.data import synthetic, units
    from mimviewer.paths import bundled_models_dir
    from mimviewer.ui.app import SCREENSHOT_SIZE, application, save_screenshot
    from mimviewer.ui.main_window import MainWindow
    from mimviewer.whatif import Erase

    torch.set_num_threads(1)
    app = application()
    models = bundled_models_dir()

    # radar: why does MIM predict echo in this box of frame 13?
    window = MainWindow()
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    dbz = synthetic.radar_storms(1, length=20, size=64, seed=0)[0]
    window.session.set_sequence(
        units.dbz_to_unit(dbz), units="dBZ", source="storms (seed 0)", to_physical=units.unit_to_dbz
    )
    window.session.set_model(
        load_checkpoint(models / "mim_storms.safetensors").model, name="mim_storms.safetensors"
    )
    window.runner.start()
    wait(app, lambda: window.session.finished and not window.runner.is_running)
    window.session.frame = 13
    kinds = window.explain.attribution.region_kind
    kinds.setCurrentIndex(kinds.findData("rectangle"))
    window.session.set_region((36, 26, 54, 44))
    assert window.explain_frame()
    panel = window.explain.attribution
    wait(app, lambda: window.session.attribution.view is not None and not panel.runner.is_running)
    save_screenshot(window, Path(out) / "explain-radar.png")
    print("attribution:", panel.status.text())
    window.close()

    # digits: what if a digit had been erased from the last context frames?
    window = MainWindow()
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    frames = synthetic.bouncing_digits(1, length=20, seed=4)[0]
    window.session.set_sequence(frames, source="digits (seed 4)")
    window.session.set_model(
        load_checkpoint(models / "predrnn_digits.safetensors").model, name="predrnn_digits.safetensors"
    )
    window.runner.start()
    wait(app, lambda: window.session.finished and not window.runner.is_running)
    pre = window.session.pre
    for k in (pre - 2, pre - 1):  # erase the left digit from the last two context frames
        ys, xs = np.nonzero(frames[k, 0] > 0.2)
        left = xs < np.median(xs)
        points = tuple((float(x), float(y)) for x, y in zip(xs[left][::3], ys[left][::3], strict=True))
        window.session.push_edit(Erase(k, points, 2.5))
    window.explain_dock.raise_()
    window.explain.setCurrentWidget(window.explain.whatif)
    window.session.set_edit_frame(pre - 1)
    window.run_whatif()
    wait(app, lambda: window.session.finished and not window.runner.is_running)
    window.session.frame = pre + 1
    save_screenshot(window, Path(out) / "whatif-digits.png")
    window.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
