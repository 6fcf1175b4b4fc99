"""Forecast past the last frame: which frames the model reads, which it predicts, and which of
those the data has already observed.

A forecaster on duty has the last scans and no future. A forecast is planned around "now",
the last frame the model reads: it reads the ``pre`` frames ending at ``now`` and predicts
``aft`` frames after it. Any frame past the end of the sequence is *not observed yet*: its
truth is a NaN frame (never a zero frame) and it has no metrics (NaN, not 0). A horizon
longer than the one the model was trained for simply runs on (the recurrent rollout feeds
its own outputs back in); the frames past the trained horizon are flagged.

Timeline of a forecast, frame k = 0 .. pre + aft - 1 (the window's and the exports'):

* k < pre: context frame ``first + k`` (observed, the model reads it);
* k >= pre: lead ``k - pre + 1``, sequence frame ``now + lead``, observed when the sequence
  has it, valid at ``now_time + lead * frame_interval_s`` when the data has times.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import torch

from mimviewer.errors import ShapeError
from mimviewer.inference import Rollout, StepResult, iter_rollout, run_to_end
from mimviewer.metrics import DEFAULT_THRESHOLDS, IMAGE_METRICS, RADAR_UNITS, SKILL_SCORES, skill_key
from mimviewer.nets.base import RecurrentModel
from mimviewer.trace import ProbeSpec, Trace


def default_now(length: int, pre: int, aft: int, start: int = 0) -> int:
    """Where "now" goes unless the user says: the context from ``start`` when the sequence holds
    the whole horizon after it (a comparison with the truth), otherwise its last frame (a
    forecast past the end)."""
    if start + pre + aft <= length:
        return start + pre - 1
    return length - 1


def lead_label(lead: int, frame_interval_s: float | None, *, short: bool = False) -> str:
    """A lead as text: +10 min, +30 s, +1 h 30 min when the time between frames is known; else
    +3 frames. ``short`` (axis ticks): +10m, +30s, +1h30m, +3."""
    if not frame_interval_s or frame_interval_s <= 0:
        return f"+{lead}" if short else f"+{lead} frame" + ("s" if lead != 1 else "")
    seconds = lead * frame_interval_s
    if seconds < 60 or seconds % 60:
        return f"+{seconds:g}s" if short else f"+{seconds:g} s"
    minutes = round(seconds / 60)
    if minutes < 120:
        return f"+{minutes}m" if short else f"+{minutes} min"
    hours, rest = divmod(minutes, 60)
    if short:
        return f"+{hours}h" + (f"{rest}m" if rest else "")
    return f"+{hours} h" + (f" {rest} min" if rest else "")


@dataclass(frozen=True)
class ForecastPlan:
    """Which frames a forecast reads and predicts (see the module docstring)."""

    length: int  # frames the sequence has
    pre: int  # context frames the model reads
    aft: int  # frames it predicts (the horizon)
    now: int  # sequence index of the last context frame
    trained_aft: int | None = None  # the horizon the model was trained for, when known
    frame_interval_s: float | None = None  # time between frames, when the data says
    now_time: datetime | None = None  # wall-clock time of frame ``now``, when the data says

    @property
    def first(self) -> int:
        """Sequence index of the first context frame."""
        return self.now - self.pre + 1

    @property
    def timeline_length(self) -> int:
        return self.pre + self.aft

    @property
    def steps(self) -> int:
        return self.pre + self.aft - 1

    @property
    def leads(self) -> np.ndarray:
        """1 .. aft: how many frames past now each predicted frame lies."""
        return np.arange(1, self.aft + 1)

    @property
    def observed(self) -> np.ndarray:
        """(aft,) bool: whether the sequence holds the truth of each predicted frame."""
        return self.now + self.leads < self.length

    @property
    def observed_count(self) -> int:
        return int(self.observed.sum())

    @property
    def is_forecast(self) -> bool:
        """True when some predicted frame lies past the end of the sequence."""
        return self.observed_count < self.aft

    @property
    def beyond_trained(self) -> np.ndarray:
        """(aft,) bool: predicted frames past the model's trained horizon (autoregressive run-on)."""
        if self.trained_aft is None:
            return np.zeros(self.aft, bool)
        return self.leads > self.trained_aft

    def sequence_index(self, k: int) -> int:
        """Sequence index of timeline frame ``k`` (may be >= length: not observed yet)."""
        return self.first + k

    def is_observed(self, k: int) -> bool:
        """Whether timeline frame ``k`` has a true frame (context frames always do)."""
        return self.sequence_index(k) < self.length

    def lead_of(self, k: int) -> int:
        """Lead of timeline frame ``k`` (0 for context frames)."""
        return max(0, k - self.pre + 1)

    def valid_time(self, lead: int) -> datetime | None:
        if self.now_time is None or not self.frame_interval_s:
            return None
        return self.now_time + timedelta(seconds=lead * self.frame_interval_s)

    def lead_labels(self, *, short: bool = False) -> list[str]:
        return [lead_label(int(lead), self.frame_interval_s, short=short) for lead in self.leads]

    def frame_note(self, k: int) -> str:
        """What timeline frame ``k`` is, in words, e.g. "forecast +10 min, valid 12:40 · not observed yet"."""
        if k < self.pre:
            return "context (model reads the truth)"
        lead = self.lead_of(k)
        parts = [f"forecast {lead_label(lead, self.frame_interval_s)}"]
        valid = self.valid_time(lead)
        if valid is not None:
            parts[0] += f", valid {valid:%H:%M}"
        if not self.is_observed(k):
            parts.append("not observed yet")
        if self.trained_aft is not None and lead > self.trained_aft:
            parts.append(f"past the trained horizon ({self.trained_aft})")
        return "; ".join(parts)

    def describe(self) -> str:
        """One line for the status bar and the command line."""
        time = f" ({self.now_time:%Y-%m-%d %H:%M})" if self.now_time else ""
        text = (
            f"now = frame {self.now}{time}: context frames {self.first}-{self.now}, "
            f"{self.aft} predicted ({lead_label(1, self.frame_interval_s)} .. "
            f"{lead_label(self.aft, self.frame_interval_s)})"
        )
        missing = self.aft - self.observed_count
        if missing:
            text += f", {missing} not observed yet"
        beyond = int(self.beyond_trained.sum())
        if beyond:
            text += f", {beyond} past the trained horizon ({self.trained_aft})"
        return text


