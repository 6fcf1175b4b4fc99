"""What delta inference buys: skipped multiply-adds against the error it costs, per layer and step.

:func:`delta_rollout` runs a model exactly and in delta mode (mimviewer/nets/delta.py) over the
same frames and reports, per layer and step, the fraction of recurrent multiply-adds a
zero-skipping accelerator would skip and how far the delta rollout's hidden states and outputs
moved from the exact ones. :func:`delta_curve` repeats it over thresholds and scores both
predictions against the truth; :func:`write_curve` writes the CSVs and the plot that
``mimviewer delta`` produces. A view can show ``DeltaRun.prediction`` next to ``DeltaRun.exact``.

Runs in the model's own dtype and device (tests run models in float64 to compare exactly).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mimviewer.errors import ShapeError
from mimviewer.metrics import ssim
from mimviewer.nets.base import RecurrentModel
from mimviewer.nets.delta import DeltaStats, delta_mode
from mimviewer.trace import Probe


class _HiddenStates(Probe):
    """Keeps the latest H of every layer (the state the delta error is measured on)."""

    enabled = True

    def __init__(self) -> None:
        self.hidden: dict[int, torch.Tensor] = {}

    def record(self, layer: int, name: str, value: torch.Tensor) -> None:
        if name == "H":
            self.hidden[layer] = value


@dataclass
class ExactRun:
    """The exact rollout a delta rollout is compared with."""

    outputs: torch.Tensor  # (B, steps, C, H, W): step t predicts frame t + 1
    hidden: list[dict[int, torch.Tensor]]  # per step: layer -> H after that step


@dataclass
class DeltaRun:
    """One delta rollout next to the exact one (arrays on the host)."""

    eps: float
    pre: int
    aft: int
    outputs: np.ndarray  # (B, steps, C, H, W) delta rollout
    exact_outputs: np.ndarray  # (B, steps, C, H, W) exact rollout
    modules: dict[str, DeltaStats]  # what each recurrent module skipped, per call
    skipped: np.ndarray  # (layers, steps): multiply-add weighted fraction skipped; NaN: no product ran
    hidden_error: np.ndarray  # (layers, steps): RMS of H_delta - H_exact
    output_error: np.ndarray  # (steps,): MSE of the delta output against the exact output

    @property
    def prediction(self) -> np.ndarray:
        return self.outputs[:, -self.aft :]

    @property
    def exact(self) -> np.ndarray:
        return self.exact_outputs[:, -self.aft :]

    @property
    def skipped_fraction(self) -> float:
        """Of all recurrent multiply-adds of the rollout, the fraction on zeroed Δ entries."""
        skipped = sum(s.macs_per_entry * sum(s.skipped) for s in self.modules.values())
        total = sum(s.macs_per_entry * sum(s.entries) for s in self.modules.values())
        return skipped / total if total else float("nan")


def _steps(model: RecurrentModel, frames: torch.Tensor, pre: int | None, aft: int | None) -> tuple[int, int]:
    pre = model.config.pre if pre is None else pre
    aft = model.config.aft if aft is None else aft
    if pre < 1 or aft < 1:
        raise ShapeError(f"pre and aft must be >= 1, got pre={pre}, aft={aft}")
    return pre, aft


@torch.inference_mode()
def exact_rollout(
    model: RecurrentModel, frames: torch.Tensor, pre: int | None = None, aft: int | None = None
):
    """The exact rollout with every step's H per layer (kept for :func:`delta_rollout` to compare)."""
    pre, aft = _steps(model, frames, pre, aft)
    probe = _HiddenStates()
    outputs, hidden = [], []
    for frame in model.generate(frames, pre, aft, probe=probe):
        outputs.append(frame)
        hidden.append(dict(probe.hidden))
    return ExactRun(torch.stack(outputs, 1), hidden)


