"""Scrubbing speed: the real window stepping frames, against a naive pyqtgraph loop, per scenario.

Three scenarios (issue 12, target 1), each with the bundled models run to the end first:

* ``demo``    — the demo (PredRNN on bouncing digits), default quantities;
* ``compare`` — the demo plus a second checkpoint (``--compare``: two rows of views);
* ``all``     — MIM on radar storms compared with PredRNN, every MIM quantity on.

One *step* of the window is a Right key press (Home at the end) sent to the window and the
full synchronous repaint that follows (``processEvents``). The *naive baseline*, timed in
the same run and interleaved with it, is what a plain pyqtgraph program does for the same
picture: one ``ImageItem.setImage`` of the float frame or heatmap (with a lookup table and
levels) per image the window shows — frame views and heatmap cells — in one
GraphicsLayoutWidget of the window's size, then ``processEvents``. Each step is timed on
its own; p50 and p95 of all steps are printed with the ratio window / baseline.

``--playback`` also plays each scenario at 30 fps for ``--play-frames`` frames (the
timeline's QTimer, skipping frames when late as ImageView does) and counts dropped frames;
``--keys`` holds the Right arrow at 30 auto-repeats per second and reports how far the
window lags behind the key events.

    QT_QPA_PLATFORM=offscreen OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scrub.py
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
os.environ.setdefault("MIMVIEWER_CONFIG_DIR", str(Path("/tmp") / "mimviewer-bench-scrub"))

SCENARIOS = ("demo", "compare", "all")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def open_scenario(window, name: str) -> None:
    """Load a scenario's sequence and models into the window and run inference to the end."""
    import numpy as np

    from mimviewer.checkpoints import load_checkpoint
    from mimviewer.commands.demo import load_demo
    from mimviewer.data import synthetic, units
    from mimviewer.paths import bundled_models_dir

    session = window.session
    models = bundled_models_dir()
    if name in ("demo", "compare"):
        demo = load_demo()
        session.set_sequence(demo.frames, units=demo.units, source=demo.source)
        session.set_model(demo.model, name=demo.model_name, source=demo.model_source)
        if name == "compare":
            other = load_checkpoint(models / "convlstm_digits.safetensors").model
            session.set_model(other, name="convlstm_digits.safetensors", slot=1)
    else:
        dbz = synthetic.radar_storms(1, length=20, size=64, seed=990000000)[0]
        frames = units.dbz_to_unit(dbz).astype(np.float32)
        session.set_sequence(frames, units="dBZ", source="radar storms", to_physical=units.unit_to_dbz)
        session.set_model(load_checkpoint(models / "mim_storms.safetensors").model, name="mim_storms")
        predrnn = load_checkpoint(models / "predrnn_storms.safetensors").model
        session.set_model(predrnn, name="predrnn_storms", slot=1)
        session.quantities = session.available_quantities(0)
    for update in session.inference(session.start_run(), device="cpu"):
        session.accept(update)


