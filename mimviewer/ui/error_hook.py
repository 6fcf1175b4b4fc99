"""One hook for every Qt slot: an exception that escapes a slot reaches the user.

PySide6 hands an exception raised in a slot (a button, a timer, a signal from the view
model) to ``sys.excepthook``, which by default only prints it. While a window is open its
:class:`SlotErrorHook` is that hook: the traceback still goes to stderr (for bug reports),
and the message goes to the window's non-modal message box, so nothing fails silently.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from types import TracebackType

from mimviewer.errors import MimviewerError


def describe(error: BaseException) -> str:
    """A user's error (MimviewerError) speaks for itself; anything else says what it is."""
    return str(error) if isinstance(error, MimviewerError) else f"{type(error).__name__}: {error}"


class SlotErrorHook:
    """``sys.excepthook`` while installed: print the traceback, then ``show(title, message)``."""

    def __init__(self, show: Callable[[str, str], object]) -> None:
        self.show = show
        self._previous: Callable[..., object] | None = None

    def install(self) -> None:
        if self._previous is None:
            self._previous = sys.excepthook
            sys.excepthook = self

    def uninstall(self) -> None:
        if self._previous is not None and sys.excepthook is self:
            sys.excepthook = self._previous
        self._previous = None

    def __call__(self, kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
        if not isinstance(error, Exception):  # KeyboardInterrupt, SystemExit: not ours to show
            (self._previous or sys.__excepthook__)(kind, error, trace)
            return
        traceback.print_exception(kind, error, trace, file=sys.stderr)
        self.show("Something went wrong", describe(error))