@torch.inference_mode()
def delta_rollout(
    model: RecurrentModel,
    frames: torch.Tensor,
    eps: float,
    pre: int | None = None,
    aft: int | None = None,
    *,
    exact: ExactRun | None = None,
) -> DeltaRun:
    """Run ``model`` in delta mode with threshold ``eps`` and compare it with the exact rollout.

    ``frames`` (B, T, C, H, W) in the model's dtype and device; ``exact`` reuses an
    :func:`exact_rollout` of the same frames (a curve over many eps runs it once).
    """
    pre, aft = _steps(model, frames, pre, aft)
    exact = exact_rollout(model, frames, pre, aft) if exact is None else exact
    layers = model.config.num_layers
    probe = _HiddenStates()
    outputs, hidden_error = [], np.full((layers, pre + aft - 1), np.nan)
    with delta_mode(model, eps) as session:
        for t, frame in enumerate(model.generate(frames, pre, aft, probe=probe)):
            outputs.append(frame)
            for layer, h in probe.hidden.items():
                diff = (h - exact.hidden[t][layer]).double()
                hidden_error[layer, t] = float(diff.square().mean().sqrt())
    delta_outputs = torch.stack(outputs, 1)
    output_error = (delta_outputs - exact.outputs).double().square().mean(dim=(0, 2, 3, 4))
    return DeltaRun(
        eps=float(eps),
        pre=pre,
        aft=aft,
        outputs=delta_outputs.float().cpu().numpy(),
        exact_outputs=exact.outputs.float().cpu().numpy(),
        modules=dict(session.stats),
        skipped=layer_skipped(session.stats, layers, pre + aft - 1),
        hidden_error=hidden_error,
        output_error=output_error.cpu().numpy(),
    )


def skipped_macs(stats: dict[str, DeltaStats]) -> dict[int, tuple[int, int]]:
    """Per layer: (recurrent multiply-adds skipped, all recurrent multiply-adds) over the rollout."""
    totals: dict[int, tuple[int, int]] = {}
    for s in stats.values():
        skipped, total = totals.get(s.layer, (0, 0))
        totals[s.layer] = (
            skipped + s.macs_per_entry * sum(s.skipped),
            total + s.macs_per_entry * sum(s.entries),
        )
    return totals


def layer_skipped(stats: dict[str, DeltaStats], layers: int, steps: int) -> np.ndarray:
    """(layers, steps): skipped multiply-adds / all recurrent multiply-adds of that layer and step."""
    skipped, total = np.zeros((layers, steps)), np.zeros((layers, steps))
    for s in stats.values():
        for t, k, n in zip(s.steps, s.skipped, s.entries, strict=True):
            skipped[s.layer, t] += s.macs_per_entry * k
            total[s.layer, t] += s.macs_per_entry * n
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, skipped / np.where(total > 0, total, 1), np.nan)


# -- the trade-off curve -----------------------------------------------------------------------

CURVE_COLUMNS = (
    "eps",
    "skipped_fraction",
    "mse_vs_truth",
    "ssim_vs_truth",
    "mse_vs_exact",
    "ssim_vs_exact",
    "exact_mse_vs_truth",
    "exact_ssim_vs_truth",
)


@dataclass
class CurvePoint:
    eps: float
    skipped_fraction: float
    mse_vs_truth: float  # NaN when the input has no frames beyond the context
    ssim_vs_truth: float
    mse_vs_exact: float
    ssim_vs_exact: float
    exact_mse_vs_truth: float  # the exact rollout's own score, the bar for the two above
    exact_ssim_vs_truth: float


def _scores(truth: np.ndarray | None, pred: np.ndarray) -> tuple[float, float]:
    """Mean MSE and SSIM over the predicted frames (NaN without truth)."""
    if truth is None:
        return float("nan"), float("nan")
    a, b = torch.from_numpy(truth).double(), torch.from_numpy(pred).double()
    return float((a - b).square().mean()), float(ssim(a, b).nanmean())


