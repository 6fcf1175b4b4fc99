"""Live nowcasting: follow a folder of radar scans, forecast from each new one, verify the old.

Three parts, each usable alone:

* :class:`PendingFiles` decides when a file that the file system reported is complete: its
  size has not changed for ``settle_s`` and it ends as its format must
  (:func:`mimviewer.scans.looks_complete`); one still incomplete after ``give_up_s`` is
  skipped, and said so.
* :class:`Nowcaster` keeps the scans in time order, forecasts from the newest ``pre`` of
  them whenever a scan moves "now" forward, and scores every earlier forecast that predicted
  the time of a scan that just arrived (:class:`Verification`). A scan older than "now"
  (out of order) joins the history and is verified against, but is not forecast from.
* :func:`follow` turns file-system events (``watchfiles``: inotify, FSEvents,
  ReadDirectoryChangesW; no polling of the folder) into batches of complete files, and
  :func:`nowcast_folder` ties the three together as a generator of :class:`NowcastResult`,
  one per scan, in time order.

The verification pools the contingency table of ``rain > threshold`` events over pixels and
over every forecast/scan pair at the same lead (as :func:`mimviewer.metrics.contingency`
does over a batch), then CSI = H/(H+M+F), POD = H/(H+M), FAR = F/(H+F) per lead
(:func:`mimviewer.metrics.skill_scores`); a lead without pairs is NaN (absent, not zero).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import torch

from mimviewer.errors import DataError, MimviewerError
from mimviewer.forecast import Forecast, ForecastPlan, plan_forecast, run_forecast
from mimviewer.metrics import DEFAULT_THRESHOLDS, RADAR_UNITS, contingency, skill_key, skill_scores
from mimviewer.nets.base import RecurrentModel
from mimviewer.scans import Scan, is_scan_file, looks_complete, read_scan, scan_time
from mimviewer.trace import ProbeSpec

VERIFICATION_SCORES: tuple[str, ...] = ("csi", "pod", "far")
TABLE = ("hits", "misses", "false_alarms", "correct_negatives")


# -- complete files ---------------------------------------------------------------------------
@dataclass
class _Pending:
    size: int
    first_seen: float
    last_change: float


class PendingFiles:
    """Files reported by the file system that may still be being written (see the module doc)."""

    def __init__(
        self, settle_s: float = 0.5, give_up_s: float = 60.0, clock: Callable[[], float] = time.monotonic
    ):
        self.settle_s, self.give_up_s, self._clock = settle_s, give_up_s, clock
        self._pending: dict[Path, _Pending] = {}
        self._born: dict[Path, float] = {}  # when each file not yet read was first seen

    def __len__(self) -> int:
        return len(self._pending)

    @staticmethod
    def _size(path: Path) -> int | None:
        try:
            return path.stat().st_size
        except OSError:
            return None

    def notice(self, path: Path) -> None:
        """The file system says ``path`` was created or changed."""
        now = self._clock()
        size = self._size(path)
        if size is None:  # gone again (a writer's rename, a deletion)
            self._pending.pop(path, None)
            return
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = _Pending(size, self._born.setdefault(path, now), now)
        elif entry.size != size:
            entry.size, entry.last_change = size, now

    def forget(self, path: Path) -> None:
        self._pending.pop(path, None)
        self._born.pop(path, None)

    def take_ready(self) -> tuple[list[Path], list[str]]:
        """(files complete now, messages about files given up); ready files leave the queue.

        While another file is still growing, complete ones are held back (up to
        ``4 * settle_s``) so that scans landing together come out together, to be sorted by
        time: a feed that writes 12:10 just after 12:20 is not taken as 12:10 arriving late."""
        now = self._clock()
        ready, messages, busy = [], [], False
        for path, entry in list(self._pending.items()):
            size = self._size(path)
            if size is None:
                del self._pending[path]
                continue
            if size != entry.size:
                entry.size, entry.last_change = size, now
            quiet_for = now - entry.last_change
            if quiet_for >= self.settle_s and looks_complete(path):
                ready.append(path)
                continue
            busy = busy or quiet_for < self.settle_s
            if now - entry.first_seen >= self.give_up_s:
                messages.append(
                    f"skipped {path.name}: still incomplete or unreadable after {self.give_up_s:g} s"
                )
                self.forget(path)
        waited = max((now - self._pending[p].last_change for p in ready), default=0.0)
        if busy and waited < 4 * self.settle_s:
            return [], messages
        for path in ready:
            del self._pending[path]
        return ready, messages

    def retry(self, path: Path) -> None:
        """Put back a file that looked complete but did not decode (its writer may not be done);
        it is given up ``give_up_s`` after it was first seen."""
        size = self._size(path)
        if size is not None:
            now = self._clock()
            self._pending[path] = _Pending(size, self._born.get(path, now), now)

    def accepted(self, path: Path) -> None:
        """``path`` was read: a later change to it is a new file."""
        self._born.pop(path, None)


# -- verification ---------------------------------------------------------------------------
class Verification:
    """Running skill of the session's forecasts, lead by lead (see the module docstring)."""

    def __init__(self, aft: int, thresholds: Iterable[float] = DEFAULT_THRESHOLDS, units: str = "dBZ"):
        self.aft = aft
        self.thresholds = tuple(float(t) for t in thresholds)
        self.units = units
        self.counts = np.zeros((len(self.thresholds), aft, len(TABLE)))  # pooled H, M, F, R
        self.pairs = np.zeros(aft, int)  # forecast/scan pairs scored per lead

    def _values(self, frames: np.ndarray) -> torch.Tensor:
        """Model scale -> what thresholds apply to: rain rate (mm/h) for radar, else the model scale."""
        from mimviewer.metrics import rain_rate

        tensor = torch.as_tensor(np.asarray(frames, np.float64)).clamp(0.0, 1.0)[None, None]
        return rain_rate(tensor) if self.units in RADAR_UNITS else tensor

    def add(self, lead: int, prediction: np.ndarray, observed: np.ndarray) -> dict[str, float]:
        """Score one predicted frame (C, H, W) against the scan it predicted; its own scores."""
        if not 1 <= lead <= self.aft:
            raise ValueError(f"lead must be in 1..{self.aft}, got {lead}")
        forecast, truth = self._values(prediction), self._values(observed)
        own = {}
        for i, threshold in enumerate(self.thresholds):
            table = contingency(truth, forecast, threshold)
            counts = np.array([float(table[k][0]) for k in TABLE])
            self.counts[i, lead - 1] += counts
            for score, value in skill_scores({k: table[k] for k in TABLE}).items():
                if score in VERIFICATION_SCORES:
                    own[skill_key(score, threshold)] = float(value[0])
        self.pairs[lead - 1] += 1
        return own

    def scores(self) -> dict[str, np.ndarray]:
        """``"csi@R"`` / ``"pod@R"`` / ``"far@R"`` -> (aft,) over the leads; NaN where undefined."""
        out = {}
        with np.errstate(invalid="ignore", divide="ignore"):
            for i, threshold in enumerate(self.thresholds):
                table = {k: torch.as_tensor(self.counts[i, :, j]) for j, k in enumerate(TABLE)}
                for score, values in skill_scores(table).items():
                    if score in VERIFICATION_SCORES:
                        curve = values.numpy().copy()
                        curve[self.pairs == 0] = np.nan
                        out[skill_key(score, threshold)] = curve
        return out

    def to_json(self, lead_labels: list[str]) -> dict:
        """The curve as plain data (NaN as None), for ``verification.json``."""
        scores = self.scores()
        return {
            "units": self.units,
            "thresholds": list(self.thresholds),
            "threshold_units": "mm/h" if self.units in RADAR_UNITS else "model scale",
            "lead": lead_labels,
            "pairs": self.pairs.tolist(),
            "scores": {
                k: [None if np.isnan(v) else float(v) for v in values] for k, values in scores.items()
            },
        }


