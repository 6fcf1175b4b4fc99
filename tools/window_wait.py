"""Waiting for the window to settle, shared by the screenshot tools (tools/ is on sys.path when they run)."""

from __future__ import annotations

import time


def wait(app, condition, timeout: float = 600.0) -> None:
    """Process Qt events until ``condition()`` holds, then a few more so the last paint lands."""
    end = time.monotonic() + timeout
    while not condition():
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > end:
            raise TimeoutError("the window did not finish in time")
    for _ in range(20):
        app.processEvents()
