"""The forecast part of the view model: which frames the models read and predict.

The run is a forecast (:mod:`mimviewer.forecast`): the model reads the ``pre`` frames that end
at "now" and predicts ``aft`` frames after it. Context, horizon and "now" are the user's to set
(:meth:`ForecastState.set_forecast`); by default they are the checkpoint's pre/aft and "now" is
where the whole horizon still has truth, or the last frame when the sequence ends earlier.
Timeline frames past the end of the sequence are not observed yet: no GT image, no difference,
NaN metrics (absent, not zero). Mixed into :class:`~mimviewer.viewmodel.session.Session`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import ShapeError

if TYPE_CHECKING:  # torch is imported after the window is shown (in the background)
    from mimviewer.data.lazy import LazyFrames
    from mimviewer.forecast import ForecastPlan
    from mimviewer.viewmodel.results import ModelSlot


class ForecastState:
    """Mixed into the Session: context, horizon and "now", the plan they make, and what each
    timeline frame is (context or predicted, observed or not)."""

    slots: list[ModelSlot | None]
    all_frames: np.ndarray | LazyFrames | None
    num_frames: int  # the session's
    _show_window: Callable[[], None]  # the session's: clears results, back to frame 0

    def _init_forecast(self) -> None:
        self._context: int | None = None  # the user's context / horizon (None: the checkpoint's)
        self._horizon: int | None = None
        self._now: int | None = None  # sequence index of "now" (None: the default)
        self.frame_interval_s: float | None = None  # time between frames, when the data says
        self.last_time: datetime | None = None  # wall-clock time of the last frame (live scans)

    @property
    def start(self) -> int:
        """Sequence index of timeline frame 0 (the first context frame)."""
        plan = self.plan
        return 0 if plan is None else plan.first

    @start.setter
    def start(self, value: int) -> None:
        """Move the context along a long sequence (results are cleared)."""
        if self.all_frames is not None:
            self.set_forecast(now=int(value) + self.pre - 1)

    # -- forecast: context, horizon, now --------------------------------------------------
    @property
    def plan(self) -> ForecastPlan | None:
        """Which frames the models read and predict (None without a model or a sequence)."""
        slot = self.slots[0]
        if slot is None or self.all_frames is None:
            return None
        from mimviewer.forecast import ForecastPlan, default_now  # a model is loaded: torch is too

        cfg = slot.model.config
        length = len(self.all_frames)
        pre = max(1, min(self._context or cfg.pre, length))
        aft = max(1, self._horizon or cfg.aft)
        now = default_now(length, pre, aft) if self._now is None else self._now
        now = min(max(now, pre - 1), length - 1)
        now_time = None
        if self.last_time is not None and self.frame_interval_s:
            now_time = self.last_time - timedelta(seconds=(length - 1 - now) * self.frame_interval_s)
        return ForecastPlan(length, pre, aft, now, cfg.aft, self.frame_interval_s, now_time)

    @property
    def now_index(self) -> int | None:
        """The user's "now" (sequence index of the last context frame; None: the default)."""
        return self._now

    @property
    def context(self) -> int | None:
        """The user's context length (None: the checkpoint's)."""
        return self._context

    @property
    def horizon(self) -> int | None:
        """The user's horizon (None: the checkpoint's)."""
        return self._horizon

    def set_forecast(
        self, *, context: int | None = None, horizon: int | None = None, now: int | None = None
    ) -> None:
        """Set context and horizon (frames; a horizon past the trained one runs on) and "now"
        (sequence index of the last context frame, negative from the end); results are cleared."""
        for name, value in (("context", context), ("horizon", horizon)):
            if value is not None and value < 1:
                raise ShapeError(f"{name} must be >= 1 frame, got {value}")
        if context is not None:
            self._context = int(context)
        if horizon is not None:
            self._horizon = int(horizon)
        if now is not None and self.all_frames is not None:
            self._now = int(now) + len(self.all_frames) if now < 0 else int(now)
        self._show_window()

    def is_observed(self, frame: int) -> bool:
        """Whether timeline frame ``frame`` has a true frame (past the end of the data it has not)."""
        plan = self.plan
        return plan.is_observed(frame) if plan is not None else frame < self.num_frames

    def frame_status(self, frame: int) -> str:
        """The frame views' header: which frame, and what the model knew when it predicted it."""
        where = f" (sequence frame {self.start + frame})" if self.start else ""
        head = f"frame {frame} / {self.timeline_length - 1}{where}"
        plan = self.plan
        if plan is None:
            return f"{head} · open a checkpoint to predict"
        if self.is_context(frame):
            return f"{head} · context: the model reads this true frame"
        note = plan.frame_note(frame).removeprefix("forecast ")
        return f"{head} · predicted {note} · the model saw frames 0–{plan.pre - 1} only"

    def frame_note(self, frame: int) -> str:
        """What timeline frame ``frame`` is, e.g. "forecast +6 min, valid 12:42; not observed yet"."""
        plan = self.plan
        return plan.frame_note(frame) if plan is not None else "sequence frame"

    def frame_notes(self) -> list[str]:
        """One line per timeline frame (context, lead, valid time, not observed) for exports."""
        return [self.frame_note(k) for k in range(self.timeline_length)]

    # -- timing: pre / aft -----------------------------------------------------------------
    @property
    def pre(self) -> int:
        plan = self.plan
        return self.num_frames if plan is None else plan.pre

    @property
    def aft(self) -> int:
        plan = self.plan
        return 0 if plan is None else plan.aft

    @property
    def steps(self) -> int:
        return self.pre + self.aft - 1

    @property
    def timeline_length(self) -> int:
        """Frames on the timeline: the context plus the predicted ones (all frames without a model)."""
        return self.pre + self.aft if self.slots[0] is not None else self.num_frames

    def is_context(self, frame: int) -> bool:
        return frame < self.pre