# -- nowcasting -------------------------------------------------------------------------------
@dataclass
class Verified:
    """One earlier forecast scored against the scan that just arrived."""

    issued: datetime  # the "now" of that forecast
    lead: int
    scores: dict[str, float]


@dataclass
class NowcastResult:
    """What one scan did: the forecast from it (None when it is late or the context is short),
    the earlier forecasts it verified, and what the user should know."""

    scan: Scan
    forecast: Forecast | None
    verified: list[Verified] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    initial: bool = False  # the forecast from the newest scan already in the folder at the start

    @property
    def stamp(self) -> str:
        """``YYYYmmddHHMM`` of the scan, for file names."""
        return f"{self.scan.time:%Y%m%d%H%M}" if self.scan.time else self.scan.path.stem


@dataclass
class _Issued:
    time: datetime
    interval_s: float
    prediction: np.ndarray  # (aft, C, H, W)


class Nowcaster:
    """Scans in time order, a forecast from each new "now", and the running verification."""

    def __init__(
        self,
        model: RecurrentModel,
        *,
        pre: int | None = None,
        aft: int | None = None,
        thresholds: Iterable[float] = DEFAULT_THRESHOLDS,
        frame_interval_s: float | None = None,
        units: str | None = None,
        device: torch.device | str | None = None,
        probes: ProbeSpec | None = None,
    ):
        cfg = model.config
        self.model, self.device, self.probes = model, device, probes
        self.pre = cfg.pre if pre is None else pre
        self.aft = cfg.aft if aft is None else aft
        if self.pre < 1 or self.aft < 1:
            raise MimviewerError(f"context and horizon must be >= 1, got pre={self.pre}, aft={self.aft}")
        self.fixed_interval_s = frame_interval_s
        self.units = units  # None: from the first scan
        self.history: list[Scan] = []
        self._issued: list[_Issued] = []
        self.verification = Verification(self.aft, thresholds, units or "dBZ")

    @property
    def latest(self) -> Scan | None:
        return self.history[-1] if self.history else None

    def read(self, path: Path) -> Scan:
        """Read a scan at the model's frame size and channels (changes nothing: safe in a thread)."""
        cfg = self.model.config
        scan = read_scan(path, size=(cfg.height, cfg.width), channels=cfg.channels, units=self.units)
        if scan.time is None:
            scan.time = datetime.fromtimestamp(path.stat().st_mtime)
            scan.notes += ("no time in the name: the file's modification time is used",)
        return scan

    @property
    def interval_s(self) -> float | None:
        """The time between scans: as given, else the median step of the history."""
        if self.fixed_interval_s:
            return self.fixed_interval_s
        times = [s.time.timestamp() for s in self.history if s.time is not None]
        steps = np.diff(times)
        steps = steps[steps > 0]
        return float(np.median(steps)) if steps.size else None

    def _insert(self, scan: Scan) -> str | None:
        """Put ``scan`` into the time-ordered history; a message if it was refused."""
        if self.units is None:  # the first scan says what the feed holds
            self.units = scan.units
            self.verification.units = scan.units
        for old in self.history:
            if old.time == scan.time:
                when = f"{scan.time:%H:%M:%S}"
                return f"skipped {scan.path.name}: a scan at {when} is already in ({old.path.name})"
        self.history.append(scan)
        self.history.sort(key=lambda s: s.time)
        keep = max(self.pre, 1) + 64  # context plus room for late scans
        del self.history[:-keep]
        return None

    def add_existing(self, scans: Iterable[Scan]) -> list[str]:
        """Scans already in the folder when watching starts: history only."""
        return [m for m in (self._insert(s) for s in sorted(scans, key=lambda s: s.time)) if m]

    def _verify(self, scan: Scan) -> list[Verified]:
        out = []
        for issued in self._issued:
            lead_f = (scan.time - issued.time).total_seconds() / issued.interval_s
            lead = round(lead_f)
            if 1 <= lead <= self.aft and abs(lead_f - lead) < 0.25:
                scores = self.verification.add(lead, issued.prediction[lead - 1], scan.frame)
                out.append(Verified(issued.time, lead, scores))
        return out

    def context_notes(self, context: list[Scan], interval_s: float | None) -> list[str]:
        """Gaps in the context (a scan missing between two that are read one after the other)."""
        if interval_s is None:
            return []
        notes = []
        for a, b in itertools.pairwise(context):
            missing = round((b.time - a.time).total_seconds() / interval_s) - 1
            if missing > 0:
                notes.append(
                    f"gap in the context: {missing} scan(s) missing between {a.time:%H:%M} and {b.time:%H:%M}"
                )
        return notes

    def plan(self) -> tuple[ForecastPlan, np.ndarray] | None:
        """The forecast due from the newest scan: its plan and context frames (None: too few scans)."""
        if len(self.history) < self.pre:
            return None
        context = self.history[-self.pre :]
        frames = np.stack([s.frame for s in context])
        interval = self.interval_s
        plan = plan_forecast(
            len(frames),
            self.pre,
            self.aft,
            now=-1,
            trained_aft=self.model.config.aft,
            frame_interval_s=interval,
            now_time=context[-1].time,
        )
        return plan, frames

    def record(self, forecast: Forecast) -> None:
        """Keep a finished forecast so that later scans verify it."""
        plan = forecast.plan
        if plan.now_time is None or not plan.frame_interval_s:
            return
        self._issued.append(_Issued(plan.now_time, plan.frame_interval_s, forecast.prediction))
        horizon = timedelta(seconds=plan.frame_interval_s * (self.aft + 1))
        latest = self.latest.time if self.latest else plan.now_time
        self._issued = [i for i in self._issued if latest - i.time <= horizon]

    def arrive(self, scan: Scan, *, run: bool = True) -> NowcastResult:
        """A new complete scan: verify earlier forecasts against it, then forecast from it if it is the
        newest (``run=False`` leaves the forecast to the caller: :meth:`plan` then :meth:`record`)."""
        latest = self.latest
        refused = self._insert(scan)
        if refused:
            return NowcastResult(scan, None, notes=[refused])
        result = NowcastResult(scan, None, notes=list(scan.notes))
        result.verified = self._verify(scan)
        if latest is not None and scan.time < latest.time:
            result.notes.append(
                f"late: {scan.path.name} arrived after {latest.path.name}; "
                "kept for the context and verification, not forecast from"
            )
            return result
        due = self.plan()
        if due is None:
            result.notes.append(f"waiting for context: {len(self.history)} of {self.pre} scans")
            return result
        plan, frames = due
        result.notes += self.context_notes(self.history[-self.pre :], plan.frame_interval_s)
        if run:
            result.forecast = run_forecast(self.model, frames, plan, probes=self.probes, device=self.device)
            self.record(result.forecast)
        return result


