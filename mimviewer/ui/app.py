"""Start the Qt application and the main window; offscreen rendering and screenshots."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEventLoop, QTimer, QtMsgType, qInstallMessageHandler
from PySide6.QtWidgets import QApplication

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


def run_window(setup: Callable[[MainWindow], None], *, screenshot: str | Path | None = None) -> int:
    """Open the window, let ``setup`` load files, then run until closed (or until the screenshot)."""
    app = application()
    window = MainWindow()
    if screenshot is not None:
        window.resize(*SCREENSHOT_SIZE)
    window.show()
    setup(window)
    if screenshot is None:
        code = app.exec()
        wait_for_workers()
        return code
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

    when_finished(window, shoot)
    loop.exec()
    wait_for_workers()
    return status["code"]


def wait_for_workers() -> None:
    """After the last window closed: let a step still running in a thread end (it was asked to stop)."""
    from PySide6.QtCore import QThreadPool

    QThreadPool.globalInstance().waitForDone()