def plan_forecast(
    length: int,
    pre: int,
    aft: int,
    *,
    now: int | None = None,
    trained_aft: int | None = None,
    frame_interval_s: float | None = None,
    now_time: datetime | None = None,
) -> ForecastPlan:
    """Check and fix a forecast's frames; ``now`` defaults to :func:`default_now` from frame 0.

    ``now`` may be negative (counted from the end, -1 = the last frame)."""
    if pre < 1 or aft < 1:
        raise ShapeError(f"context and horizon must be >= 1 frame, got pre={pre}, aft={aft}")
    if length < pre:
        raise ShapeError(f"the sequence has {length} frame(s), fewer than the {pre} context frames asked for")
    if now is None:
        now = default_now(length, pre, aft)
    elif now < 0:
        now += length
    if not pre - 1 <= now < length:
        raise ShapeError(
            f"now = frame {now} is not possible: {pre} context frames need now in {pre - 1}..{length - 1}"
        )
    return ForecastPlan(length, pre, aft, now, trained_aft, frame_interval_s, now_time)


def metric_names(units: str, thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS) -> list[str]:
    """The keys :func:`mimviewer.metrics.frame_metrics` returns for ``units``."""
    names = list(IMAGE_METRICS)
    if units in RADAR_UNITS:
        names += [skill_key(score, t) for t in thresholds for score in SKILL_SCORES]
    return names


