"""The watch worker: follows a folder in a thread (superqt) and hands batches of complete scans
to the main thread, where :class:`mimviewer.viewmodel.live.LiveFeed` takes them in."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from superqt.utils import GeneratorWorker

from mimviewer.scans import Scan


class FolderWatcher(QObject):
    """Start / stop following one folder; every batch of complete scans comes as ``batch``."""

    batch = Signal(object)  # mimviewer.watch.ScanBatch
    failed = Signal(object)  # the exception

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._worker: GeneratorWorker | None = None
        self._stop: threading.Event | None = None

    @property
    def is_watching(self) -> bool:
        return self._worker is not None

    def start(
        self,
        folder: str | Path,
        read: Callable[[Path], Scan],
        *,
        settle_s: float = 1.0,
        give_up_s: float = 60.0,
    ) -> None:
        from mimviewer.watch import landed_scans  # imports torch: not before the window is shown

        self.stop()
        stop = threading.Event()
        worker = GeneratorWorker(
            landed_scans, Path(folder), read, stop_event=stop, settle_s=settle_s, give_up_s=give_up_s
        )
        worker.yielded.connect(lambda batch: self._on_batch(worker, batch))
        worker.errored.connect(lambda exc: self._on_error(worker, exc))
        worker.finished.connect(lambda: self._on_finished(worker))
        self._worker, self._stop = worker, stop
        worker.start()

    def stop(self) -> None:
        """Stop following (the thread ends within one watch tick)."""
        worker, stop = self._worker, self._stop
        self._worker = self._stop = None
        if stop is not None:
            stop.set()
        if worker is not None:
            worker.quit()

    def _on_batch(self, worker: GeneratorWorker, batch) -> None:
        if worker is self._worker:
            self.batch.emit(batch)

    def _on_error(self, worker: GeneratorWorker, exc: Exception) -> None:
        if worker is self._worker:
            self.stop()
            self.failed.emit(exc)

    def _on_finished(self, worker: GeneratorWorker) -> None:
        if worker is self._worker:
            self._worker = self._stop = None