def naive_baseline(window, size: tuple[int, int]):
    """A bare pyqtgraph window with one ImageItem per image the window shows, laid out as the
    window lays them out (frame views in a GraphicsLayoutWidget the size of the window's frame
    area, heatmap cells in one the size of its heatmap grid), and the float arrays a naive
    program hands to each at every frame."""
    import numpy as np
    import pyqtgraph as pg
    from PySide6.QtWidgets import QHBoxLayout, QWidget

    from mimviewer.render import DIVERGING, VIRIDIS

    session = window.session
    panel, internals = window.frames_panel, window.internals
    frame_views = list(panel.images)
    cells = list(internals.cells)
    widget = QWidget()
    widget.resize(*size)
    frames_area, cells_area = pg.GraphicsLayoutWidget(), pg.GraphicsLayoutWidget()
    frames_area.setFixedSize(panel.graphics.size())
    cells_area.setFixedSize(internals.grid.size())
    row = QHBoxLayout(widget)
    row.addWidget(frames_area)
    row.addWidget(cells_area)
    items = []
    for name in frame_views:
        r, c = panel.place(name)
        view = frames_area.addViewBox(row=r, col=c, lockAspect=True, invertY=True)
        items.append(pg.ImageItem())
        view.addItem(items[-1])
    quantities = session.quantities
    for layer, quantity in cells:
        view = cells_area.addViewBox(row=layer, col=quantities.index(quantity), lockAspect=True, invertY=True)
        items.append(pg.ImageItem())
        view.addItem(items[-1])
    widget.show()

    lut = session.renderer.lut
    per_frame = []
    for frame in range(session.timeline_length):
        arrays = []
        for name in frame_views:
            if name == "gt":
                arrays.append((session.frames[frame, 0], lut, (0.0, 1.0)))
                continue
            slot = session.slots[int(name[-1])]
            out = slot.outputs[max(frame - 1, 0), 0]
            if name.startswith("pred"):
                arrays.append((out, lut, (0.0, 1.0)))
            else:
                arrays.append((out - session.frames[frame, 0], DIVERGING, (-0.5, 0.5)))
        step = session.step_of_frame(frame)
        for layer, quantity in cells:
            data = session.heatmap(layer, quantity, step, slot=window.internals.slot)
            levels = session.heatmap_levels(layer, quantity, slot=window.internals.slot)
            arrays.append((data, VIRIDIS if levels[0] >= 0 else DIVERGING, levels))
        per_frame.append(arrays)

    def show(frame: int) -> None:
        for item, (data, table, levels) in zip(items, per_frame[frame], strict=True):
            item.setImage(np.asarray(data, np.float32), autoLevels=False, levels=levels, lut=table)

    return widget, show, len(items)


