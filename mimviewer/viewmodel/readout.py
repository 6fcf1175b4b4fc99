"""The view model's maths on host arrays: per-frame metrics, the value under the cursor, and the
internals' re-reduction, heatmaps, colour ranges and saturation curves. Pure functions, no state."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from mimviewer.trace_spec import MAP_REDUCTIONS, STAT_NAMES, quantity_kind, split_key

# Reductions the internals panel offers: name -> label. "low" / "high" / "split" keep the two
# tails apart (split: both at once, blue = below, red = above); "saturated" is their sum.
REDUCTIONS: dict[str, str] = {
    "mean": "mean over channels",
    "saturated": "share below + above",
    "low": "share below",
    "high": "share above",
    "split": "below (blue) | above (red)",
    "channel": "one channel",
}
FRACTIONS = ("saturated", "low", "high", "split")


def is_gate(name: str) -> bool:
    """Sigmoid gates live in [0, 1] (the trace's kinds; a model may override, see Session.kind)."""
    return quantity_kind(name) == "gate"


def metrics_timeline(outputs: np.ndarray, window: np.ndarray, units: str) -> dict[str, np.ndarray]:
    """Metrics of every predicted frame 1..steps, as arrays over the timeline: NaN at frame 0 and
    at frames past the end of ``window`` (not observed yet: absent, not zero)."""
    from mimviewer.forecast import metric_names
    from mimviewer.metrics import frame_metrics

    scored = min(len(outputs), len(window) - 1)  # frames 1..scored have a truth
    timeline = {name: np.full(len(outputs) + 1, np.nan) for name in metric_names(units)}
    if scored > 0:
        values = frame_metrics(np.asarray(window[1 : scored + 1]), outputs[:scored], units=units)
        for name, per_frame in values.items():
            timeline.setdefault(name, np.full(len(outputs) + 1, np.nan))[1 : scored + 1] = per_frame
    return timeline


def frame_scores(truth: np.ndarray, prediction: np.ndarray, units: str) -> dict[str, float]:
    """Metrics of one predicted frame (C, H, W) against its truth, by :func:`metrics.frame_metrics`."""
    from mimviewer.metrics import frame_metrics

    values = frame_metrics(np.array(truth[None]), np.array(prediction[None]), units=units)
    return {name: float(np.asarray(v).reshape(-1)[0]) for name, v in values.items()}


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


def _per_step(maps: np.ndarray, reduction: str) -> np.ndarray:
    """(steps, 4, *S) -> (steps, *S) under a panel reduction ("saturated" = low + high;
    "split" = (steps, *S, 3) RGB: blue = share below, red = share above)."""
    low, high = maps[:, MAP_REDUCTIONS.index("low")], maps[:, MAP_REDUCTIONS.index("high")]
    if reduction == "saturated":
        return low + high
    if reduction == "split":
        return np.stack([high, np.zeros_like(high), low], axis=-1)
    return maps[:, MAP_REDUCTIONS.index(reduction)]


def heatmap(maps: np.ndarray, reduction: str, step: int, done_steps: int) -> np.ndarray | None:
    """The 2-D map of one quantity at one step (None: not computed yet; NaN: the step computes
    nothing there). 1-D models record unit vectors: their map is units x steps up to ``step``."""
    per_step = _per_step(maps, reduction)
    vector = maps.ndim == 3
    if vector:  # 1-D family: (steps, U[, 3]) -> (U, steps[, 3])
        moved = np.moveaxis(per_step, 0, 1)
        shown = np.full(moved.shape, np.nan, np.float32)
        shown[:, : step + 1] = moved[:, : step + 1]
        return shown
    return None if step >= done_steps else per_step[step]


def heatmap_levels(
    maps: np.ndarray | None, done_steps: int, reduction: str, kind: str
) -> tuple[float, float]:
    """Colour range of a heatmap: [0, 1] for shares and gates; otherwise symmetric around 0,
    as wide as the largest value over the whole rollout (small states stay visible)."""
    if reduction in FRACTIONS or (kind == "gate" and reduction in ("mean", "channel")):
        return 0.0, 1.0
    if maps is None or not done_steps:
        return -1.0, 1.0
    shown = maps[:done_steps, MAP_REDUCTIONS.index(reduction)]
    with np.errstate(invalid="ignore"):
        bound = float(np.nanmax(np.abs(shown))) if np.isfinite(shown).any() else 1.0
    bound = bound if math.isfinite(bound) and bound > 0 else 1.0
    return -bound, bound


def location_series(maps: np.ndarray, reduction: str, row: int, col: int, done_steps: int) -> np.ndarray:
    """(steps,) values of one map location (y=row, x=col) under a value reduction ("mean" or
    "channel"); NaN at steps not computed (yet). 1-D family: ``row`` is the unit."""
    per_step = maps[:, MAP_REDUCTIONS.index(reduction)]
    values = per_step[:, row] if per_step.ndim == 2 else per_step[:, row, col]
    out = np.full(len(values), np.nan, np.float32)
    out[:done_steps] = values[:done_steps]
    return out


def saturation_curves(stats: dict[str, np.ndarray], done_steps: int, name: str) -> dict[int, np.ndarray]:
    """Per layer: share below + above of ``name`` at every finished step (NaN: not computed)."""
    return {layer: low + high for layer, (low, high) in split_curves(stats, done_steps, name).items()}


def split_curves(
    stats: dict[str, np.ndarray], done_steps: int, name: str
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per layer: (share below, share above) of ``name`` at every finished step."""
    curves = {}
    for k, values in stats.items():
        layer, quantity = split_key(k)
        if quantity == name:
            done = values[:done_steps]
            curves[layer] = (done[:, STAT_NAMES.index("frac_low")], done[:, STAT_NAMES.index("frac_high")])
    return dict(sorted(curves.items()))
