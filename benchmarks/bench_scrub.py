"""Scrubbing speed: the real window switching frames, against a bare pyqtgraph loop.

The window (view model + frame views + internals + timeline) is driven offscreen on the
bundled demo: inference runs to the end first, then the current frame is moved ``--frames``
times round the timeline, each switch followed by ``processEvents`` so that it is drawn.
The baseline, timed in the same run and interleaved with it, is the least any viewer must do:
one ``ImageItem.setImage`` per frame view of images rendered beforehand, then
``processEvents``. The ratio (window / baseline) is the cost of everything the window adds.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_scrub.py --frames 200
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frame switches per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import pyqtgraph as pg
    import torch
    from PySide6.QtWidgets import QApplication

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    os.environ.setdefault("MIMVIEWER_CONFIG_DIR", str(Path("/tmp") / "mimviewer-bench-scrub"))

    from mimviewer.commands.demo import load_demo
    from mimviewer.ui.main_window import MainWindow

    window = MainWindow()
    window.resize(1600, 1000)
    window.show()
    demo = load_demo()
    session = window.session
    session.set_sequence(demo.frames, units=demo.units, source=demo.source)
    session.set_model(demo.model, name=demo.model_name, source=demo.model_source)
    for update in session.inference(session.start_run(), device="cpu"):
        session.accept(update)
    app.processEvents()
    length = session.timeline_length
    images = [session.images_at(frame) for frame in range(length)]

    bare = pg.GraphicsLayoutWidget()
    bare.resize(1600, 1000)
    items = []
    for col, name in enumerate(images[-1]):
        view = bare.addViewBox(row=0, col=col, lockAspect=True)
        item = pg.ImageItem()
        view.addItem(item)
        items.append((name, item))
    bare.show()

    def scrub_window() -> float:
        start = time.perf_counter()
        for i in range(args.frames):
            session.frame = i % length
            app.processEvents()
        return time.perf_counter() - start

    def scrub_bare() -> float:
        start = time.perf_counter()
        for i in range(args.frames):
            shown = images[i % length]
            for name, item in items:
                if shown[name] is not None:
                    item.setImage(shown[name], autoLevels=False, levels=(0, 255))
            app.processEvents()
        return time.perf_counter() - start

    scrub_window(), scrub_bare()  # warm-up
    ours, base = [], []
    for _ in range(args.repeats):
        ours.append(scrub_window())
        base.append(scrub_bare())
    per_ours = statistics.median(ours) / args.frames * 1e3
    per_base = statistics.median(base) / args.frames * 1e3
    print(f"demo: {demo.model_name}, {length} frames, {args.frames} switches x {args.repeats}")
    print(f"window   {per_ours:8.3f} ms / frame switch (median)")
    print(f"baseline {per_base:8.3f} ms / frame switch (bare pyqtgraph setImage + processEvents)")
    print(f"ratio    {per_ours / per_base:8.2f} x")
    window.close()
    bare.close()


if __name__ == "__main__":
    main()
