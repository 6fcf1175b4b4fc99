"""The window's delta inference row: the main model rolled out in delta mode beside the exact one.

The delta rollout is an extra model slot (:data:`DELTA`), as the what-if rollout is, so the
frame views, internals and metric curves show it with no code of their own. Its difference
view is delta − exact (the main model's prediction): the error delta inference introduces.
Its metric curves are scored against the ground truth like every row's, plus its own over
the timeline: the fraction of recurrent multiply-adds skipped at that step (all layers, and
per layer) and the MSE against the exact prediction. The engine is :mod:`mimviewer.nets.delta`;
the numbers are the ones :func:`mimviewer.delta.delta_rollout` reports.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mimviewer.errors import ConfigError

if TYPE_CHECKING:  # torch-backed: the window is drawn before torch is imported
    from mimviewer.nets.base import RecurrentModel
    from mimviewer.nets.delta import DeltaSession

DELTA = 3  # the model slot of the delta rollout (0: main, 1: compared, 2: what-if)
SKIPPED_METRIC = "delta skipped"  # per frame: recurrent multiply-adds skipped at the step that predicted it
EXACT_MSE_METRIC = "delta mse vs exact"  # per frame: MSE of the delta prediction against the exact one


def check_eps(eps: float) -> float:
    """The threshold as a float, or a ConfigError naming the problem (negative, NaN, infinite)."""
    value = float(eps)
    if not (math.isfinite(value) and value >= 0):
        raise ConfigError(f"delta eps must be a finite number >= 0, got {eps}")
    return value


def slot_name(eps: float) -> str:
    return f"delta (eps={eps:g})"


@dataclass
class DeltaSummary:
    """What one delta rollout skipped and how far it moved from the exact rollout."""

    eps: float
    skipped: np.ndarray  # (layers, steps): multiply-add weighted fraction skipped; NaN: no product ran
    per_layer: dict[int, float]  # layer -> fraction of that layer's recurrent multiply-adds skipped
    per_step: np.ndarray  # (steps,): fraction of the step's recurrent multiply-adds (all layers) skipped
    fraction: float  # of all recurrent multiply-adds of the rollout (NaN: the model has none, e.g. SRU)
    exact_mse: np.ndarray | None  # (steps,) MSE against the exact outputs; None: no exact rollout to compare

    def status(self) -> str:
        """One line for the status bar."""
        if not math.isfinite(self.fraction):
            return f"delta eps {self.eps:g}: the model has no recurrent products to skip"
        layers = ", ".join(f"layer {k}: {v:.3f}" for k, v in sorted(self.per_layer.items()))
        text = f"delta eps {self.eps:g}: skipped {self.fraction:.3f} of the recurrent multiply-adds"
        text += f" ({layers})"
        if self.exact_mse is not None:
            text += f"; MSE vs exact {float(self.exact_mse.mean()):.3g}"
        return text


def summarise(session: DeltaSession, layers: int, steps: int, outputs: np.ndarray, exact: np.ndarray | None):
    """The :class:`DeltaSummary` of a finished delta rollout (``outputs``/``exact``: (steps, C, H, W))."""
    from mimviewer.delta import layer_skipped, skipped_macs

    totals = skipped_macs(session.stats)
    per_layer = {k: skipped / total for k, (skipped, total) in totals.items() if total}
    skipped_all = sum(s for s, _ in totals.values())
    total_all = sum(t for _, t in totals.values())
    skipped_at, total_at = np.zeros(steps), np.zeros(steps)
    for stats in session.stats.values():
        for t, k, n in zip(stats.steps, stats.skipped, stats.entries, strict=True):
            skipped_at[t] += stats.macs_per_entry * k
            total_at[t] += stats.macs_per_entry * n
    exact_mse = None
    if exact is not None and exact.shape == outputs.shape:
        exact_mse = np.square(outputs.astype(np.float64) - exact).mean(axis=(1, 2, 3))
    return DeltaSummary(
        eps=session.eps,
        skipped=layer_skipped(session.stats, layers, steps),
        per_layer=per_layer,
        per_step=np.where(total_at > 0, skipped_at / np.maximum(total_at, 1), np.nan),
        fraction=skipped_all / total_all if total_all else float("nan"),
        exact_mse=exact_mse,
    )


def timeline_metrics(summary: DeltaSummary) -> dict[str, np.ndarray]:
    """The delta row's own curves over the timeline (frame k: the step k - 1 that predicted it)."""
    metrics = {SKIPPED_METRIC: np.concatenate([[np.nan], summary.per_step])}
    for layer, per_step in enumerate(summary.skipped):  # NaN where the layer ran no product
        if np.isfinite(per_step).any():
            metrics[f"{SKIPPED_METRIC} layer {layer}"] = np.concatenate([[np.nan], per_step])
    if summary.exact_mse is not None:
        metrics[EXACT_MSE_METRIC] = np.concatenate([[np.nan], summary.exact_mse])
    return metrics


def rollout_mode(model: RecurrentModel, eps: float | None) -> AbstractContextManager[DeltaSession | None]:
    """Delta mode for a delta slot's rollout (its own copy of the model), nothing for any other."""
    from mimviewer.nets.delta import delta_mode

    return nullcontext() if eps is None else delta_mode(model, eps)