def scrub(app, window, baseline_show, steps: int) -> dict[str, list[float]]:
    """Per-step times (ms) of the window (key press + repaint) and the baseline, interleaved:
    wall time, and the main thread's CPU time (where all drawing happens; on a shared machine
    it is what the step costs, while wall time also counts waiting for a core)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    session = window.session
    last = session.timeline_length - 1
    times: dict[str, list[float]] = {"ours": [], "base": [], "ours_cpu": [], "base_cpu": []}

    def timed(kind: str, action) -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        action()
        app.processEvents()
        times[kind].append((time.perf_counter() - wall) * 1e3)
        times[f"{kind}_cpu"].append((time.thread_time() - cpu) * 1e3)

    for i in range(steps):
        key = Qt.Key.Key_Home if session.frame == last else Qt.Key.Key_Right
        timed("ours", lambda key=key: QTest.keyClick(window, key))
        timed("base", lambda i=i: baseline_show(i % (last + 1)))
    return times


def playback(app, window, frames: int, fps: int = 30) -> tuple[int, float]:
    """Play ``frames`` frames at ``fps``; (dropped frames, achieved frames per second)."""
    from PySide6.QtCore import QEventLoop, QTimer

    timeline = window.timeline
    timeline.fps.setValue(fps)
    timeline.loop.setChecked(True)
    timeline.dropped_frames = 0
    shown = {"n": 0}
    loop = QEventLoop()

    def on_frame(_frame: int) -> None:
        shown["n"] += 1
        if shown["n"] >= frames:
            loop.quit()

    window.session.events.frame.connect(on_frame)
    start = time.perf_counter()
    timeline.play_button.setChecked(True)  # as the play button does (Space too)
    QTimer.singleShot(int(frames / fps * 1000 * 3) + 2000, loop.quit)  # never hang
    loop.exec()
    elapsed = time.perf_counter() - start
    timeline.play_button.setChecked(False)
    window.session.events.frame.disconnect(on_frame)
    app.processEvents()
    return timeline.dropped_frames, shown["n"] / elapsed


def held_keys(app, window, presses: int, rate: float = 30.0) -> tuple[float, float, int]:
    """Right arrow auto-repeating at ``rate`` Hz: (p95 lag ms, max lag ms, frames moved / presses %)."""
    from PySide6.QtCore import QEvent, QEventLoop, Qt, QTimer
    from PySide6.QtGui import QKeyEvent

    session = window.session
    session.frame = 0
    app.processEvents()
    lags: list[float] = []
    state = {"sent": 0, "moved": 0}
    interval = 1000.0 / rate
    start = time.perf_counter()
    loop = QEventLoop()

    def on_frame(_frame: int) -> None:
        state["moved"] += 1

    def tick() -> None:
        due = start + state["sent"] * interval / 1000
        lags.append(max(0.0, (time.perf_counter() - due) * 1e3))
        if session.frame == session.timeline_length - 1:
            session.frame = 0
            state["moved"] -= 1
        event = QKeyEvent(QEvent.Type.KeyPress, Qt.Key.Key_Right, Qt.KeyboardModifier.NoModifier, "", True)
        app.sendEvent(window, event)
        state["sent"] += 1
        if state["sent"] >= presses:
            loop.quit()
            return
        next_due = start + state["sent"] * interval / 1000
        QTimer.singleShot(max(0, int((next_due - time.perf_counter()) * 1000)), tick)

    session.events.frame.connect(on_frame)
    QTimer.singleShot(0, tick)
    loop.exec()
    app.processEvents()
    session.events.frame.disconnect(on_frame)
    return percentile(lags, 95), max(lags), round(100 * state["moved"] / presses)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per scenario")
    parser.add_argument("--no-playback", dest="playback", action="store_false")
    parser.add_argument("--play-frames", type=int, default=150)
    parser.add_argument("--no-keys", dest="keys", action="store_false")
    parser.add_argument("--profile", metavar="HTML", help="pyinstrument profile of the window's steps")
    args = parser.parse_args(argv)

    import torch
    from PySide6.QtWidgets import QApplication

    torch.set_num_threads(1)
    app = QApplication.instance() or QApplication([])
    from mimviewer.ui.main_window import MainWindow

    size = (1600, 1000)
    rows = []
    for name in args.scenarios:
        window = MainWindow()
        window.resize(*size)
        window.show()
        open_scenario(window, name)
        app.processEvents()
        widget, show, images = naive_baseline(window, size)
        for frame in range(window.session.timeline_length):  # warm-up: every frame drawn once
            show(frame)
            app.processEvents()
        scrub(app, window, show, 2 * window.session.timeline_length)
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            profiler.start()
        times = scrub(app, window, show, args.steps)
        if args.profile:
            profiler.stop()
            Path(args.profile).with_suffix(f".{name}.txt").write_text(
                profiler.output_text(unicode=True, color=False, show_all=False)
            )
        row = {"scenario": name, "images": images}
        for kind, values in times.items():
            row[f"{kind}50"], row[f"{kind}95"] = statistics.median(values), percentile(values, 95)
        widget.close()
        if args.playback:
            row["dropped"], row["fps"] = playback(app, window, args.play_frames)
        if args.keys:
            row["lag95"], row["lagmax"], row["moved"] = held_keys(app, window, 90)
        rows.append(row)
        window.close()
        app.processEvents()

    print(f"{args.steps} steps per scenario; window {size[0]}x{size[1]}, offscreen; ms per step")
    print("CPU: the main thread's CPU time per step; wall: elapsed time (includes waiting for a core)")
    print(
        "scenario images | CPU window p50  p95 | naive p50  p95 | p95 ratio | wall window p50  p95 | "
        "naive p50  p95 | p95 ratio | 30 fps: dropped (fps) | held keys: lag p95/max"
    )
    for r in rows:
        play = f"{r['dropped']:d} ({r['fps']:.1f} fps)" if "dropped" in r else "n/a"
        keys = f"{r['lag95']:.1f}/{r['lagmax']:.1f} ms, {r['moved']}% moved" if "lag95" in r else "n/a"
        print(
            f"{r['scenario']:8s} {r['images']:6d} | {r['ours_cpu50']:10.2f} {r['ours_cpu95']:5.2f} | "
            f"{r['base_cpu50']:8.2f} {r['base_cpu95']:5.2f} | {r['ours_cpu95'] / r['base_cpu95']:8.2f}x | "
            f"{r['ours50']:11.2f} {r['ours95']:5.2f} | {r['base50']:8.2f} {r['base95']:5.2f} | "
            f"{r['ours95'] / r['base95']:8.2f}x | {play:>21s} | {keys}"
        )


if __name__ == "__main__":
    main()
