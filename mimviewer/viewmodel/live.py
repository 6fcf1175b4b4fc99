"""Live nowcasting in the window (File > Watch folder): scans land, "now" moves, the forecast runs
in the ordinary inference worker, and earlier forecasts are scored against the scans they predicted.

The UI reads scans in a thread (:func:`mimviewer.watch.landed_scans`, with :meth:`LiveFeed.read`)
and hands each batch to :meth:`LiveFeed.accept` on the main thread. It keeps the history and the
running verification (:class:`mimviewer.watch.Nowcaster`) and, when a new scan moved "now",
shows the newest ``pre`` scans in the session with "now" at the last one and says so; the UI
then runs inference as for any sequence, and :meth:`LiveFeed.finished` files the finished
forecast so that later scans verify it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import MimviewerError
from mimviewer.forecast import Forecast, ForecastPlan, lead_label
from mimviewer.metrics import DEFAULT_THRESHOLDS
from mimviewer.scans import Scan
from mimviewer.watch import Nowcaster, ScanBatch

if TYPE_CHECKING:
    from mimviewer.viewmodel.session import Session


class LiveFeed:
    """One watched folder feeding one session (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        folder: str | Path,
        *,
        thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
        frame_interval_s: float | None = None,
    ):
        slot = session.slots[0]
        if slot is None:
            raise MimviewerError("open a checkpoint before watching a folder: it makes the forecasts")
        self.session, self.folder = session, Path(folder)
        cfg = slot.model.config
        self.nowcaster = Nowcaster(
            slot.model,
            pre=session.context or cfg.pre,
            aft=session.horizon or cfg.aft,
            thresholds=thresholds,
            frame_interval_s=frame_interval_s,
        )
        self.log: list[str] = []  # every message: files skipped, late scans, gaps
        self.scans = 0  # scans taken in
        self.forecasts = 0  # forecasts finished
        self._shown: tuple[ForecastPlan, np.ndarray] | None = None  # the forecast the session runs

    def reconfigure(self, pre: int, aft: int) -> None:
        """New context / horizon for the next forecasts; the verification starts again (its leads
        change with the horizon), the history stays."""
        old = self.nowcaster
        if (pre, aft) == (old.pre, old.aft):
            return
        self.nowcaster = Nowcaster(
            old.model,
            pre=pre,
            aft=aft,
            thresholds=old.verification.thresholds,
            frame_interval_s=old.fixed_interval_s,
            units=old.units,
        )
        self.nowcaster.add_existing(old.history)
        self.log.append(f"context {pre}, horizon {aft}: the verification starts again")
        self._publish_verification()

    def read(self, path: Path) -> Scan:
        """Read one scan at the model's frame size (the watch worker calls this in its thread)."""
        return self.nowcaster.read(path)

    def accept(self, batch: ScanBatch) -> bool:
        """Take a batch of complete scans in; True when the session now shows a forecast to run."""
        self.log += batch.messages
        due = False
        if batch.existing:
            self.log += self.nowcaster.add_existing(batch.scans)
            self.scans += len(batch.scans)
            due = bool(batch.scans)
        newer = 0
        for scan in [] if batch.existing else batch.scans:
            result = self.nowcaster.arrive(scan, run=False)
            self.scans += 1
            self.log += [f"{scan.path.name}: {note}" for note in result.notes]
            late = any(note.startswith(("late:", "skipped")) for note in result.notes)
            newer += not late
            due = due or not late
        if newer > 1:
            self.log.append(f"{newer} scans landed together: forecast from the newest only")
        self._publish_verification()
        if not due:
            return False
        planned = self.nowcaster.plan()
        if planned is None:
            return False
        plan, frames = planned
        self.show(plan, frames)
        return True

    def show(self, plan: ForecastPlan, frames: np.ndarray) -> None:
        """Put the newest scans into the session, "now" at the last one (results are cleared)."""
        newest = self.nowcaster.latest
        assert newest is not None
        session = self.session
        session.set_sequence(
            frames,
            units=newest.units,
            source=str(self.folder),
            notes=self.status_notes(),
            frame_interval_s=plan.frame_interval_s,
            last_time=plan.now_time,
        )  # exactly the context: "now" is its last frame, every predicted frame lies ahead
        self._shown = (plan, frames)
        self._publish_verification()

    def finished(self) -> None:
        """The session's run of the shown forecast finished: keep it for later verification."""
        slot = self.session.slots[0]
        if self._shown is None or slot is None or slot.outputs is None or not slot.finished:
            return
        plan, frames = self._shown
        aft = plan.aft
        truth = np.full((aft, *frames.shape[1:]), np.nan, np.float32)
        forecast = Forecast(plan, frames, slot.outputs[-aft:].copy(), truth, slot.outputs.copy())
        self.nowcaster.record(forecast)
        self.forecasts += 1
        self._shown = None

    def _publish_verification(self) -> None:
        """The running skill per lead, for the timeline (absent where no pair was scored yet)."""
        self.session.verification = self.nowcaster.verification.scores()
        self.session.verification_pairs = self.nowcaster.verification.pairs.copy()

    def lead_labels(self) -> list[str]:
        interval = self.nowcaster.interval_s
        return [lead_label(lead, interval) for lead in range(1, self.nowcaster.aft + 1)]

    def status_notes(self) -> list[str]:
        """What the frame views' note line says about the feed."""
        newest = self.nowcaster.latest
        notes = [f"live: {self.scans} scan(s) from {self.folder.name}"]
        if newest is not None:
            notes.append(f"now = {newest.label}")
        pairs = int(self.nowcaster.verification.pairs.sum())
        if pairs:
            notes.append(f"{pairs} earlier forecast frame(s) verified")
        return notes

    def status(self) -> str:
        """One line for the status bar."""
        text = "; ".join(self.status_notes())
        return text + (f"; {self.log[-1]}" if self.log else "")