# -- the folder -------------------------------------------------------------------------------
def existing_scans(folder: Path) -> list[Path]:
    """Complete scan files already in ``folder``, in time order (unknown times last, by name)."""
    files = [p for p in folder.iterdir() if p.is_file() and is_scan_file(p) and looks_complete(p)]
    return sorted(files, key=lambda p: (scan_time(p) or datetime.max, p.name))


def follow(
    folder: Path, *, stop_event: threading.Event, tick_s: float = 0.25
) -> Generator[list[tuple[str, Path]], None, None]:
    """Yield the file-system events on scan files in ``folder`` as ("added" | "modified" |
    "deleted", path) lists until ``stop_event`` is set; an empty list every ``tick_s`` without
    events, so that files still being written can be looked at again (watchfiles' timeout)."""
    import watchfiles

    tick_ms = max(20, int(tick_s * 1000))
    for changes in watchfiles.watch(
        folder,
        watch_filter=lambda change, name: is_scan_file(name),
        debounce=max(50, tick_ms),
        step=20,
        stop_event=stop_event,
        rust_timeout=tick_ms,
        yield_on_timeout=True,
        recursive=False,
        raise_interrupt=False,
    ):
        yield [(change.name, Path(name)) for change, name in changes]
        if stop_event.is_set():
            return


