"""Start the Qt application and the main window; offscreen rendering and screenshots."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication
from superqt.utils import create_worker

from mimviewer.errors import MimviewerError
from mimviewer.ui.main_window import MainWindow

SCREENSHOT_SIZE = (1600, 1000)


def has_display() -> bool:
    """False on a Linux machine with neither X11 nor Wayland (and no platform chosen by hand)."""
    if not sys.platform.startswith("linux"):
        return True
    if os.environ.get("QT_QPA_PLATFORM", "") not in ("", "offscreen", "minimal"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


# Qt's offscreen platform warns about this on every window; it is not the user's concern.
_OFFSCREEN_NOISE = frozenset({"This plugin does not support propagateSizeHints()"})


def _print_qt_message(kind: QtMsgType, _context: object, message: str) -> None:
    if message not in _OFFSCREEN_NOISE:
        print(message, file=sys.stderr)


def application() -> QApplication:
    """The one QApplication; rendered offscreen when there is no display."""
    app = QApplication.instance()
    if app is None:
        if not has_display():
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
            qInstallMessageHandler(_print_qt_message)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("mimviewer")
        app.setOrganizationName("mimviewer")
    return app  # type: ignore[return-value]


def choose_device(window: MainWindow, name: str) -> None:
    """Select the device for the window's runs (checked first: an unusable one is a clear error)."""
    from mimviewer.inference import pick_device

    pick_device(name)  # raises MimviewerError for e.g. cuda on a machine without a GPU
    box = window.device_choice
    if box.findText(name) < 0:
        box.addItem(name)
    box.blockSignals(True)
    box.setCurrentText(name)
    box.blockSignals(False)
    window.runner.device = name


def save_screenshot(window: MainWindow, path: str | Path) -> Path:
    """Render the whole window (docks included) into a PNG."""
    QApplication.processEvents()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        raise OSError(f"could not write the screenshot {path}")
    return path


def when_finished(window: MainWindow, callback: Callable[[bool], None]) -> None:
    """Call ``callback(ok)`` once inference has finished (at once when there is nothing to run)."""
    if not window.runner.is_running:
        QTimer.singleShot(0, lambda: callback(not window.errors))
        return

    def done(ok: bool) -> None:
        window.runner.finished.disconnect(done)
        QTimer.singleShot(200, lambda: callback(ok))

    window.runner.finished.connect(done)


def mark(event: str) -> None:
    """Append ``{"event": ..., "time": ...}`` to $MIMVIEWER_TIMING, if set (benchmarks/bench_start.py)."""
    target = os.environ.get("MIMVIEWER_TIMING")
    if target:
        with open(target, "a", encoding="utf-8") as out:
            out.write(json.dumps({"event": event, "time": time.time()}) + "\n")


def load_engine() -> None:
    """Import torch and the engine (seconds): done in a background thread once the window is up."""
    import mimviewer.checkpoints
    import mimviewer.inference
    import mimviewer.metrics
    import mimviewer.viewmodel.jobs  # noqa: F401


def run_window(
    setup: Callable[[MainWindow, object], None],
    *,
    screenshot: str | Path | None = None,
    load: Callable[[], object] | None = None,
) -> int:
    """Show the window at once, then load in the background, then ``setup(window, loaded)``.

    The window is drawn before torch and the engine are imported: ``load`` (default: only the
    imports) runs in a worker thread after the first paint, and ``setup`` gets its result on
    the main thread (to open files, start inference). Runs until the window is closed, or,
    with ``screenshot``, until inference finished and the PNG is written.
    """
    app = application()
    window = MainWindow()
    if screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    window.status_text.setText("loading the engine (torch)…")
    app.processEvents()
    mark("shown")
    window.session.events.step.connect(_first_step)
    status = {"code": 0}
    # A local loop, not app.exec()/app.quit(): quitting the application would also end every
    # later event loop of this process (tests run several windows in one process).
    loop = QEventLoop()

    def shoot(ok: bool) -> None:
        session = window.session
        if session.frame == 0 and session.models:  # show a predicted frame, not the empty frame 0
            session.frame = min(session.pre + 1, session.timeline_length - 1)
        if not ok or window.errors:
            print(
                "mimviewer: error: " + ("; ".join(window.errors) or "inference did not finish"),
                file=sys.stderr,
            )
            status["code"] = 2
        else:
            print(f"wrote {save_screenshot(window, screenshot)}")
        window.close()
        loop.quit()

    def loaded(result: object) -> None:
        mark("engine")
        window.engine_loaded()
        window.status_text.setText("ready")
        try:
            setup(window, result)
        except MimviewerError as exc:
            window.show_error("Could not open", str(exc))
        if screenshot is not None:
            when_finished(window, shoot)

    def failed(exc: Exception) -> None:
        message = str(exc) if isinstance(exc, MimviewerError) else f"{type(exc).__name__}: {exc}"
        window.show_error("Could not start", message)
        if screenshot is not None:
            shoot(False)

    def work() -> object:
        load_engine()
        return load() if load is not None else None

    worker = create_worker(work, _start_thread=False)
    worker.returned.connect(loaded)
    worker.errored.connect(failed)
    window.loader = worker  # kept alive with the window
    worker.start()
    if screenshot is None:
        code = app.exec()
        wait_for_workers()
        return code
    loop.exec()
    wait_for_workers()
    return status["code"]


def _first_step(slot: int, t: int) -> None:
    """Mark when the first prediction has been drawn (after the views handled the step)."""
    if t == 0:
        QTimer.singleShot(0, lambda: mark("first_prediction"))


def wait_for_workers() -> None:
    """After the last window closed: let a step still running in a thread end (it was asked to stop)."""
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone()
