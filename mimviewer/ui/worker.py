"""Runs the view model's inference generator in a thread (superqt GeneratorWorker).

The worker thread does the device work and draws images (``viewmodel.jobs.inference``); every
yielded update arrives on the main thread through a queued signal and is handed to
``Session.accept``, which only stores it. A new request cancels the one before.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal
from superqt.utils import GeneratorWorker

from mimviewer.viewmodel import Session, SlotDone, StepUpdate


class InferenceRunner(QObject):
    """Start / cancel rollouts and report progress; one run at a time."""

    progress = Signal(int, int, str)  # done steps, total steps, text
    finished = Signal(bool)  # True when every model finished, False when cancelled or failed
    failed = Signal(object)  # the exception

    def __init__(self, session: Session, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.device = "auto"
        self.fast = False  # bf16 autocast where the device has it (`view --fast`); the status says so
        self._worker: GeneratorWorker | None = None
        self._total = 0
        self._done = 0
        self._mode = ""

    @property
    def is_running(self) -> bool:
        return self._worker is not None

    def start(self, only: tuple[int, ...] | None = None) -> None:
        """Cancel what runs, clear the old results and roll out every model (or the slots in
        ``only``) again."""
        only = tuple(only) if isinstance(only, (tuple, list)) else None  # Qt may pass a bool here
        self.cancel()
        session = self.session
        if session.frames is None or not session.models:
            return
        run = session.start_run(only)
        slots = [i for i, _ in session.models if only is None or i in only]
        self._total = session.steps * len(slots)
        self._done = 0
        amp, mode = self._fast_mode()
        extra = {} if only is None else {"only": only}
        worker = GeneratorWorker(session.inference, run, device=self.device, amp=amp, **extra)
        # Signals already queued when a run is cancelled still arrive: each handler checks
        # that its worker is the current one.
        worker.yielded.connect(lambda update: self._on_yielded(worker, update))
        worker.errored.connect(lambda exc: self._on_errored(worker, exc))
        worker.returned.connect(lambda _result: self._on_returned(worker))
        self._worker = worker
        self._mode = mode
        self.progress.emit(0, self._total, f"running on {self.device}{mode}…")
        worker.start()

    def _fast_mode(self) -> tuple[bool, str]:
        """(use bf16, status suffix): fast mode where the device has bf16, else the reason it is off."""
        if not self.fast:
            return False, ""
        from mimviewer.accel import fast_note
        from mimviewer.inference import pick_device

        note = fast_note(pick_device(self.device))
        if note:
            return False, f" ({note})"
        return True, " · fast mode: bf16, about 3 significant digits vs float32"

    def cancel(self) -> None:
        """Ask the running worker to stop after its current step (returns at once)."""
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.quit()
            self.session.invalidate_run()  # anything still queued from it is ignored
            self.progress.emit(0, 0, "inference cancelled")
            self.finished.emit(False)

    def _on_yielded(self, worker: GeneratorWorker, update: StepUpdate | SlotDone) -> None:
        if worker is not self._worker or not self.session.accept(update):
            return
        if isinstance(update, StepUpdate) and worker is self._worker:
            self._done += 1
            name = self.session.slots[update.slot].name
            text = f"{name}: step {update.t + 1}/{update.steps}{self._mode}"
            self.progress.emit(self._done, self._total, text)

    def _on_returned(self, worker: GeneratorWorker) -> None:
        if worker is not self._worker:
            return
        self._worker = None
        self.progress.emit(self._total, self._total, f"inference finished{self._mode}")
        self.finished.emit(True)

    def _on_errored(self, worker: GeneratorWorker, exc: Exception) -> None:
        if worker is not self._worker:
            return
        self._worker = None
        self.progress.emit(0, 0, "inference failed")
        self.failed.emit(exc)
        self.finished.emit(False)


class JobCancelled(Exception):
    """Raised inside a cancelled job's thread (see :class:`CancellableJob`)."""


class CancellableJob:
    """A function run in a worker thread that the user can stop part-way (the export's Cancel).

    The writers have no stop flag to poll; ``cancel()`` raises :class:`JobCancelled` in the
    job's thread (``PyThreadState_SetAsyncExc``), at its next Python instruction. The
    writers write through an atomic temporary file, so the exception removes the partial
    file and leaves any previous file at the target untouched.
    """

    def __init__(self, job: Callable[[], Any]):
        self._job = job
        self._thread: int | None = None
        self._lock = threading.Lock()
        self.cancelled = False

    def __call__(self) -> Any:
        with self._lock:
            if self.cancelled:
                raise JobCancelled
            self._thread = threading.get_ident()
        try:
            return self._job()
        finally:
            with self._lock:
                self._thread = None

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._thread is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread), ctypes.py_object(JobCancelled)
                )
