"""The view model's maths on host arrays: per-frame metrics, the value under the cursor, and the
internals' re-reduction, heatmaps, colour ranges and saturation curves. Pure functions, no state."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mimviewer.metrics import frame_metrics
from mimviewer.trace import MAP_REDUCTIONS, STAT_NAMES, split_key

# Reductions the internals panel offers: name -> label.
REDUCTIONS: dict[str, str] = {
    "mean": "mean over channels",
    "saturated": "saturated fraction",
    "channel": "one channel",
}


def is_gate(name: str) -> bool:
    """Sigmoid gates live in [0, 1] (i, f, o and their primed / MIM-N / MIM-S versions)."""
    return name.split(".")[-1].rstrip("'") in {"i", "f", "o", "r", "u", "z"}


def metrics_timeline(outputs: np.ndarray, window: np.ndarray, units: str) -> dict[str, np.ndarray]:
    """Metrics of every predicted frame 1..steps, as arrays over the timeline: NaN at frame 0 and
    at frames past the end of ``window`` (not observed yet: absent, not zero)."""
    from mimviewer.forecast import metric_names

    scored = min(len(outputs), len(window) - 1)  # frames 1..scored have a truth
    timeline = {name: np.full(len(outputs) + 1, np.nan) for name in metric_names(units)}
    if scored > 0:
        values = frame_metrics(np.asarray(window[1 : scored + 1]), outputs[:scored], units=units)
        for name, per_frame in values.items():
            timeline.setdefault(name, np.full(len(outputs) + 1, np.nan))[1 : scored + 1] = per_frame
    return timeline


def pixel_value(
    to_physical: Callable[[np.ndarray], np.ndarray],
    truth: np.ndarray | None,
    prediction: np.ndarray | None,
    view: str,
    y: int,
    x: int,
) -> float | None:
    """The physical value at (y, x) of one view: "gt", "predN" or "diffN" (channel mean).

    ``truth`` / ``prediction`` are (C, H, W) model-scale frames, None where there is none.
    """
    if view == "gt":
        source = truth
    elif view.startswith("diff"):
        if prediction is None or truth is None:
            return None
        pred = np.asarray(to_physical(prediction[:, y, x])).mean()
        gt = np.asarray(to_physical(truth[:, y, x])).mean()
        return float(pred - gt)
    else:
        source = prediction
    if source is None:
        return None
    return float(np.asarray(to_physical(source[:, y, x])).mean())


def rereduce(
    raw: dict[str, np.ndarray],
    maps: dict[str, np.ndarray],
    stats: dict[str, np.ndarray],
    lo: float,
    hi: float,
    channel: int,
) -> None:
    """The cheap reduction of trace.TraceRecorder, again, on host copies of the raw values (in place).

    raw: key -> (steps, C, *S); maps: key -> (steps, 4, *S); stats: key -> (steps, 6).
    """
    for k, values in raw.items():
        low = values < lo
        high = values > hi
        maps[k][:, MAP_REDUCTIONS.index("low")] = low.mean(1)
        maps[k][:, MAP_REDUCTIONS.index("high")] = high.mean(1)
        maps[k][:, MAP_REDUCTIONS.index("channel")] = values[:, min(channel, values.shape[1] - 1)]
        flat = values.reshape(len(values), -1)
        stats[k][:, STAT_NAMES.index("frac_low")] = (flat < lo).mean(1)
        stats[k][:, STAT_NAMES.index("frac_high")] = (flat > hi).mean(1)


def _per_step(maps: np.ndarray, reduction: str) -> np.ndarray:
    """(steps, 4, *S) -> (steps, *S) under a panel reduction ("saturated" = low + high)."""
    if reduction == "saturated":
        return maps[:, MAP_REDUCTIONS.index("low")] + maps[:, MAP_REDUCTIONS.index("high")]
    return maps[:, MAP_REDUCTIONS.index(reduction)]


def heatmap(maps: np.ndarray, reduction: str, step: int, done_steps: int) -> np.ndarray | None:
    """The 2-D map of one quantity at one step (None: not computed yet).

    1-D models record unit vectors: their map is units x steps up to ``step`` (time on x).
    """
    per_step = _per_step(maps, reduction)
    if per_step.ndim == 2:  # 1-D family: (steps, U) -> (U, steps)
        shown = np.full(per_step.shape[::-1], np.nan, np.float32)
        shown[:, : step + 1] = per_step[: step + 1].T
        return shown
    return None if step >= done_steps else per_step[step]


def heatmap_levels(
    maps: np.ndarray | None, done_steps: int, reduction: str, name: str
) -> tuple[float, float]:
    """Colour range of a heatmap: [0, 1] for gates and fractions; otherwise symmetric around 0,
    as wide as the largest value over the whole rollout (small states stay visible)."""
    if reduction == "saturated" or (is_gate(name) and reduction in ("mean", "channel")):
        return 0.0, 1.0
    if maps is None or not done_steps:
        return -1.0, 1.0
    shown = maps[:done_steps, MAP_REDUCTIONS.index(reduction)]
    bound = float(np.nanmax(np.abs(shown))) if shown.size else 1.0
    bound = bound if math.isfinite(bound) and bound > 0 else 1.0
    return -bound, bound


def saturation_curves(stats: dict[str, np.ndarray], done_steps: int, name: str) -> dict[int, np.ndarray]:
    """Per layer: fraction of saturated units of ``name`` at every finished step."""
    curves = {}
    for k, values in stats.items():
        layer, quantity = split_key(k)
        if quantity == name:
            done = values[:done_steps]
            curves[layer] = done[:, STAT_NAMES.index("frac_low")] + done[:, STAT_NAMES.index("frac_high")]
    return dict(sorted(curves.items()))