@dataclass
class Forecast:
    """A finished forecast: what the model read and predicted, and the truth where it exists."""

    plan: ForecastPlan
    context: np.ndarray  # (pre, C, H, W) model scale
    prediction: np.ndarray  # (aft, C, H, W)
    truth: np.ndarray  # (aft, C, H, W), NaN frames where not observed yet
    outputs: np.ndarray  # (pre + aft - 1, C, H, W): output t predicts timeline frame t + 1
    trace: Trace | None = None

    def timeline_truth(self) -> np.ndarray:
        """(pre + aft, C, H, W): the context, then the truth (NaN frames: not observed yet)."""
        return np.concatenate([self.context, self.truth])

    def metrics(
        self,
        units: str = "intensity",
        thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
        device: torch.device | str | None = None,
    ) -> dict[str, np.ndarray]:
        """Per predicted frame (aft,); NaN where the truth is not observed yet (absent, not zero)."""
        return forecast_metrics(self.truth, self.prediction, self.plan.observed, units, thresholds, device)


def forecast_metrics(
    truth: np.ndarray,
    prediction: np.ndarray,
    observed: np.ndarray,
    units: str = "intensity",
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS,
    device: torch.device | str | None = None,
) -> dict[str, np.ndarray]:
    """:func:`mimviewer.metrics.frame_metrics` of the observed frames only, NaN at the others."""
    from mimviewer.metrics import frame_metrics

    observed = np.asarray(observed, bool)
    table = {name: np.full(len(observed), np.nan) for name in metric_names(units, tuple(thresholds))}
    if observed.any():
        scored = frame_metrics(
            truth[observed], prediction[observed], units=units, thresholds=thresholds, device=device
        )
        for name, values in scored.items():
            table.setdefault(name, np.full(len(observed), np.nan))[observed] = values
    return table


def forecast_inputs(frames, plan: ForecastPlan) -> tuple[np.ndarray, np.ndarray]:
    """(context (pre, C, H, W), truth (aft, C, H, W) with NaN frames past the end).

    ``frames``: a (T, C, H, W) array or a :class:`mimviewer.data.Sequence` (only the frames
    the plan needs are read)."""
    if len(frames) != plan.length:
        raise ShapeError(f"the plan is for {plan.length} frames, the sequence has {len(frames)}")
    stop = min(plan.now + plan.aft + 1, plan.length)
    if isinstance(frames, np.ndarray):
        window = np.asarray(frames[plan.first : stop], np.float32)
    else:
        window = frames.frames(plan.first, stop)
    if window.ndim != 4:
        raise ShapeError(f"expected frames (T, C, H, W), got shape {window.shape}")
    context = window[: plan.pre]
    truth = np.full((plan.aft, *window.shape[1:]), np.nan, np.float32)
    observed = window[plan.pre :]
    truth[: len(observed)] = observed
    return context, truth


def iter_forecast(
    model: RecurrentModel,
    frames,
    plan: ForecastPlan,
    *,
    probes: ProbeSpec | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
) -> Generator[StepResult, None, Forecast]:
    """Yield every network step as it finishes (for the window's worker); returns the :class:`Forecast`."""
    context, truth = forecast_inputs(frames, plan)
    generator = iter_rollout(model, context[None], plan.pre, plan.aft, probes=probes, device=device, amp=amp)
    result: Rollout = yield from generator
    return Forecast(
        plan=plan,
        context=context,
        prediction=result.prediction[0],
        truth=truth,
        outputs=result.outputs[0],
        trace=result.trace,
    )


def run_forecast(
    model: RecurrentModel,
    frames,
    plan: ForecastPlan,
    *,
    probes: ProbeSpec | None = None,
    device: torch.device | str | None = None,
    amp: bool = False,
) -> Forecast:
    """Run the whole forecast; see :func:`iter_forecast`."""
    return run_to_end(iter_forecast(model, frames, plan, probes=probes, device=device, amp=amp))