@dataclass
class ScanBatch:
    """Scans that became complete together, in time order, and messages about skipped files."""

    scans: list[Scan]
    messages: list[str]
    existing: bool = False  # the scans already in the folder when watching started


def landed_scans(
    folder: str | Path,
    read: Callable[[Path], Scan],
    *,
    stop_event: threading.Event,
    settle_s: float = 0.5,
    give_up_s: float = 60.0,
) -> Generator[ScanBatch, None, None]:
    """The scans already in ``folder`` (one batch, ``existing``, possibly empty), then every batch
    of complete scans as they land, read with ``read``, until ``stop_event`` is set."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder")
    first = ScanBatch([], [], existing=True)
    for path in existing_scans(folder):
        try:
            first.scans.append(read(path))
        except DataError as exc:
            first.messages.append(f"skipped {exc}")
    first.scans.sort(key=lambda s: s.time)
    yield first
    pending = PendingFiles(settle_s, give_up_s)
    for events in follow(folder, stop_event=stop_event, tick_s=settle_s / 2):
        for change, path in events:
            if change == "deleted":
                pending.forget(path)
            else:
                pending.notice(path)
        ready, messages = pending.take_ready()
        batch = ScanBatch([], messages)
        for path in ready:
            try:
                batch.scans.append(read(path))
            except DataError:  # complete on the outside, not inside yet: look again later
                pending.retry(path)
            else:
                pending.accepted(path)
        batch.scans.sort(key=lambda s: s.time)
        if batch.scans or batch.messages:
            yield batch
        if stop_event.is_set():
            return


def nowcast_folder(
    folder: str | Path,
    nowcaster: Nowcaster,
    *,
    stop_event: threading.Event,
    settle_s: float = 0.5,
    give_up_s: float = 60.0,
    initial_forecast: bool = True,
) -> Generator[NowcastResult | str, None, None]:
    """Follow ``folder``: yield a :class:`NowcastResult` per complete scan, in time order, and a
    message (str) for every file skipped. The scans already there form the history, and (when
    ``initial_forecast``) the newest of them gets a forecast at once."""
    batches = landed_scans(
        folder, nowcaster.read, stop_event=stop_event, settle_s=settle_s, give_up_s=give_up_s
    )
    for batch in batches:
        yield from batch.messages
        if not batch.existing:
            for scan in batch.scans:
                yield nowcaster.arrive(scan)
            continue
        yield from nowcaster.add_existing(batch.scans)
        due = nowcaster.plan() if initial_forecast else None
        if due is not None:
            plan, frames = due
            forecast = run_forecast(
                nowcaster.model, frames, plan, probes=nowcaster.probes, device=nowcaster.device
            )
            nowcaster.record(forecast)
            yield NowcastResult(nowcaster.latest, forecast, initial=True)