def delta_curve(
    model: RecurrentModel,
    frames: torch.Tensor,
    eps_values: list[float],
    pre: int | None = None,
    aft: int | None = None,
) -> tuple[list[CurvePoint], list[DeltaRun]]:
    """One :class:`CurvePoint` per eps; truth is ``frames[:, pre:pre+aft]`` where the input has it."""
    pre, aft = _steps(model, frames, pre, aft)
    truth = frames[:, pre : pre + aft].float().cpu().numpy() if frames.shape[1] >= pre + aft else None
    exact = exact_rollout(model, frames, pre, aft)
    points, runs = [], []
    for eps in eps_values:
        run = delta_rollout(model, frames, eps, pre, aft, exact=exact)
        mse_t, ssim_t = _scores(truth, run.prediction)
        mse_e, ssim_e = _scores(run.exact, run.prediction)
        exact_mse, exact_ssim = _scores(truth, run.exact)
        points.append(
            CurvePoint(run.eps, run.skipped_fraction, mse_t, ssim_t, mse_e, ssim_e, exact_mse, exact_ssim)
        )
        runs.append(run)
    return points, runs


def write_curve(
    points: list[CurvePoint], runs: list[DeltaRun], path: str | Path, *, inputs: tuple = ()
) -> dict[str, Path]:
    """``path`` (.csv, one row per eps), ``<stem>_steps.csv`` (per eps, layer and step) and
    ``<stem>.png``, each through :mod:`mimviewer.atomic` (never over one of ``inputs``)."""
    import cv2

    from mimviewer.atomic import check_output, write_bytes, write_text
    from mimviewer.study import plot_curves  # cv2 drawing; only needed here

    path = Path(path)
    steps_path = path.with_name(f"{path.stem}_steps.csv")
    png = path.with_suffix(".png")
    for target in (path, steps_path, png):
        check_output(target, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows: list = [CURVE_COLUMNS, *([_number(getattr(p, c)) for c in CURVE_COLUMNS] for p in points)]
    write_text(path, _csv(rows), inputs)
    rows = [("eps", "layer", "step", "skipped_fraction", "hidden_rms_error", "output_mse_vs_exact")]
    for run in runs:
        for layer in range(run.skipped.shape[0]):
            for t in range(run.skipped.shape[1]):
                values = (
                    run.eps,
                    layer,
                    t,
                    run.skipped[layer, t],
                    run.hidden_error[layer, t],
                    run.output_error[t],
                )
                rows.append([_number(v) for v in values])
    write_text(steps_path, _csv(rows), inputs)
    labels = [f"{p.eps:g}" for p in points]

    def panel(columns: dict[str, str], title: str, ylabel: str, y_range=None) -> np.ndarray | None:
        curves = {label: np.array([getattr(p, c) for p in points], float) for label, c in columns.items()}
        curves = {label: v for label, v in curves.items() if np.isfinite(v).any()}  # no truth: no curve
        if not curves:
            return None
        return plot_curves(
            curves,
            title=title,
            ylabel=ylabel,
            pre=None,
            y_range=y_range,
            x_labels=labels,
            xlabel="threshold eps",
        )

    panels = [
        panel(
            {
                "skipped MACs": "skipped_fraction",
                "SSIM vs exact": "ssim_vs_exact",
                "SSIM vs truth": "ssim_vs_truth",
            },
            "delta inference: skipped recurrent multiply-adds and SSIM",
            "fraction",
            (0.0, 1.0),
        ),
        panel(
            {
                "MSE vs truth": "mse_vs_truth",
                "MSE vs exact": "mse_vs_exact",
                "exact vs truth": "exact_mse_vs_truth",
            },
            "delta inference: prediction MSE",
            "MSE",
        ),
    ]
    image = np.concatenate([p for p in panels if p is not None])
    ok, encoded = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise OSError(f"{png}: could not encode the plot")
    write_bytes(png, encoded.tobytes(), inputs)
    return {"curve": path, "steps": steps_path, "plot": png}


def _csv(rows: list) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue()


def _number(value: float) -> str:
    return "nan" if isinstance(value, float) and np.isnan(value) else f"{value:.6g}"
